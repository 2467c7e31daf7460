"""User-facing error types. Each message says what is wrong, where, and how to fix it."""


class ReidBenchError(Exception):
    """Base class for errors the CLI prints without a traceback."""


class SpecError(ReidBenchError):
    """A spec file is malformed or names something that does not exist."""


class DatasetError(ReidBenchError):
    """A dataset is missing, incomplete or malformed on disk."""


class RegistryError(ReidBenchError):
    """An unknown or duplicate name in a registry."""


class ResultsError(ReidBenchError):
    """The results folder is in a state the runner refuses to continue from."""


class DivergedError(ReidBenchError):
    """Training produced a non-finite loss."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class DiskFullError(ReidBenchError):
    """A write failed because its disk (or quota) is full; names the file and the free space.
    Raised by ``atomic.py`` after its temporary file is removed, so the space is free again."""

    def __init__(self, path, cause: str = ""):
        import shutil
        from pathlib import Path

        self.path, self.cause = Path(path), cause
        try:
            n = shutil.disk_usage(self._existing(self.path)).free
            free = (f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n // 1024} KiB") + " free"
        except OSError:
            free = "free space unknown"
        super().__init__(f"disk full: could not write {self.path} ({cause or 'no space left'}; "
                         f"{free} there). Free some space, or point --results-dir at a larger "
                         "disk, and run again: finished cells are kept.")

    @staticmethod
    def _existing(p):
        while not p.exists() and p != p.parent:
            p = p.parent
        return p

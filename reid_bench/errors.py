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

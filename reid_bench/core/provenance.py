"""Where a number came from: code version, library versions, hardware."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
from pathlib import Path

import numpy as np
import torch


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(commit, dirty) of the repository holding this package; ("unknown", False) outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=here, capture_output=True, text=True, timeout=10,
                                check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    import timm
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def provenance(device: torch.device) -> dict[str, object]:
    """The provenance columns every results row carries."""
    commit, dirty = git_state()
    return {"git_commit": commit, "git_dirty": dirty, "device": str(device),
            "device_name": device_name(device), "hostname": socket.gethostname(), **versions()}

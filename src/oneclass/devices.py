"""Where computations run (``auto`` picks a CUDA GPU, then Apple's MPS, then the CPU), and whether
a request fits in its memory."""

from __future__ import annotations

import os

import torch

from .errors import OneClassError

DEVICES = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; a named device must exist."""
    if name not in DEVICES:
        raise OneClassError(f"unknown device {name!r}; expected one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise OneClassError("device 'cuda' requested but no CUDA GPU is available")
    if name == "mps" and not _mps_available():
        raise OneClassError("device 'mps' requested but MPS is not available")
    return torch.device(name)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for new allocations on ``device`` (None where that cannot be read)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(needed: int, device: torch.device, what: str, advice: str) -> None:
    """Refuse, before any work, a request that needs more memory than ``device`` has free."""
    free = available_memory(device)
    if free is not None and needed > free:
        raise OneClassError(
            f"{what} needs about {needed / 2**30:.3g} GiB of memory and this machine has "
            f"{free / 2**30:.3g} GiB free on {device.type}: {advice}"
        )

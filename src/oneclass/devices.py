"""Where computations run: ``auto`` picks a CUDA GPU, then Apple's MPS, then the CPU."""

from __future__ import annotations

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

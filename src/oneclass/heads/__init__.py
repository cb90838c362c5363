"""One-class heads on latent vectors: ``fit(Z)``, ``score_samples(Z)`` (higher = more normal),
``offset_``. Register a new head in ``HEADS`` to make it available by name everywhere."""

from ..errors import OneClassError
from .base import Head
from .classic import IsolationForestHead, KNNHead, OCSVMHead
from .ocnn import KernelOCNN, ReportOCNN

HEADS: dict[str, type[Head]] = {
    cls.name: cls for cls in (KernelOCNN, ReportOCNN, OCSVMHead, IsolationForestHead, KNNHead)
}


def head_class(name: str) -> type[Head]:
    if name not in HEADS:
        raise OneClassError(f"unknown head {name!r}; expected one of {', '.join(HEADS)}")
    return HEADS[name]


__all__ = [
    "HEADS",
    "Head",
    "IsolationForestHead",
    "KNNHead",
    "KernelOCNN",
    "OCSVMHead",
    "ReportOCNN",
    "head_class",
]

"""One-class heads on feature vectors: ``fit(Z)``, ``score_samples(Z)`` (higher = more normal),
``threshold_``. Register a new head in ``HEADS`` to make it available by name everywhere (the
detector, the command line's choices, the benchmark)."""

from ..errors import OneClassError
from .base import Head
from .classic import IsolationForestHead, KNNHead, OCSVMHead
from .ocnn import KernelOCNN, PaperOCNN

HEADS: dict[str, type[Head]] = {
    cls.name: cls for cls in (KernelOCNN, PaperOCNN, OCSVMHead, IsolationForestHead, KNNHead)
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
    "PaperOCNN",
    "head_class",
]

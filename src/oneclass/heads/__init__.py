"""One-class heads on latent vectors: ``fit(Z)``, ``score_samples(Z)`` (higher = more normal),
``offset_``. Register a new head in ``HEADS`` to make it available by name everywhere."""

from ..errors import OneClassError
from .base import Head
from .ocnn import ReportOCNN

HEADS: dict[str, type[Head]] = {ReportOCNN.name: ReportOCNN}


def head_class(name: str) -> type[Head]:
    if name not in HEADS:
        raise OneClassError(f"unknown head {name!r}; expected one of {', '.join(HEADS)}")
    return HEADS[name]


__all__ = ["HEADS", "Head", "ReportOCNN", "head_class"]

"""The One-Class Neural Network in one place: its networks (``networks.py``), its two solvers
(``solvers.py``: the paper's Adam loop, Frank-Wolfe for the kernel OC-NN) and its heads
(``heads.py``: ``PaperOCNN``, ``KernelOCNN``)."""

from .heads import KernelOCNN, PaperOCNN

__all__ = ["KernelOCNN", "PaperOCNN"]

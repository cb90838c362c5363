"""oneclass: deep one-class anomaly detection on images (autoencoder/VAE + One-Class NN)."""

__version__ = "0.2.0"

from .detector import OneClassDetector  # noqa: E402
from .errors import OneClassError  # noqa: E402

__all__ = ["OneClassDetector", "OneClassError", "__version__"]

"""Networks: the LeNet-type convolutional autoencoder and VAE (trained on the normal images) and
patch feature extractors (ImageNet EfficientNet-Lite0, or fixed random convolutions)."""

from .lenet import ENCODERS, ConvAutoencoder, ConvVAE, build_encoder, training_bytes
from .patches import PATCH_ENCODERS, PatchFeatures, build_patch_features, feature_bytes

__all__ = [
    "ENCODERS",
    "PATCH_ENCODERS",
    "ConvAutoencoder",
    "ConvVAE",
    "PatchFeatures",
    "build_encoder",
    "build_patch_features",
    "feature_bytes",
    "training_bytes",
]

"""Encoder/decoder networks: the LeNet-type convolutional autoencoder and VAE."""

from .lenet import ENCODERS, ConvAutoencoder, ConvVAE, build_encoder

__all__ = ["ENCODERS", "ConvAutoencoder", "ConvVAE", "build_encoder"]

"""Encoder/decoder networks: the LeNet-type convolutional autoencoder and VAE."""

from .lenet import ENCODERS, ConvAutoencoder, ConvVAE, build_encoder, training_bytes

__all__ = ["ENCODERS", "ConvAutoencoder", "ConvVAE", "build_encoder", "training_bytes"]

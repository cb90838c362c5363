"""LeNet-type convolutional autoencoder and VAE (the Deep SVDD MNIST recipe, any image size).

Encoder: per stage Conv(k x k, pad k//2, no bias) -> BatchNorm(affine=False) -> LeakyReLU ->
MaxPool 2 (computed as pool then activation: the same values), then a bias-free Linear to the
latent. With the defaults (channels 8, 4; latent 32) and 28x28 grey input this is exactly Ruff et
al.'s MNIST encoder (196 -> 32). The decoder mirrors it: Linear -> reshape -> (upsample -> conv ->
BN -> LeakyReLU) per stage -> sigmoid. The decoder's upsampling + convolution always runs as
the fused equivalent of ``fused.py``, the encoder's batch norm + pooling in training on CPU.

Images enter as float tensors in [0, 1] of shape ``(n, channels, height, width)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OneClassError
from .fused import can_normalise_then_pool, normalise_then_pool, upsample_then_conv

BN_EPS = 1e-4
LEAKY_SLOPE = 0.01


def _stage_shapes(height: int, width: int, stages: int) -> list[tuple[int, int]]:
    """Spatial size after each max-pool stage (floor division, as MaxPool2d computes it)."""
    shapes = [(height, width)]
    for _ in range(stages):
        height, width = height // 2, width // 2
        shapes.append((height, width))
    return shapes


class ConvEncoderBody(nn.Module):
    """Conv stages of the LeNet-type encoder; output is the flattened feature map."""

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...], kernel: int):
        super().__init__()
        in_ch, height, width = image_shape
        self.shapes = _stage_shapes(height, width, len(channels))
        if min(self.shapes[-1]) < 1:
            smallest = 2 ** len(channels)
            raise OneClassError(
                f"image size {height}x{width} is too small for a network with {len(channels)} "
                f"pooling stages (need at least {smallest}x{smallest})"
            )
        layers: list[nn.Module] = []
        for out_ch in channels:
            layers += [
                nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm2d(out_ch, eps=BN_EPS, affine=False),
                # pooling before the activation gives the same values (LeakyReLU is strictly
                # increasing, so it keeps each window's maximum), on a quarter of the pixels
                nn.MaxPool2d(2),
                nn.LeakyReLU(LEAKY_SLOPE),
            ]
            in_ch = out_ch
        self.layers = nn.Sequential(*layers)
        self.out_features = channels[-1] * math.prod(self.shapes[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = list(self.layers)
        for conv, norm, pool, activation in zip(*[iter(stages)] * 4, strict=True):
            x = conv(x)
            x = normalise_then_pool(x, norm) if can_normalise_then_pool(x, norm, pool) else pool(norm(x))
            x = activation(x)
        return x.flatten(1)


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoderBody`: latent ``(n, d)`` -> image ``(n, C, H, W)`` in [0, 1]."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: tuple[int, ...],
        kernel: int,
        latent_dim: int,
    ):
        super().__init__()
        out_ch = image_shape[0]
        self.shapes = _stage_shapes(image_shape[1], image_shape[2], len(channels))
        self.start = (channels[-1], *self.shapes[-1])
        self.fc = nn.Linear(latent_dim, math.prod(self.start), bias=False)
        blocks = []
        reversed_channels = list(reversed(channels))
        for i, in_ch in enumerate(reversed_channels):
            last = i == len(reversed_channels) - 1
            next_ch = out_ch if last else reversed_channels[i + 1]
            conv = nn.Conv2d(in_ch, next_ch, kernel, padding=kernel // 2, bias=last)
            rest = (
                [] if last else [nn.BatchNorm2d(next_ch, eps=BN_EPS, affine=False), nn.LeakyReLU(LEAKY_SLOPE)]
            )
            blocks.append(nn.Sequential(conv, *rest))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.fc(z), LEAKY_SLOPE).view(-1, *self.start)
        targets = list(reversed(self.shapes[:-1]))
        for block, size in zip(self.blocks, targets, strict=True):
            conv, rest = block[0], block[1:]
            if size == (2 * x.shape[2], 2 * x.shape[3]) and conv.kernel_size[0] % 2 == 1:
                x = upsample_then_conv(x, conv)
            else:  # a size that pooling had rounded down: upsample to it as it is
                x = conv(F.interpolate(x, size=size, mode="nearest"))
            x = rest(x)
        return torch.sigmoid(x)


class _ConvReconstructor(nn.Module):
    """Encoder body, latent layer(s) (built by ``_latent_layers``, in this order) and decoder."""

    kind: str

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        latent_dim: int = 32,
        channels: tuple[int, ...] = (8, 4),
        kernel: int = 5,
    ):
        super().__init__()
        self.feature_size = latent_dim  # columns of ``encode``
        self.body = ConvEncoderBody(image_shape, channels, kernel)
        self._latent_layers(self.body.out_features, latent_dim)
        self.decoder = ConvDecoder(image_shape, channels, kernel, latent_dim)

    def _latent_layers(self, features: int, latent_dim: int) -> None:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss per image ``(n,)`` (what DistributedDataParallel wraps)."""
        return self.sample_losses(x)


class ConvAutoencoder(_ConvReconstructor):
    """Deterministic autoencoder; the latent is the bias-free linear projection of the features."""

    kind = "ae"

    def _latent_layers(self, features: int, latent_dim: int) -> None:
        self.to_latent = nn.Linear(features, latent_dim, bias=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent vectors ``(n, latent_dim)``."""
        return self.to_latent(self.body(x))

    def sample_losses(self, x: torch.Tensor) -> torch.Tensor:
        """Training loss per image ``(n,)``: summed squared reconstruction error."""
        reconstruction = self.decoder(self.encode(x))
        return (reconstruction - x).pow(2).flatten(1).sum(1)

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Higher = more abnormal: the reconstruction error."""
        return self.sample_losses(x)


class ConvVAE(_ConvReconstructor):
    """Variational autoencoder with a Bernoulli decoder; the latent for heads is the mean."""

    kind = "vae"

    def _latent_layers(self, features: int, latent_dim: int) -> None:
        self.to_mean = nn.Linear(features, latent_dim, bias=False)
        self.to_logvar = nn.Linear(features, latent_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means ``(n, latent_dim)``."""
        return self.to_mean(self.body(x))

    def _negative_elbo(self, x: torch.Tensor, sample: bool) -> torch.Tensor:
        features = self.body(x)
        mean, logvar = self.to_mean(features), self.to_logvar(features).clamp(-10, 10)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar) if sample else mean
        reconstruction = self.decoder(z)
        nll = F.binary_cross_entropy(reconstruction, x, reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        return nll + kl

    def sample_losses(self, x: torch.Tensor) -> torch.Tensor:
        """Training loss per image ``(n,)``: the negative ELBO with one reparameterised sample."""
        return self._negative_elbo(x, sample=self.training)

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Higher = more abnormal: negative ELBO evaluated at the posterior mean."""
        return self._negative_elbo(x, sample=False)


RECONSTRUCTION_ENCODERS: dict[str, type[nn.Module]] = {"ae": ConvAutoencoder, "vae": ConvVAE}
DEFAULT_CHANNELS = (8, 4)


def training_bytes(image_shape: tuple[int, int, int], channels: tuple[int, ...], batch_size: int) -> int:
    """A generous estimate of one training step's memory: every activation of the encoder and
    the mirrored decoder (the input, each stage's convolution output, the reconstruction) for
    ``batch_size`` images, float32, four copies each (output, batch-norm output, gradient, a
    temporary)."""
    c, height, width = image_shape
    elements = 3 * c * height * width
    for stage, width_ in enumerate(channels):
        elements += 2 * width_ * (height >> stage) * (width >> stage)
    return batch_size * elements * 4 * 4


def build_reconstructor(
    kind: str, image_shape: tuple[int, int, int], latent_dim: int, channels: tuple[int, ...], kernel: int = 5
) -> nn.Module:
    if latent_dim < 1:
        raise OneClassError(f"latent_dim must be >= 1, got {latent_dim}")
    return RECONSTRUCTION_ENCODERS[kind](tuple(image_shape), latent_dim, tuple(channels), kernel)

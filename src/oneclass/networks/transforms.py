"""The self-supervised shape encoder: a small convolutional network trained on the normal images
only to tell which rotation or mirror image of an image it is looking at (transformation
prediction, after GEOM, Golan & El-Yaniv 2018, reduced to the symmetries of the square).

To say that a digit or a garment is upside down, the network has to learn what the upright
object looks like: where the stroke of a 7 starts, which way a shoe points. An autoencoder's
latent only has to redraw the pixels (ink, thickness, slant). docs/ssl.md gives the
measurements behind the choices here.

The features the one-class head sees are the network's pooled last-stage activations of *every*
transformed copy of the image (test-time transformations inside ``encode``), each copy's vector
scaled to unit length, concatenated: ``(n, transformations x channels[-1])``.

Square images use the 8 transformations of the dihedral group (4 rotations, each also
mirrored); other shapes the 4 that keep the shape (identity, half turn, the two mirrors).
Images enter as float tensors in [0, 1] of shape ``(n, channels, height, width)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import OneClassError

DEFAULT_CHANNELS = (16, 32, 64, 64)


def transformation_count(image_shape: tuple[int, int, int]) -> int:
    """8 for square images (rotations and mirrors), 4 otherwise (the shape-keeping ones)."""
    return 8 if image_shape[1] == image_shape[2] else 4


def transform_all(x: torch.Tensor, count: int) -> torch.Tensor:
    """Every transformed copy of ``x`` ``(n, C, H, W)``, transformation-major: ``(count * n, C, H, W)``
    where rows ``t * n .. (t + 1) * n`` are transformation ``t`` (0 is the identity)."""
    if count == 8:
        copies = [torch.rot90(image, turns, (2, 3)) for image in (x, x.flip(3)) for turns in range(4)]
    elif count == 4:
        copies = [x, x.flip((2, 3)), x.flip(3), x.flip(2)]
    else:
        raise OneClassError(f"transformation count must be 4 or 8, got {count}")
    return torch.cat(copies)


def conv_stages(in_channels: int, channels: tuple[int, ...]) -> nn.Sequential:
    """3x3 convolution -> batch norm -> ReLU per stage, 2x2 max pooling after all but the last two."""
    layers: list[nn.Module] = []
    for stage, out_ch in enumerate(channels):
        layers += [
            nn.Conv2d(in_channels, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
        ]
        if stage < len(channels) - 2:
            layers.append(nn.MaxPool2d(2))
        in_channels = out_ch
    return nn.Sequential(*layers)


class TransformPredictor(nn.Module):
    """Conv stages (3x3 convolution -> batch norm -> ReLU; 2x2 max pooling after all but the last
    two stages), global average pooling, and a linear classifier over the transformations."""

    kind = "ssl"

    def __init__(
        self, image_shape: tuple[int, int, int] = (1, 28, 28), channels: tuple[int, ...] = DEFAULT_CHANNELS
    ):
        super().__init__()
        if len(channels) < 2:
            raise OneClassError(f"the ssl encoder needs at least 2 channel stages, got {tuple(channels)}")
        pools = len(channels) - 2
        if min(image_shape[1:]) >> pools < 1:
            raise OneClassError(
                f"image size {image_shape[1]}x{image_shape[2]} is too small for {len(channels)} stages "
                f"(need at least {2**pools}x{2**pools})"
            )
        self.count = transformation_count(tuple(image_shape))
        self.feature_size = self.count * channels[-1]  # columns of ``encode``
        self.body = conv_stages(image_shape[0], channels)
        self.classifier = nn.Linear(channels[-1], self.count)

    def _pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``(m, channels[-1])`` pooled activations of already-transformed images."""
        return self.body(x.contiguous(memory_format=torch.channels_last)).mean((2, 3))

    def _log_likelihoods(self, x: torch.Tensor) -> torch.Tensor:
        """``(count, n)``: log-probability the classifier gives each copy's true transformation."""
        n = x.shape[0]  # not len(x): the ONNX exporter would fix the batch size
        logits = self.classifier(self._pooled(transform_all(x, self.count)))
        truth = torch.arange(self.count, device=x.device).repeat_interleave(n)
        return -F.cross_entropy(logits, truth, reduction="none").view(self.count, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss per image ``(n,)``: mean cross-entropy over its transformed copies."""
        return -self._log_likelihoods(x).mean(0)

    def copy_features(self, copies: torch.Tensor) -> torch.Tensor:
        """``(m, channels[-1])``: each already-transformed image's pooled vector at unit length."""
        return F.normalize(self._pooled(copies), dim=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, count * channels[-1])``: each copy's pooled vector at unit length."""
        n = x.shape[0]  # not len(x): the ONNX exporter would fix the batch size
        pooled = self.copy_features(transform_all(x, self.count))
        return pooled.view(self.count, n, -1).transpose(0, 1).reshape(n, -1)

    def anomaly_score(self, x: torch.Tensor) -> torch.Tensor:
        """Higher = more abnormal: minus the summed log-likelihood of the true transformations
        (GEOM's normality score, negated)."""
        return -self._log_likelihoods(x).sum(0)


def transform_training_bytes(
    image_shape: tuple[int, int, int], channels: tuple[int, ...], batch_size: int
) -> int:
    """A generous estimate of one training step's memory: every stage's activations for the
    ``batch_size`` images' transformed copies, float32, four copies each (output, batch-norm
    output, gradient, a temporary)."""
    c, height, width = image_shape
    elements = c * height * width
    pools = len(channels) - 2
    for stage, width_ in enumerate(channels):
        shift = min(stage, pools)
        elements += 2 * width_ * (height >> shift) * (width >> shift)
    return batch_size * transformation_count(image_shape) * elements * 4 * 4

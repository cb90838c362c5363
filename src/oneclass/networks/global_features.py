"""ImageNet features of the whole image: EfficientNet-Lite0's deep blocks averaged over it.

The encoders trained here learn from the normal images only; these features are learnt from
ImageNet's objects and not trained at all (the recipe of DN2, Bergman et al. 2020: a pretrained
network's pooled deep features and a one-class head on them). The image is resized so that its
smaller side is ``SIDE`` pixels (28x28 digits and garments enlarged 3 times), run through Lite0's
stem and blocks 0..15, and blocks 10 (112 channels at 1/16 of the input) and 15 (320 at 1/32) are
averaged over the image: 432 numbers per image. ``SIDE`` and the blocks were chosen on the
Fashion-MNIST validation split (``benchmarks/pretrained_global.py``; BENCHMARKS.md, "How the
defaults were chosen"). The patch features of the local detector (``patches.py``) tap the same
network at blocks 2 and 4, mid-level texture; these see what an object is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .efficientnet import EfficientNetLiteFeatures, pass_bytes

KIND = "lite0-global"
SIDE = 84  # the image's smaller side as the network sees it (56 and 112 measured lower)
TAPS = (10, 15)  # the blocks averaged over the image
VARIANT = "lite0"


class GlobalImageNetFeatures(nn.Module):
    """Images ``(n, C, H, W)`` in [0, 1] -> features ``(n, 432)``: Lite0's blocks ``taps`` (``TAPS``)
    averaged over the image resized to a smaller side of ``side`` (``SIDE``; other values for the
    benchmarks that chose them). Nothing is trained (``trainable``);
    ``load_pretrained`` puts the ImageNet weights in (a saved detector keeps them in its own file).
    The batch norms are folded into the convolutions from the start, so that a saved model has
    the same tensors as a new one."""

    kind = KIND
    trainable = False

    def __init__(self, image_shape: tuple[int, int, int], side: int = SIDE, taps: tuple[int, ...] = TAPS):
        super().__init__()
        self.image_shape, self.side, self.taps = tuple(image_shape), int(side), tuple(taps)
        backbone = EfficientNetLiteFeatures(self.taps, VARIANT).fuse()
        self.backbone = backbone.to(memory_format=torch.channels_last)
        self.feature_size = sum(self.backbone.channels())
        self.eval()

    @torch.no_grad()
    def load_pretrained(self) -> GlobalImageNetFeatures:
        """Load the ImageNet weights (``pretrained.load_lite_backbone``, sha256-checked) and fold them."""
        from .pretrained import load_lite_backbone

        plain = load_lite_backbone(EfficientNetLiteFeatures(self.taps, VARIANT))
        self.backbone.load_state_dict(plain.fuse().state_dict())
        return self

    def resized(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with its smaller side at ``side`` (enlarged bilinearly, shrunk by area)."""
        height, width = x.shape[-2:]
        scale = self.side / min(height, width)
        if scale == 1.0:
            return x
        size = [max(1, round(height * scale)), max(1, round(width * scale))]
        if scale > 1:
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return F.adaptive_avg_pool2d(x, size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, feature_size)``: each tapped block's output averaged over the image."""
        if x.shape[1] not in (1, 3):  # e.g. grey with alpha: the network takes grey or RGB
            x = x.mean(1, keepdim=True)
        x = self.resized(x).contiguous(memory_format=torch.channels_last)
        return torch.cat([m.mean((2, 3)) for m in self.backbone(x)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The training loss per image ``(n,)``: none, nothing here trains (0 for every image)."""
        return x.new_zeros(len(x))


def scoring_bytes(image_shape: tuple[int, int, int], batch: int) -> int:
    """A generous estimate of one scoring pass's memory: ``batch`` images resized as the network
    sees them, through its blocks (``efficientnet.pass_bytes``)."""
    height, width = image_shape[1:]
    scale = SIDE / min(height, width)
    return pass_bytes(round(height * scale), round(width * scale), batch)

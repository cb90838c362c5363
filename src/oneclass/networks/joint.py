"""The joint encoders ``ssl+ae`` and ``ssl-fast+ae``: an ssl shape encoder (the 8-pass one, or its
single-pass student, ``distill.py``) and the convolutional autoencoder side by side, each trained
on the normal images on its own (its own loss, batch and epochs), whose features are scored by
one head per part and combined (``heads/combination.py``). ``ssl-fast+ae+hog`` adds histograms of
oriented gradients as a third part (``gradients.py``; nothing trained, a projection fitted),
``ssl-fast+ae+lite0-global`` ImageNet features of the whole image (``global_features.py``).

Why two: the ssl features see what an object is (which way a shoe points, where a 7's stroke
starts), the autoencoder's latent how it is drawn (ink, thickness, texture); a shirt told from a
T-shirt by its texture is missed by the first and seen by the second (docs/ssl.md).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import OneClassError

# the joint encoders: {part name: the part's encoder kind}, in training and feature order
JOINT_PARTS = {
    "ssl+ae": {"ssl": "ssl", "ae": "ae"},
    "ssl-fast+ae": {"ssl": "ssl-fast", "ae": "ae"},
    "ssl-fast+ae+hog": {"ssl": "ssl-fast", "ae": "ae", "hog": "hog"},
    "ssl-fast+ae+lite0-global": {"ssl": "ssl-fast", "ae": "ae", "imagenet": "lite0-global"},
}


class JointEncoder(nn.Module):
    """``parts[name]`` for each part name of ``JOINT_PARTS[kind]`` (built by
    ``encoders.build_encoder``); ``encode`` concatenates their features in that order,
    ``group_sizes`` says how many columns each part's features take (its ``feature_size``)."""

    def __init__(self, kind: str, parts: dict[str, nn.Module]):
        super().__init__()
        names = tuple(JOINT_PARTS.get(kind, ()))
        if not names or set(parts) != set(names):
            raise OneClassError(f"a joint encoder {kind!r} needs parts {names}, got {tuple(parts)}")
        self.kind = kind
        self.parts = nn.ModuleDict({name: parts[name] for name in names})
        self.group_sizes = tuple(int(part.feature_size) for part in self.parts.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The parts' training losses per image, summed ``(n,)`` (each part trains on its own
        loss; their parameters are disjoint; pretrained features add 0)."""
        return sum(part(x) for part in self.parts.values())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, sum(group_sizes))``: the ssl features, the autoencoder's latent, then
        the ImageNet features where the encoder has them."""
        return torch.cat([part.encode(x) for part in self.parts.values()], dim=1)

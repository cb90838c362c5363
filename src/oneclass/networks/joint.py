"""The joint encoders ``ssl+ae`` and ``ssl-fast+ae``: an ssl shape encoder (the 8-pass one, or its
single-pass student, ``distill.py``) and the convolutional autoencoder side by side, each trained
on the normal images on its own (its own loss, batch and epochs), whose features are scored by
one head per part and combined (``heads/combination.py``).

Why two: the ssl features see what an object is (which way a shoe points, where a 7's stroke
starts), the autoencoder's latent how it is drawn (ink, thickness, texture); a shirt told from a
T-shirt by its texture is missed by the first and seen by the second (docs/ssl.md).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import OneClassError

PARTS = ("ssl", "ae")
# the joint encoders by the kind of their ssl part
SHAPE_PARTS = {"ssl+ae": "ssl", "ssl-fast+ae": "ssl-fast"}


class JointEncoder(nn.Module):
    """``parts[kind]`` for kind in ``PARTS`` (built by ``encoders.build_encoder``); ``encode``
    concatenates their features in that order, ``group_sizes`` says how many columns each
    part's features take (its ``feature_size``)."""

    def __init__(self, kind: str, parts: dict[str, nn.Module]):
        super().__init__()
        if kind not in SHAPE_PARTS or set(parts) != set(PARTS):
            raise OneClassError(f"a joint encoder {kind!r} needs parts {PARTS}, got {tuple(parts)}")
        self.kind = kind
        self.parts = nn.ModuleDict({name: parts[name] for name in PARTS})
        self.group_sizes = tuple(int(part.feature_size) for part in self.parts.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The parts' training losses per image, summed ``(n,)`` (each part trains on its own
        loss; their parameters are disjoint)."""
        return sum(part(x) for part in self.parts.values())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, sum(group_sizes))``: the ssl features, then the autoencoder's latent."""
        return torch.cat([self.parts[kind].encode(x) for kind in PARTS], dim=1)

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

from . import distill, lenet, transforms

PARTS = ("ssl", "ae")
# the joint encoders by the kind of their ssl part
SHAPE_PARTS = {"ssl+ae": "ssl", "ssl-fast+ae": "ssl-fast"}


class JointEncoder(nn.Module):
    """``parts[kind]`` for kind in ``PARTS``; ``encode`` concatenates their features in that order,
    ``group_sizes`` says how many columns each part's features take."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, kind: str = "ssl+ae"):
        super().__init__()
        self.kind = kind
        if SHAPE_PARTS[kind] == "ssl-fast":
            shape_part: nn.Module = distill.DistilledSSL(tuple(image_shape))
            shape_size = distill.STUDENT_OUTPUTS
        else:
            shape_part = transforms.TransformPredictor(tuple(image_shape), transforms.DEFAULT_CHANNELS)
            shape_size = shape_part.count * transforms.DEFAULT_CHANNELS[-1]
        self.parts = nn.ModuleDict(
            {
                "ssl": shape_part,
                "ae": lenet.build_reconstructor("ae", image_shape, latent_dim, lenet.DEFAULT_CHANNELS),
            }
        )
        self.group_sizes = (shape_size, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The parts' training losses per image, summed ``(n,)`` (each part trains on its own
        loss; their parameters are disjoint)."""
        return sum(part(x) for part in self.parts.values())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, sum(group_sizes))``: the ssl features, then the autoencoder's latent."""
        return torch.cat([self.parts[kind].encode(x) for kind in PARTS], dim=1)

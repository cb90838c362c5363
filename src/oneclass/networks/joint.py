"""The joint encoder ``ssl+ae``: the ssl shape encoder and the convolutional autoencoder side by
side, each trained on the normal images on its own (its own loss, batch and epochs), whose
features are scored by one head per part and combined (``heads/combination.py``).

Why two: the ssl features see what an object is (which way a shoe points, where a 7's stroke
starts), the autoencoder's latent how it is drawn (ink, thickness, texture); a shirt told from a
T-shirt by its texture is missed by the first and seen by the second (docs/ssl.md).
"""

from __future__ import annotations

import torch
from torch import nn

from . import lenet, transforms

PARTS = ("ssl", "ae")


class JointEncoder(nn.Module):
    """``parts[kind]`` for kind in ``PARTS``; ``encode`` concatenates their features in that order,
    ``group_sizes`` says how many columns each part's features take."""

    kind = "ssl+ae"

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int):
        super().__init__()
        self.parts = nn.ModuleDict(
            {
                "ssl": transforms.TransformPredictor(tuple(image_shape), transforms.DEFAULT_CHANNELS),
                "ae": lenet.build_reconstructor("ae", image_shape, latent_dim, lenet.DEFAULT_CHANNELS),
            }
        )
        self.group_sizes = (self.parts["ssl"].count * transforms.DEFAULT_CHANNELS[-1], latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The parts' training losses per image, summed ``(n,)`` (each part trains on its own
        loss; their parameters are disjoint)."""
        return sum(part(x) for part in self.parts.values())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, sum(group_sizes))``: the ssl features, then the autoencoder's latent."""
        return torch.cat([self.parts[kind].encode(x) for kind in PARTS], dim=1)

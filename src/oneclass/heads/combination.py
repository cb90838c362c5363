"""Fisher's combination of heads on feature groups: one head per group of columns (the joint
encoder's ssl features and its autoencoder latent), each score turned into a tail probability
among that head's training scores, and the image score the sum of their logarithms.

Why not one head on all the features side by side: whitened together, the 32 latent columns
are a small part of 544 and the ssl features' geometry sets the kernel width; on the validation
split that gave 94.4 mean AUROC on Fashion-MNIST against 94.8 for the combination (docs/ssl.md).
Tail probabilities put both heads on one scale, whatever their units, and Fisher's sum
``sum_g log p_g`` is the classic way to pool evidence from several tests: an image that is
unusual for either part gets a low score.

The reference of each head is its training images' scores computed as if the images were new
where the head can (the kernel OC-NN's out-of-fold scores, kNN's leave-one-out), else its
in-sample scores. The combined score lives in ``[groups * log(1 / (n + 1)), 0]``, higher = more
normal; images beyond every training image of both heads tie at the bottom.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..calibration import NU, nu_quantile, p_values
from ..errors import OneClassError
from ..params import Param
from .base import Head, check_latents


class FisherCombination(Head):
    """``members[g]`` scores the columns of group ``g`` (``group_sizes[g]`` of them, in order).

    Parameters
    ----------
    members : unfitted heads, one per group.
    group_sizes : columns of each group; their sum is the feature size ``fit`` expects.
    nu : share of the training data below the threshold, in (0, 1].
    """

    name = "fisher"
    saveable = True
    parameters: ClassVar[dict[str, Param]] = {
        "nu": Param(NU, "Share of training data allowed on the abnormal side, in (0, 1].")
    }

    def __init__(self, members: list[Head], group_sizes: tuple[int, ...], nu: float = 0.1):
        if len(members) != len(group_sizes) or not members:
            raise OneClassError(
                f"one head per feature group: {len(members)} heads, {len(group_sizes)} groups"
            )
        self.members, self.group_sizes, self.nu = list(members), tuple(int(g) for g in group_sizes), nu
        self.validate_params()

    @property
    def saveable_members(self) -> bool:
        return all(member.saveable for member in self.members)

    def _blocks(self, Z: np.ndarray) -> list[np.ndarray]:
        Z = check_latents(Z, dim=sum(self.group_sizes))
        return np.split(Z, np.cumsum(self.group_sizes)[:-1], axis=1)

    def fit(self, Z: np.ndarray, on_epoch=None) -> FisherCombination:
        """Fit each member on its group of ``Z`` ``(n, sum(group_sizes))``; ``on_epoch`` gets
        each member's epoch records (with ``"group"``)."""
        self.references_: list[np.ndarray] = []
        self.history_ = []
        combined = np.zeros(len(Z))
        for group, (member, block) in enumerate(zip(self.members, self._blocks(Z), strict=True)):
            if "on_epoch" in inspect.signature(member.fit).parameters:
                tag = (lambda record, g=group: on_epoch({"group": g, **record})) if on_epoch else None
                member.fit(block, on_epoch=tag)
            else:
                member.fit(block)
            self.history_ += [{"group": group, **r} for r in getattr(member, "history_", [])]
            own = self._as_if_new(member, block)
            self.references_.append(np.sort(own))
            combined += np.log(p_values(self.references_[-1], own))
        self.threshold_ = nu_quantile(combined, self.nu)
        return self

    @staticmethod
    def _as_if_new(member: Head, block: np.ndarray) -> np.ndarray:
        for attribute in ("out_of_fold_scores_", "train_scores_"):
            scores = getattr(member, attribute, None)
            if scores is not None:
                return np.asarray(scores, dtype=np.float64)
        return member.score_samples(block)

    def score_samples(self, Z: np.ndarray) -> np.ndarray:
        """``sum_g log p_g`` ``(n,)``: higher = more normal."""
        total = np.zeros(len(Z))
        for member, reference, block in zip(self.members, self.references_, self._blocks(Z), strict=True):
            total += np.log(p_values(reference, member.score_samples(block)))
        return total

    # -- saving and export -----------------------------------------------------------------------

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "group_sizes": list(self.group_sizes),
            "members": [member.get_config() for member in self.members],
        }

    def state_tensors(self) -> dict[str, torch.Tensor]:
        self._require_saveable()
        tensors = {}
        for group, (member, reference) in enumerate(zip(self.members, self.references_, strict=True)):
            for key, value in member.state_tensors().items():
                tensors[f"head.member{group}.{key.removeprefix('head.')}"] = value
            tensors[f"head.reference{group}"] = torch.from_numpy(reference.copy())
        return tensors

    @classmethod
    def from_state(cls, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> FisherCombination:
        from . import head_class  # the registry imports this module

        members, references = [], []
        for group, member_config in enumerate(config["members"]):
            prefix = f"head.member{group}."
            own = {"head." + k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
            members.append(head_class(member_config["name"]).from_state(member_config, own))
            references.append(tensors[f"head.reference{group}"].double().numpy())
        head = cls(members, tuple(config["group_sizes"]), **config["params"])
        head.references_ = references
        head.threshold_ = float(config["threshold"])
        head.history_ = []
        return head

    def torch_module(self) -> nn.Module | None:
        self._require_saveable()
        return FisherNet([m.torch_module() for m in self.members], self.references_, self.group_sizes)

    def _require_saveable(self) -> None:
        if not self.saveable_members:
            names = ", ".join(m.name for m in self.members)
            raise OneClassError(f"heads {names} cannot be saved or exported; the OC-NN heads can")


# references per block of the two-level count in ``FisherNet``: about sqrt(n) for the ~4,000
# out-of-fold scores of a class of MNIST (a comparison against every reference, 2 x 4,000 per
# image, took about as long as the student network; docs/ssl.md, "Cost")
REFERENCE_BLOCK = 64


class FisherNet(nn.Module):
    """Features ``(n, sum(group_sizes))`` -> ``sum_g log p_g`` ``(n,)``, p-values counted against
    each member's sorted reference scores as ``calibration.p_values`` counts them.

    The count of references at or below a score is exact and takes two small comparisons
    instead of one against every reference: the references in blocks of ``REFERENCE_BLOCK``
    (the last one padded with +inf), first against each block's first reference (every block
    before the last one that starts at or below the score lies wholly at or below it), then
    within that block."""

    def __init__(self, members: list[nn.Module], references: list[np.ndarray], group_sizes: tuple[int, ...]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.group_sizes = list(group_sizes)
        self.sizes = [len(reference) for reference in references]
        for group, reference in enumerate(references):
            # member scores are float32 values: float32 references compare exactly as float64 ones
            blocks = torch.full((-(-len(reference) // REFERENCE_BLOCK) * REFERENCE_BLOCK,), float("inf"))
            blocks[: len(reference)] = torch.as_tensor(np.sort(reference), dtype=torch.float32)
            self.register_buffer(f"reference{group}", blocks.view(-1, REFERENCE_BLOCK))

    @staticmethod
    def count_at_or_below(blocks: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """``#{reference <= score}`` ``(n,)`` as float32, for sorted references in ``blocks``
        ``(m, REFERENCE_BLOCK)`` and ``scores`` ``(n,)``."""
        starts = (blocks[:, 0][None, :] <= scores[:, None]).sum(1)  # blocks that start <= score
        block = (starts - 1).clamp(min=0)
        within = (blocks[block] <= scores[:, None]).sum(1)
        full = block * blocks.shape[1]
        return torch.where(starts > 0, full + within, torch.zeros_like(within)).to(torch.float32)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(z.shape[0], dtype=torch.float32, device=z.device)
        for group, (member, block) in enumerate(
            zip(self.members, z.split(self.group_sizes, dim=1), strict=True)
        ):
            count = self.count_at_or_below(getattr(self, f"reference{group}"), member(block))
            total = total + torch.log((1.0 + count) / (self.sizes[group] + 1.0))
        return total

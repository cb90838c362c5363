"""The single-pass ssl encoder ``ssl-fast``: a student network distilled from the ssl encoder.

The ssl encoder's features (``transforms.py``) are its network's pooled activations of all 8
transformed copies of an image: 8 passes per image at scoring time. ``ssl-fast`` trains that
network first (the teacher, as ``ssl`` does), then a student of the same shape that sees each
image once and regresses the teacher's features, projected on their first ``outputs`` principal
components (variances kept, so that the strong directions dominate the loss). The head sees the
student's outputs: one pass per image.

The student learns on every transformed copy of every training image, with the teacher's
features *of that copy* as its target. Those are the teacher's per-copy vectors of the image,
reordered: copy ``j`` of copy ``k`` is copy ``i`` of the image, with ``i`` from the group's
composition table (``composition_table``), so the 8 teacher passes of an image give the targets
of its 8 copies. Trained on the untransformed images only, the student lost 0.4 AUROC on MNIST's
validation split; the copies teach it orientation, as the teacher's task did (docs/ssl.md).

Training is two stages of the one training loop: the teacher's (``teacher.forward``, the
transformation loss), then ``prepare_distillation`` fixes the teacher and the target projection,
``copy_targets`` turns the teacher's features of the training images (one pass, the same that
the projection is fitted on) into every copy's target, and this module's ``forward`` is the
student's regression loss per image against them (the loop hands each batch its targets).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import transforms

STUDENT_OUTPUTS = 64
TEACHER_KIND = "ssl"
STUDENT_KIND = "student"


def principal_projection(x: torch.Tensor, outputs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean ``(F,)``, projection ``(F, outputs)``) of rows ``x`` ``(n, F)``: their first ``outputs``
    principal directions, all divided by the first component's standard deviation (relative
    variances kept); zero columns past the ``min(n, F)`` directions there are."""
    mean = x.mean(0)
    _, singular, directions = torch.linalg.svd(x - mean, full_matrices=False)
    projection = directions[:outputs].T / (singular[0] / np.sqrt(len(x)))
    if projection.shape[1] < outputs:
        projection = F.pad(projection, (0, outputs - projection.shape[1]))
    return mean, projection


def composition_table(count: int) -> torch.Tensor:
    """``(count, count)`` long: row ``k``, column ``j`` is the index ``i`` of the transformation
    ``T_j T_k`` among ``transforms.transform_all``'s copies (transforming copy ``k`` by ``j``
    gives copy ``i`` of the original). Found on a probe image whose copies all differ."""
    probe = torch.arange(16.0).view(1, 1, 4, 4) if count == 8 else torch.arange(12.0).view(1, 1, 3, 4)
    copies = transforms.transform_all(probe, count)
    twice = transforms.transform_all(copies, count).view(count, count, *probe.shape[1:])  # [j, k]
    flat_copies = copies.flatten(1)
    table = torch.empty(count, count, dtype=torch.long)
    for k in range(count):
        for j in range(count):
            matches = (flat_copies == twice[j, k].flatten()).all(1).nonzero()
            table[k, j] = int(matches[0, 0])
    return table


class Student(nn.Module):
    """The teacher's convolution stages on one copy of the image, mean- and max-pooled (the max
    keeps where a stroke or an edge is strongest), and a linear map to ``outputs`` numbers."""

    def __init__(self, image_shape: tuple[int, int, int], channels: tuple[int, ...], outputs: int):
        super().__init__()
        self.body = transforms.conv_stages(image_shape[0], channels)
        self.out = nn.Linear(2 * channels[-1], outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.body(x.contiguous(memory_format=torch.channels_last))
        return self.out(torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], 1))


class DistilledSSL(nn.Module):
    """The teacher (``transforms.TransformPredictor``), the student, and the teacher's target
    projection (buffers ``target_mean`` ``(F,)`` and ``target_projection`` ``(F, outputs)``, F the
    teacher's feature size). ``encode`` is the student alone: ``(n, outputs)``."""

    kind = "ssl-fast"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 28, 28),
        channels: tuple[int, ...] = transforms.DEFAULT_CHANNELS,
        outputs: int = STUDENT_OUTPUTS,
    ):
        super().__init__()
        self.teacher = transforms.TransformPredictor(tuple(image_shape), channels)
        self.student = Student(tuple(image_shape), tuple(channels), outputs)
        self.count = self.teacher.count
        self.feature_size = outputs  # columns of ``encode``
        features = self.count * channels[-1]
        self.register_buffer("target_mean", torch.zeros(features))
        self.register_buffer("target_projection", torch.zeros(features, outputs))
        self.register_buffer("composition", composition_table(self.count), persistent=False)

    def trained_parts(self) -> list[tuple[str, nn.Module]]:
        """The two stages: the teacher on its own loss, then this module on the student's."""
        return [(TEACHER_KIND, self.teacher), (STUDENT_KIND, self)]

    @torch.no_grad()
    def prepare_distillation(self, features: np.ndarray) -> None:
        """Fix the teacher and the targets: ``features`` ``(n, F)`` are the trained teacher's
        features of the training images; the targets are their first ``outputs`` principal
        components, all divided by the first one's standard deviation (relative variances kept)."""
        x = torch.from_numpy(np.asarray(features, dtype=np.float64))
        mean, projection = principal_projection(x, self.target_projection.shape[1])
        self.target_mean.copy_(mean)
        self.target_projection.copy_(projection)
        self.teacher.requires_grad_(False)
        self.train(self.training)

    @property
    def teacher_fixed(self) -> bool:
        """True once ``prepare_distillation`` has fixed the teacher (its weights take no gradient)."""
        return not any(parameter.requires_grad for parameter in self.teacher.parameters())

    def train(self, mode: bool = True) -> DistilledSSL:
        """As ``nn.Module.train``, but a fixed teacher stays in eval mode (its batch norms keep
        their statistics while the student learns)."""
        super().train(mode)
        if self.teacher_fixed:
            self.teacher.eval()
        return self

    @torch.no_grad()
    def copy_targets(self, features: np.ndarray) -> np.ndarray:
        """``(n, count, outputs)`` float32: the projected teacher features of each transformed
        copy of n images, from the teacher's features of the images themselves (``features``
        ``(n, F)``, ``teacher.encode``'s layout, as given to ``prepare_distillation``): copy ``j``
        of copy ``k`` is copy ``composition[k, j]`` of the image, so the student's targets need
        no teacher pass of their own while it trains."""
        x = torch.from_numpy(np.asarray(features, dtype=np.float32)).to(self.target_mean.device)
        per_copy = x.view(len(x), self.count, -1)[:, self.composition]  # (n, k, j, D)
        targets = (per_copy.flatten(2) - self.target_mean) @ self.target_projection
        return targets.cpu().numpy()

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The student's training loss per image ``(n,)``: mean squared error over its
        transformed copies against ``targets`` ``(n, count, outputs)`` (``copy_targets``)."""
        copies = transforms.transform_all(x, self.count)  # copy-major: (count * n, ...)
        errors = (self.student(copies) - targets.transpose(0, 1).flatten(0, 1)).square().mean(1)
        return errors.view(self.count, x.shape[0]).mean(0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(n, outputs)``: the student's outputs for the untransformed image."""
        return self.student(x)

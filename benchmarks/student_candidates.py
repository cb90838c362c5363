"""A single-pass student of the ssl encoder, on the validation split only (no test images).

The ssl encoder's features are its network's pooled activations of 8 transformed copies of an
image: 8 passes per image, 62 MFLOP, about 6,000 images/s on 2 cores in ONNX Runtime, where
issue 16 asks for 20,000. This script asks whether one pass can stand in for the eight: a student
network of the same shape (16-32-64-64 channels, mean- and max-pooled, a linear layer) is trained
on the normal training images to regress the teacher's features, projected on their first
``--components`` principal components (variance kept, so that the strong directions dominate the
loss), and the kernel OC-NN is fitted on the student's outputs. Per class: the validation AUROC of
the OC-NN on the teacher's features and on the student's, and the speed of each network's
features in PyTorch (images/s, 2 cores, 256 images per pass). ``--with-ae`` adds the student
in place of the ssl part of ``ssl+ae``: the OC-NN on the student's features and the OC-NN on the
autoencoder's latent, Fisher's combination with out-of-fold references (as
``heads.combination.FisherCombination``), beside the same with the teacher's features.

    python benchmarks/student_candidates.py --datasets fashion-mnist,mnist   # ~14 min, 2 cores
    python benchmarks/student_candidates.py --datasets fashion-mnist,mnist --with-ae \
        --out benchmarks/defaults/ssl-student-ae.md                            # ~16 min
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _record import record  # benchmarks/_record.py: this folder is on sys.path when run
from torch import nn

from oneclass.calibration import p_values
from oneclass.data import load_dataset
from oneclass.evaluation.metrics import auroc
from oneclass.evaluation.protocol import validation_split
from oneclass.heads import head_class
from oneclass.networks import DEFAULT_BATCH, DEFAULT_EPOCHS, build_encoder
from oneclass.training.autoencoder import encode, train_autoencoder

CPU = torch.device("cpu")


class Student(nn.Module):
    """The ssl network's stages on the untransformed image only, mean- and max-pooled, a linear map
    to ``out`` numbers."""

    def __init__(self, out: int, channels: tuple[int, ...] = (16, 32, 64, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        for stage, out_ch in enumerate(channels):
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]
            if stage < len(channels) - 2:
                layers.append(nn.MaxPool2d(2))
            in_ch = out_ch
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(2 * in_ch, out)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.body(images)
        return self.out(torch.cat([maps.mean((2, 3)), maps.amax((2, 3))], 1))


def principal_targets(features: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, projection, scale): the first ``components`` principal directions of ``features``,
    all divided by the first one's standard deviation (relative variances kept)."""
    mean = features.mean(0)
    _, singular, directions = np.linalg.svd(features - mean, full_matrices=False)
    scale = float(singular[0] / np.sqrt(len(features)))
    return mean, directions[:components].T, scale


def train_student(images: np.ndarray, targets: np.ndarray, epochs: int, seed: int) -> Student:
    torch.manual_seed(seed)
    student = Student(targets.shape[1])
    optimiser = torch.optim.Adam(student.parameters(), 1e-3)
    x, y = torch.from_numpy(images).float() / 255.0, torch.from_numpy(targets.astype(np.float32))
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            rows = order[start : start + 64]
            loss = F.mse_loss(student(x[rows]), y[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return student.eval()


@torch.no_grad()
def student_features(student: Student, images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).float() / 255.0
    return torch.cat([student(x[i : i + 512]) for i in range(0, len(x), 512)]).numpy()


@torch.no_grad()
def images_per_second(run, images: torch.Tensor, repeats: int = 5) -> float:
    run(images)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run(images)
        best = min(best, time.perf_counter() - started)
    return len(images) / best


def ocnn(train_z: np.ndarray, val_z: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The kernel OC-NN's out-of-fold training scores and its validation scores."""
    head = head_class("ocnn")(nu=0.1, seed=seed, device="cpu").fit(train_z)
    return head.out_of_fold_scores_, head.score_samples(val_z)


def fisher(*members: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Sum of each member's log tail probability of its validation scores among its references."""
    return sum(np.log(p_values(np.sort(reference), scores)) for reference, scores in members)


def autoencoder_latents(train: np.ndarray, val: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    torch.manual_seed(seed)
    model = build_encoder("ae", train.shape[1:], 32, None)
    schedule = {
        "epochs": DEFAULT_EPOCHS["ae"],
        "batch_size": DEFAULT_BATCH["ae"],
        "lr": 1e-3,
        "weight_decay": 1e-6,
    }
    train_autoencoder(model, train, **schedule, seed=seed, device=CPU, quiet=True)
    model.eval()
    return encode(model, train, CPU, 256), encode(model, val, CPU, 256)


def run_class(dataset: str, x: np.ndarray, y: np.ndarray, normal: int, args) -> dict:
    fit_rows, val_rows, is_normal = validation_split(y, (normal,), args.seed)
    train, val = x[fit_rows][:, None], x[val_rows][:, None]
    torch.manual_seed(args.seed)
    teacher = build_encoder("ssl", (1, *x.shape[1:]), 32, None)
    schedule = {
        "epochs": DEFAULT_EPOCHS["ssl"],
        "batch_size": DEFAULT_BATCH["ssl"],
        "lr": 1e-3,
        "weight_decay": 1e-6,
    }
    train_autoencoder(teacher, train, **schedule, seed=args.seed, device=CPU, quiet=True)
    teacher.eval()
    teacher_train, teacher_val = (encode(teacher, images, CPU, 256) for images in (train, val))
    mean, projection, scale = principal_targets(teacher_train, args.components)
    student = train_student(train, (teacher_train - mean) @ projection / scale, args.epochs, args.seed)
    batch = torch.from_numpy(val[:256]).float() / 255.0
    student_train, student_val = (student_features(student, images) for images in (train, val))
    teacher_scores = ocnn(teacher_train, teacher_val, args.seed)
    student_scores = ocnn(student_train, student_val, args.seed)
    row = {
        "dataset": dataset,
        "class": normal,
        "teacher": auroc(teacher_scores[1], is_normal),
        "student": auroc(student_scores[1], is_normal),
        "teacher_images_per_s": images_per_second(teacher.encode, batch),
        "student_images_per_s": images_per_second(student, batch),
    }
    if args.with_ae:
        ae_scores = ocnn(*autoencoder_latents(train, val, args.seed), args.seed)
        row["teacher+ae"] = auroc(fisher(teacher_scores, ae_scores), is_normal)
        row["student+ae"] = auroc(fisher(student_scores, ae_scores), is_normal)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="fashion-mnist,mnist")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--with-ae", action="store_true", help="also Fisher with the autoencoder's OC-NN")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/defaults/ssl-student.md"))
    args = parser.parse_args(argv)
    rows = []
    for dataset in args.datasets.split(","):
        x, y = load_dataset(dataset, "train")
        for normal in (int(c) for c in args.classes.split(",")):
            started = time.perf_counter()
            rows.append(run_class(dataset, x, y, normal, args))
            r = rows[-1]
            print(
                f"{dataset} {normal}: teacher {100 * r['teacher']:.2f} student {100 * r['student']:.2f} "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    command = shlex.join(["python", "benchmarks/student_candidates.py", *(argv or sys.argv[1:])])
    columns = {
        "teacher": "OC-NN on the ssl features (8 passes)",
        "student": "OC-NN on the student's (1 pass)",
        **(
            {
                "teacher+ae": "Fisher: ssl OC-NN + AE OC-NN (`ssl+ae`)",
                "student+ae": "Fisher: student OC-NN + AE OC-NN",
            }
            if args.with_ae
            else {}
        ),
    }
    speeds = {"teacher_images_per_s": "ssl features (images/s)", "student_images_per_s": "student (images/s)"}
    lines = [
        f"Command: `{command}` (validation split, seed {args.seed}; no test image)",
        "",
        "| data set | class | " + " | ".join([*columns.values(), *speeds.values()]) + " |",
        "|---" * (2 + len(columns) + len(speeds)) + "|",
    ]
    for dataset in args.datasets.split(","):
        mine = [r for r in rows if r["dataset"] == dataset]
        for r in mine:
            cells = [f"{100 * r[key]:.2f}" for key in columns] + [f"{r[key]:,.0f}" for key in speeds]
            lines.append(f"| {dataset} | {r['class']} | " + " | ".join(cells) + " |")
        means = [f"**{100 * np.mean([r[key] for r in mine]):.2f}**" for key in columns]
        medians = [f"{np.median([r[key] for r in mine]):,.0f}" for key in speeds]
        lines.append(f"| **{dataset}** | **mean** | " + " | ".join(means + medians) + " |")
    record(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

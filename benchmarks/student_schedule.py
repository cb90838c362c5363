"""The ssl-fast student's training schedule, on the validation split only (no test images).

``OneClassDetector(encoder="ssl-fast")`` as ``fit`` builds it, with the student trained at
several batch sizes (images per step; each brings its 8 transformed copies) and epochs; the
teacher, the head and the threshold stay at their defaults. Per class: validation AUROC, fit
seconds (2 cores), and the student's last training loss.

    python benchmarks/student_schedule.py --dataset mnist --classes 3,5,7,9   # ~10 min, 2 cores
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from unittest.mock import patch

import numpy as np
from _record import record  # benchmarks/_record.py: this folder is on sys.path when run

from oneclass import OneClassDetector
from oneclass.data import load_dataset
from oneclass.evaluation.metrics import auroc
from oneclass.evaluation.protocol import validation_split
from oneclass.networks import DEFAULT_BATCH, DEFAULT_EPOCHS, STUDENT_KIND


def run(x: np.ndarray, y: np.ndarray, normal: int, batch: int, epochs: int, seed: int) -> dict:
    fit_rows, val_rows, is_normal = validation_split(y, (normal,), seed)
    # the student's schedule alone (the detector's batch_size / encoder_epochs would set the teacher's too)
    with patch.dict(DEFAULT_BATCH, {STUDENT_KIND: batch}), patch.dict(DEFAULT_EPOCHS, {STUDENT_KIND: epochs}):
        started = time.perf_counter()
        detector = OneClassDetector(encoder="ssl-fast", seed=seed, device="cpu", quiet=True).fit(x[fit_rows])
        seconds = time.perf_counter() - started
    return {
        "auroc": auroc(detector.score_samples(x[val_rows]), is_normal),
        "seconds": seconds,
        "loss": detector.history_["encoder"][-1]["loss"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--classes", default="3,5,7,9")
    parser.add_argument("--schedules", default="64x4,16x4,64x12", help="BATCHxEPOCHS, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/defaults/ssl-fast/schedule.md"))
    args = parser.parse_args(argv)
    x, y = load_dataset(args.dataset, "train")
    schedules = [tuple(int(v) for v in s.split("x")) for s in args.schedules.split(",")]
    classes = [int(c) for c in args.classes.split(",")]
    results = {(c, s): run(x, y, c, *s, args.seed) for c in classes for s in schedules}
    command = shlex.join(["python", "benchmarks/student_schedule.py", *(argv or sys.argv[1:])])
    names = [f"batch {b}, {e} epochs" for b, e in schedules]
    lines = [
        f"Command: `{command}` ({args.dataset}, validation split, seed {args.seed}; 2 cores)",
        "",
        "Validation AUROC (fit seconds, student's last loss):",
        "",
        "| class | " + " | ".join(names) + " |",
        "|---" * (1 + len(names)) + "|",
    ]
    for c in classes:
        cells = [
            f"{100 * r['auroc']:.2f} ({r['seconds']:.0f} s, {r['loss']:.4f})"
            for r in (results[c, s] for s in schedules)
        ]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    means = [f"**{100 * np.mean([results[c, s]['auroc'] for c in classes]):.2f}**" for s in schedules]
    lines.append("| **mean** | " + " | ".join(means) + " |")
    record(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

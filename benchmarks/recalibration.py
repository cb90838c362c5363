"""Does ``oneclass calibrate`` bring the false-alarm rate back to nu on new good images?

On the inspection benchmark's test folders the local detector's own threshold (from training
crops held out of its fit) flags most good test crops: the test crops come from other blocks of
the photographs than the training crops, and the training crops overlap one another, so the
held-out ones resemble the training set more than any new crop does. Per category: the default
local detector is fitted on ``train/good``; the good test crops are split by file name into two
halves; ``calibrate_run`` (the service behind ``oneclass calibrate``) sets the threshold from
the first half; the false-alarm rate is measured on the second half before and after, and the
detection rate on the defective test crops. No setting is chosen here: the recalibration is the
procedure a user follows with a batch of good images from production.

    python benchmarks/inspection_data.py --out data/inspection
    python benchmarks/recalibration.py data/inspection      # ~2 min on 2 cores
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from _record import record  # benchmarks/_record.py: this folder is on sys.path when run

from oneclass import OneClassDetector
from oneclass.calibration import flagged
from oneclass.cli import DEFAULT_FOLDER_ENCODER as FOLDER_ENCODER
from oneclass.data.folders import ImageFolder, folder_splits
from oneclass.services.calibrate import calibrate_run
from oneclass.services.inspection import categories


def category_rates(category: Path, seed: int, work: Path) -> dict[str, float]:
    train, test = folder_splits(category)
    detector = OneClassDetector(encoder=FOLDER_ENCODER, seed=seed, device="cpu", quiet=True).fit(train)
    run = work / category.name
    detector.save(run)
    good = [Path(p) for p, normal in zip(test.paths, test.is_normal, strict=True) if normal]
    half = len(good) // 2
    calibration_dir = work / f"{category.name}-good-first-half"
    calibration_dir.mkdir()
    for path in good[:half]:
        shutil.copy(path, calibration_dir / path.name)
    held = ImageFolder(good[half:], detector.image_shape_)
    defects = ImageFolder(
        [p for p, n in zip(test.paths, test.is_normal, strict=True) if not n], detector.image_shape_
    )
    before = detector.threshold_
    after = calibrate_run(run, [str(calibration_dir)]).threshold
    good_scores, defect_scores = detector.score_samples(held), detector.score_samples(defects)
    return {
        "false alarms before": float(np.mean(flagged(good_scores, before))),
        "false alarms after": float(np.mean(flagged(good_scores, after))),
        "detection before": float(np.mean(flagged(defect_scores, before))),
        "detection after": float(np.mean(flagged(defect_scores, after))),
        "calibration images": half,
        "held-out good images": len(good) - half,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/inspection/recalibration.md"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rates = {c.name: category_rates(c, args.seed, Path(tmp)) for c in categories(args.root)}
    command = shlex.join(["python", "benchmarks/recalibration.py", *map(str, argv or sys.argv[1:])])
    columns = list(next(iter(rates.values())))
    lines = [
        f"Command: `{command}` (default local detector, nu = 0.1, seed {args.seed}; 2 cores)",
        "",
        "| category | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, row in rates.items():
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    means = [np.mean([row[c] for row in rates.values()]) for c in columns if "images" not in c]
    lines.append("| **mean** | " + " | ".join(f"**{m:.3f}**" for m in means) + " | | |")
    record(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

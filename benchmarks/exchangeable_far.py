"""Does the local detector's threshold hold nu on new normal images drawn like the training ones?

For each category of an inspection folder, the detector is fitted on a random 300 of its
`train/good/` images; the false-alarm rate (share below the threshold, nu = 0.1) is measured on
the other training images (exchangeable with the fitted ones), on `test/good/` (possibly drawn
from elsewhere: other blocks of the photograph), and in-sample.

    python benchmarks/inspection_data.py --set validation --out data/inspection-validation
    python benchmarks/exchangeable_far.py data/inspection-validation       # about 2 minutes
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from oneclass import OneClassDetector
from oneclass.calibration import flagged

FITTED = 300


def _images(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p))[None] for p in sorted(folder.glob("*.png"))])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print("| category | held-out training images | test/good | in-sample |")
    print("|---|---|---|---|")
    for category in sorted(p for p in args.root.iterdir() if (p / "train" / "good").is_dir()):
        train = _images(category / "train" / "good")
        order = np.random.default_rng(args.seed).permutation(len(train))
        fitted, held_out = train[order[:FITTED]], train[order[FITTED:]]
        detector = OneClassDetector(encoder="lite0", seed=args.seed, device="cpu", quiet=True).fit(fitted)
        rates = [
            flagged(detector.score_samples(images), detector.threshold_).mean()
            for images in (held_out, _images(category / "test" / "good"), fitted)
        ]
        print(f"| {category.name} | " + " | ".join(f"{r:.3f}" for r in rates) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does nu hold on small training sets? The false-alarm rate of the default detectors on new
normal images, trained on 100 or 400 images.

For each data set and normal class, the first N training images of the class are the training
folder's images and every test image of the class is a new normal image; the false-alarm rate is
the share of them below the detector's threshold (nu = 0.1 promises about 0.10). Both defaults
run: the whole-image detector (`--data mnist`'s VAE + kernel OC-NN) and the local one (a
folder's default: lite0 patch features + patch OC-NN). Nothing here is used to choose a setting.

    python benchmarks/small_folders.py --out benchmarks/small-folders.md     # about 15 minutes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from oneclass import OneClassDetector
from oneclass.calibration import flagged
from oneclass.data import load_dataset

SIZES = (100, 400)
CLASSES = (0, 2, 4, 6, 8)
DETECTORS = {"whole-image (vae)": "vae", "local (lite0)": "lite0"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    command = "python benchmarks/small_folders.py " + " ".join(argv or sys.argv[1:])
    lines = [
        "| data set | detector | training images | false-alarm rate, mean over classes "
        f"{', '.join(map(str, CLASSES))} | min | max |",
        "|---|---|---|---|---|---|",
    ]
    started = time.perf_counter()
    for dataset in ("mnist", "fashion-mnist"):
        (x, y), (xt, yt) = load_dataset(dataset, "train"), load_dataset(dataset, "test")
        for label, encoder in DETECTORS.items():
            for size in SIZES:
                rates = []
                for normal in CLASSES:
                    train = x[y == normal][:size][:, None]
                    detector = OneClassDetector(encoder=encoder, seed=args.seed, device="cpu", quiet=True)
                    detector.fit(train)
                    new_normal = detector.score_samples(xt[yt == normal][:, None])
                    rates.append(float(flagged(new_normal, detector.threshold_).mean()))
                    print(f"{dataset} {label} n={size} class {normal}: {rates[-1]:.3f}", file=sys.stderr)
                lines.append(
                    f"| {dataset} | {label} | {size} | {np.mean(rates):.3f} | {min(rates):.3f} | "
                    f"{max(rates):.3f} |"
                )
    text = "\n".join(
        [
            f"Command: `{command}` (seed {args.seed}, nu = 0.1, "
            f"{time.perf_counter() - started:.0f} s on this machine)",
            "",
            *lines,
            "",
        ]
    )
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed and memory of the local detector (lite0 patch features + patch OC-NN) on 64x64 images.

Each measurement runs in its own process: fitting on 400, 1,000 and 10,000 training images (time
and peak resident memory, which should stay flat: at most 2,000 images and 100,000 patches are
used), then scoring 2,000 images in PyTorch (images/s, anomaly maps included). The images are
random 64x64 crops of scikit-image's brick photograph (benchmarks/inspection_data.py).

    python benchmarks/local_speed.py                          # about 3 minutes
    python benchmarks/local_speed.py --encoder lite0-fast     # the faster local detector
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

SIZES = (400, 1000, 10000)
SCORED = 2000


def crops(count: int, seed: int) -> np.ndarray:
    sys.path.insert(0, str(Path(__file__).parent))
    from inspection_data import photograph

    image = photograph("brick")
    rng = np.random.default_rng(seed)
    tops = rng.integers(0, image.shape[0] - 64, count)
    lefts = rng.integers(0, image.shape[1] - 64, count)
    return np.stack([image[t : t + 64, s : s + 64][None] for t, s in zip(tops, lefts, strict=True)])


def measure(n: int, encoder: str) -> dict:
    from oneclass import OneClassDetector

    train = crops(n, 0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    detector = OneClassDetector(encoder=encoder, device="cpu", quiet=True).fit(train)
    fit_s = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    test = crops(SCORED, 1)
    detector.score_samples(test[:64])  # warm-up
    started = time.perf_counter()
    for _ in detector.scored_chunks(test, maps=True):
        pass
    score_s = time.perf_counter() - started
    return {
        "n": n,
        "fit_s": fit_s,
        "rss_before_mb": before,
        "rss_peak_fit_mb": peak,
        "images_per_s": SCORED / score_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="lite0", help="the local detector's encoder")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # one measurement, own process
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.encoder)))
        return 0
    print(
        f"encoder {args.encoder}; machine: {platform.machine()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)\n"
    )
    print(
        "| training images | fit (s) | peak RSS during fit (MB) | RSS before fit (MB) "
        "| scoring, maps included (images/s) |"
    )
    print("|---|---|---|---|---|")
    for n in SIZES:
        command = [sys.executable, __file__, "--encoder", args.encoder, "--measure", str(n)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"| {n} | {r['fit_s']:.1f} | {r['rss_peak_fit_mb']:.0f} | {r['rss_before_mb']:.0f} | "
            f"{r['images_per_s']:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

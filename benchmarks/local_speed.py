"""Speed and memory of the local detector (lite0 patch features + patch OC-NN).

Each measurement runs in its own process: fitting on 400, 1,000 and 10,000 training images (time
and peak resident memory, which should stay flat: at most 2,000 images and 100,000 patches are
used), then scoring 2,000 images in PyTorch (images/s, anomaly maps included). The images are
random 64x64 crops of scikit-image's brick photograph (benchmarks/inspection_data.py), enlarged
to ``--size`` pixels a side for larger images.

    python benchmarks/local_speed.py                          # about 3 minutes
    python benchmarks/local_speed.py --encoder lite0-fast     # the faster local detector
    python benchmarks/local_speed.py --size 256 --images 400 --scored 100     # larger images
    python benchmarks/local_speed.py --size 512 --images 30,100 --scored 16   # large images, ~5 min
    python benchmarks/local_speed.py --images 400 --onnx      # also the exported graph in ONNX Runtime

Each writes ``benchmarks/local-speed/<encoder>-<size>px[-onnx].md`` (or ``--out``). With
``--onnx`` the fitted detector is also exported (``oneclass export``'s graph: score and map) and
timed in ONNX Runtime with as many threads as PyTorch, at 4, 16 and 64 images per run (the
record gives each).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _record import record  # benchmarks/_record.py: this folder is on sys.path when run

SIZES = (400, 1000, 10000)
SCORED = 2000


def crops(count: int, seed: int, size: int = 64) -> np.ndarray:
    """``count`` random 64x64 crops of the brick photograph, enlarged to ``size`` (bilinear)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from inspection_data import photograph
    from PIL import Image

    image = photograph("brick")
    rng = np.random.default_rng(seed)
    tops = rng.integers(0, image.shape[0] - 64, count)
    lefts = rng.integers(0, image.shape[1] - 64, count)
    out = [image[t : t + 64, s : s + 64] for t, s in zip(tops, lefts, strict=True)]
    if size != 64:
        out = [np.asarray(Image.fromarray(crop).resize((size, size), Image.BILINEAR)) for crop in out]
    return np.stack(out)[:, None]


ONNX_BATCHES = (4, 16, 64)
ONNX_COLUMNS = "".join(f" ONNX Runtime, {b} per run (images/s) |" for b in ONNX_BATCHES)


def onnx_speeds(detector, images: np.ndarray) -> list[float]:
    """Images/s of ``detector``'s exported graph (score and map) in ONNX Runtime, one figure per
    batch size of ``ONNX_BATCHES``."""
    import tempfile

    import onnxruntime

    from oneclass.services.export import export_onnx

    with tempfile.TemporaryDirectory() as directory:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        path = str(export_onnx(detector, directory))
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    speeds = []
    for batch in ONNX_BATCHES:
        session.run(None, {"images": images[:batch]})  # warm-up
        started = time.perf_counter()
        for start in range(0, len(images), batch):
            session.run(None, {"images": images[start : start + batch]})
        speeds.append(len(images) / (time.perf_counter() - started))
    return speeds


def measure(n: int, encoder: str, size: int, scored: int, onnx: bool = False) -> dict:
    from oneclass import OneClassDetector

    train = crops(n, 0, size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    detector = OneClassDetector(encoder=encoder, device="cpu", quiet=True).fit(train)
    fit_s = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    test = crops(scored, 1, size)
    detector.score_samples(test[:8])  # warm-up
    started = time.perf_counter()
    for _ in detector.scored_chunks(test, maps=True):
        pass
    score_s = time.perf_counter() - started
    return {
        "n": n,
        "fit_s": fit_s,
        "rss_before_mb": before,
        "rss_peak_fit_mb": peak,
        "images_per_s": scored / score_s,
        "onnx_images_per_s": onnx_speeds(detector, test) if onnx else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="lite0", help="the local detector's encoder")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--images", default=",".join(map(str, SIZES)), help="training set sizes")
    parser.add_argument("--scored", type=int, default=SCORED, help="images scored for the speed")
    parser.add_argument("--onnx", action="store_true", help="also time the exported graph in ONNX Runtime")
    parser.add_argument("--out", type=Path, help="[benchmarks/local-speed/<encoder>-<size>px[-onnx].md]")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # one measurement, own process
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.encoder, args.size, args.scored, args.onnx)))
        return 0
    given = argv if argv is not None else sys.argv[1:]
    command = shlex.join(["python", "benchmarks/local_speed.py", *given])
    lines = [
        f"Command: `{command}`",
        "",
        f"encoder {args.encoder}, {args.size}x{args.size} images; machine: {platform.machine()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)",
        "",
        "| training images | fit (s) | peak RSS during fit (MB) | RSS before fit (MB) "
        "| scoring, maps included (images/s) |" + (ONNX_COLUMNS if args.onnx else ""),
        "|---|---|---|---|---|" + ("---|" * len(ONNX_BATCHES) if args.onnx else ""),
    ]
    for n in (int(count) for count in args.images.split(",")):
        command = [sys.executable, __file__, "--encoder", args.encoder, "--measure", str(n)]
        command += ["--size", str(args.size), "--scored", str(args.scored)]
        command += ["--onnx"] if args.onnx else []
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        speed = f"{r['images_per_s']:.0f}" if r["images_per_s"] >= 10 else f"{r['images_per_s']:.1f}"
        peak, before = r["rss_peak_fit_mb"], r["rss_before_mb"]
        lines.append(f"| {n} | {r['fit_s']:.1f} | {peak:.0f} | {before:.0f} | {speed} |")
        if args.onnx:
            lines[-1] += "".join(f" {speed:.0f} |" for speed in r["onnx_images_per_s"])
        print(lines[-1], file=sys.stderr, flush=True)
    suffix = "-onnx" if args.onnx else ""
    record(lines, args.out or Path(f"benchmarks/local-speed/{args.encoder}-{args.size}px{suffix}.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of scoring many images and of a benchmark run over more classes.

Each measurement runs in its own process and reads its peak resident set size (ru_maxrss):

- scoring: a detector (VAE + kernel OC-NN, trained briefly) scores N images, N = 10k, 100k, 200k
  (MNIST test digits tiled); the images themselves take N x 784 bytes;
- folder: `oneclass score` on a folder of N PNG files (N = 10k, 100k MNIST test digits tiled),
  read from disk chunk by chunk; the peak must not grow with N;
- benchmark: `oneclass bench` on 2 classes and on 10 classes with the same small settings; if a
  class left anything behind, the 10-class peak would be higher.

    python benchmarks/memory.py        # about 6 minutes on 2 CPU cores (writes 100k PNGs to /tmp)
"""

from __future__ import annotations

import json
import subprocess
import sys

SCORE = """
import json, resource, sys
import numpy as np
from oneclass import OneClassDetector
from oneclass.data import load_dataset
n = int(sys.argv[1])
x, y = load_dataset("mnist", "test")
detector = OneClassDetector(encoder_epochs=1, head_epochs=2, device="cpu", quiet=True).fit(x[y == 0][:500])
images = np.resize(x, (n, 28, 28))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
scores = detector.score_samples(images)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": n, "input_mb": images.nbytes / 2**20, "peak_before_mb": before, "peak_mb": peak,
                  "scores": len(scores)}))
"""

FIT = """
import sys
from oneclass import OneClassDetector
from oneclass.data import load_dataset
x, y = load_dataset("mnist", "train")
detector = OneClassDetector(encoder="ae", encoder_epochs=1, head_epochs=2, device="cpu", quiet=True)
detector.fit(x[y == 0][:2000]).save(sys.argv[1])
print("{}")
"""

SCORE_FOLDER = """
import json, resource, sys
from click.testing import CliRunner
from oneclass.cli import main
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
result = CliRunner().invoke(main, ["score", sys.argv[1], sys.argv[2], "--out", sys.argv[3], "--device", "cpu",
                                   "--quiet"], catch_exceptions=False)
assert result.exit_code == 0, result.output
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_before_mb": before, "peak_mb": peak, "output": result.output.strip()}))
"""

BENCH = """
import json, resource, sys
from click.testing import CliRunner
from oneclass.cli import main
args = ["bench", "--classes", sys.argv[1], "--train-limit", "1000", "--test-limit", "2000",
        "--encoder-epochs", "1", "--head-epochs", "2", "--svdd-epochs", "1", "--out", sys.argv[2], "--quiet"]
result = CliRunner().invoke(main, args, catch_exceptions=False)
assert result.exit_code == 0, result.output
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"classes": sys.argv[1], "peak_mb": peak}))
"""


def run(code: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_png_folder(path: str, n: int) -> str:
    """``n`` MNIST test digits (tiled) as PNG files in ``path``, 1,000 per subfolder."""
    from pathlib import Path

    from PIL import Image

    from oneclass.data import load_dataset

    x, _ = load_dataset("mnist", "test")
    for i in range(n):
        folder = Path(path) / f"{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i % len(x)]).save(folder / f"{i:06d}.png")
    return path


def main() -> int:
    import tempfile

    print("| what | peak RSS (MB) | notes |")
    print("|---|---|---|")
    for n in (10_000, 100_000, 200_000):
        r = run(SCORE, str(n))
        print(
            f"| score {n} images | {r['peak_mb']:.0f} | before scoring {r['peak_before_mb']:.0f}, "
            f"images {r['input_mb']:.0f} MB |",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as tmp:
        run(FIT, f"{tmp}/model")
        for n in (10_000, 100_000):
            folder = write_png_folder(f"{tmp}/png{n}", n)
            r = run(SCORE_FOLDER, f"{tmp}/model", folder, f"{tmp}/scores{n}.csv")
            print(
                f"| score a folder of {n} PNG files | {r['peak_mb']:.0f} | "
                f"after imports {r['peak_before_mb']:.0f} |",
                flush=True,
            )
    with tempfile.TemporaryDirectory() as tmp:
        for classes in ("0,1", "0,1,2,3,4,5,6,7,8,9"):
            r = run(BENCH, classes, f"{tmp}/{len(classes)}")
            print(
                f"| bench, classes {classes} | {r['peak_mb']:.0f} | 1000 train / 2000 test images, 1 epoch |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

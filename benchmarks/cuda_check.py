"""One prepared check of the CUDA paths, for a machine with an NVIDIA GPU (CI has none).

Through the public CLI, on the same machine, CPU against GPU:

1. ``fit --data mnist --normal 0`` (the default ``ssl-fast+ae``) with ``--device cuda`` and with
   ``--device cpu``: test AUROC of each and fit time;
2. the GPU-fitted model scored on ``mnist:test`` with ``--device cuda`` and ``--device cpu``: the
   largest score difference and the share of decisions that differ;
3. the same two steps for the local detector on an inspection folder (``folder:PATH``), pixel
   AUROC included;
4. ``fit`` under ``torchrun --nproc_per_node 1`` on the GPU (NCCL process group, the
   DistributedDataParallel wrapper with a device id);
5. scoring speed on the GPU and on the machine's CPU through the Python API (warm, the model
   loaded once).

Prints one line per check and a table; exits 1 when a check fails: a fit or score fails, a GPU
AUROC is more than 0.01 below the CPU one, one model's GPU and CPU scores rank the images
differently (Spearman correlation below ``RANK_AGREEMENT``), or its decisions differ on more than
1% of the images. How many scores move by more than ``SCORE_TOLERANCE`` of their spread is said,
not judged: TF32 convolutions round differently on the GPU, and a Fisher-combined score moves by
a whole p-value step (log 2 at the extreme) where a member's score lies within rounding of a
reference score, as in the ONNX parity test. The data must be on the machine already (``$ONECLASS_DATA`` with
``mnist/`` IDX files and ``weights/efficientnet-lite0.safetensors``; the inspection folder from
``benchmarks/inspection_data.py``).

    python benchmarks/cuda_check.py --folder data/inspection/gravel --out /tmp/cuda-check
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

SCORE_TOLERANCE = 1e-3  # of the scores' spread: TF32 convolutions on the GPU round differently
RANK_AGREEMENT = 0.999  # Spearman correlation of one model's GPU and CPU scores
DECISION_TOLERANCE = 0.01
AUROC_TOLERANCE = 0.01
LAUNCHER = "from oneclass.cli import main\nmain()\n"


def cli(out: Path, *args: str, launcher: tuple[str, ...] = ()) -> tuple[int, float, str]:
    """Run ``oneclass ARGS`` (under ``launcher``, e.g. torchrun's module, when given); (exit
    status, seconds, last lines of its output)."""
    script = out / "oneclass_launch.py"
    script.write_text(LAUNCHER)
    clock = time.perf_counter()
    done = subprocess.run([sys.executable, *launcher, str(script), *args], capture_output=True, text=True)
    return done.returncode, time.perf_counter() - clock, (done.stdout + done.stderr)[-1500:]


TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1")


def scores_of(path: Path) -> tuple[np.ndarray, np.ndarray]:
    rows = list(csv.DictReader(path.open()))
    return np.array([float(r["score"]) for r in rows]), np.array([r["prediction"] for r in rows])


class Checks:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, bool]] = []

    def add(self, name: str, value: str, passed: bool) -> None:
        self.rows.append((name, value, passed))
        print(f"[{'ok' if passed else 'FAIL'}] {name}: {value}", flush=True)


def fit_pair(checks: Checks, out: Path, label: str, data: list[str], gpu: str) -> Path | None:
    """Fit on the GPU and on the CPU; compare test AUROC. Returns the GPU run folder."""
    metrics = {}
    for role, device in (("gpu", gpu), ("cpu", "cpu")):
        run = out / f"{label}-{role}"
        status, seconds, tail = cli(out, "fit", *data, "--device", device, "--out", str(run), "--quiet")
        if status != 0:
            checks.add(f"{label}: fit on {device}", f"exit {status}: {tail}", False)
            return None
        metrics[role] = json.loads((run / "metrics.json").read_text())
        pixel = metrics[role].get("test_pixel_auroc")
        extra = f", pixel AUROC {pixel:.4f}" if pixel is not None else ""
        checks.add(
            f"{label}: fit on {device}",
            f"{seconds:.1f} s (fit {metrics[role]['fit_seconds']:.1f} s), test AUROC "
            f"{metrics[role]['test_auroc']:.4f}{extra}",
            True,
        )
    gap = metrics["cpu"]["test_auroc"] - metrics["gpu"]["test_auroc"]
    checks.add(f"{label}: GPU AUROC vs CPU", f"{-gap:+.4f}", gap <= AUROC_TOLERANCE)
    return out / f"{label}-gpu"


def score_pair(checks: Checks, out: Path, label: str, run: Path, source: str, gpu: str) -> None:
    """Score the GPU-fitted model with ``--device cuda`` and ``--device cpu``; compare."""
    found = {}
    for role, device in (("gpu", gpu), ("cpu", "cpu")):
        target = out / f"{label}-scores-{role}.csv"
        status, seconds, tail = cli(out, "score", str(run), source, "--device", device, "--out", str(target))
        if status != 0:
            checks.add(f"{label}: score on {device}", f"exit {status}: {tail}", False)
            return
        found[role] = scores_of(target)
        checks.add(f"{label}: score on {device}", f"{len(found[role][0])} images, {seconds:.1f} s", True)
    (on_gpu, gpu_says), (cpu, cpu_says) = found["gpu"], found["cpu"]
    difference = np.abs(on_gpu - cpu) / (float(np.std(cpu)) or 1.0)
    moved = float(np.mean(difference > SCORE_TOLERANCE))
    checks.add(
        f"{label}: GPU vs CPU scores of one model",
        f"{moved:.4f} of the images move by more than {SCORE_TOLERANCE:g} of the scores' spread "
        f"(median move {np.median(difference):.2g}, largest {difference.max():.2g} of it)",
        True,  # said, not judged: the order and the decisions below are what must agree
    )
    order = float(spearmanr(on_gpu, cpu).statistic)
    checks.add(f"{label}: rank correlation of GPU and CPU scores", f"{order:.5f}", order >= RANK_AGREEMENT)
    differ = float(np.mean(gpu_says != cpu_says))
    checks.add(f"{label}: decisions that differ", f"{differ:.4f}", differ <= DECISION_TOLERANCE)


def speed(checks: Checks, run: Path, images: np.ndarray, label: str, device: str) -> None:
    """Images per second of ``score_samples`` on ``device``, the model loaded once, the best of
    three passes after a warm-up."""
    import torch

    from oneclass import OneClassDetector

    def synchronize() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    detector = OneClassDetector.load(run, device=device)
    detector.score_samples(images[:256])  # warm-up: kernels chosen, memory taken
    synchronize()
    best = np.inf
    for _ in range(3):
        clock = time.perf_counter()
        detector.score_samples(images)
        synchronize()
        best = min(best, time.perf_counter() - clock)
    rate = f"{len(images) / best:,.0f} images/s ({len(images)} images)"
    checks.add(f"{label}: scoring speed on {device}", rate, True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True, help="an inspection category (MVTec layout)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda", help="cpu: a dry run here, on a machine without a GPU")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("cuda_check: no CUDA GPU here; this check is for a machine with one", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if args.device == "cuda" else "none (a dry run on the CPU)"
    print(f"GPU: {name}, torch {torch.__version__}", flush=True)
    checks = Checks()

    run = fit_pair(checks, args.out, "mnist", ["--data", "mnist", "--normal", "0"], args.device)
    if run is not None:
        score_pair(checks, args.out, "mnist", run, "mnist:test", args.device)
        from oneclass.data import load_dataset

        images, _ = load_dataset("mnist", "test")
        speed(checks, run, images, "mnist", args.device)
        speed(checks, run, images, "mnist", "cpu")
    local = fit_pair(checks, args.out, "local", ["--data", f"folder:{args.folder}"], args.device)
    if local is not None:
        score_pair(checks, args.out, "local", local, str(args.folder / "test"), args.device)
        from oneclass.data.folders import folder_splits

        train, _ = folder_splits(args.folder, keep_detail=True)
        tiled = np.resize(train[:], (4096, *train[:].shape[1:]))
        speed(checks, local, tiled, "local", args.device)
        speed(checks, local, tiled[:1024], "local", "cpu")
    backend = "NCCL" if args.device == "cuda" else "gloo"
    status, seconds, tail = cli(
        args.out, "fit", "--data", "mnist", "--normal", "0", "--device", args.device,
        "--out", str(args.out / "mnist-torchrun"), "--quiet", launcher=TORCHRUN,
    )  # fmt: skip
    if status == 0:
        metrics = json.loads((args.out / "mnist-torchrun" / "metrics.json").read_text())
        checks.add(
            f"torchrun (1 process, {backend}) fit on {args.device}",
            f"{seconds:.1f} s, world size {metrics.get('world_size')}, "
            f"test AUROC {metrics['test_auroc']:.4f}",
            metrics.get("world_size") == 1,
        )
    else:
        checks.add(f"torchrun (1 process, {backend}) fit on {args.device}", f"exit {status}: {tail}", False)

    lines = [
        f"Command: `{shlex.join(['python', 'benchmarks/cuda_check.py', *map(str, argv or sys.argv[1:])])}`",
        f"GPU: {name}, torch {torch.__version__}",
        "",
        "| check | result | passed |",
        "|---|---|---|",
        *(f"| {name} | {value} | {'yes' if passed else '**no**'} |" for name, value, passed in checks.rows),
    ]
    (args.out / "cuda-check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(passed for _, _, passed in checks.rows) else 1


if __name__ == "__main__":
    sys.exit(main())

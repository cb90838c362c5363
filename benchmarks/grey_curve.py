"""The local detector on images whose grey levels pass through a curve first (validation
folders only): ``OneClassDetector(encoder="lite0")`` fitted and scored on ``curve(images)``, painting
of synthetic defects included, as ``oneclass bench --methods patch-ocnn`` fits it.

Curves: ``none``; ``sqrt`` (x -> 255 sqrt(x / 255)); ``logA`` (x -> 255 log(1 + A x / 255) /
log(1 + A)), each rounded to a uint8 table. Image AUROC, mean over the folders' categories, by
category and by defect kind::

    python benchmarks/grey_curve.py data/inspection-validation-{0,1,2,3} --curves sqrt,log30 \\
        --seeds 0 --out benchmarks/defaults/patch-grey-curve.md                   # ~5 min a curve
    python benchmarks/grey_curve.py data/inspection-other --curves none,sqrt --seeds 0,1,2 \\
        --out benchmarks/defaults/patch-grey-curve-other.md                  # the check, ~5 min
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from oneclass.data.folders import folder_splits
from oneclass.detector import OneClassDetector
from oneclass.evaluation.metrics import auroc
from oneclass.fileio import atomic_open

KINDS = ("missing", "scratch", "stain")


def curve_table(name: str) -> np.ndarray:
    """The uint8 table ``(256,)`` of curve ``name``."""
    x = np.arange(256) / 255.0
    if name == "none":
        y = x
    elif name == "sqrt":
        y = np.sqrt(x)
    elif name.startswith("log"):
        strength = float(name[3:])
        y = np.log1p(strength * x) / np.log1p(strength)
    else:
        raise SystemExit(f"--curves: unknown curve {name!r}; expected none, sqrt or logA (A > 0)")
    return np.clip(np.round(255 * y), 0, 255).astype(np.uint8)


def category_aurocs(category: Path, table: np.ndarray, seed: int) -> dict[str, float]:
    """{"all" and each kind: image AUROC} of one category's test images, every image curved."""
    train, test = folder_splits(category, keep_detail=True)
    images, tested = table[train[np.arange(len(train))]], table[test[np.arange(len(test))]]
    detector = OneClassDetector(encoder="lite0", seed=seed, nu=0.1, device="cpu", quiet=True).fit(images)
    scores, kinds = detector.score_samples(tested), np.array(test.kinds)
    found = {"all": auroc(scores, test.is_normal)}
    for kind in KINDS:
        keep = test.is_normal | (kinds == kind)
        found[kind] = auroc(scores[keep], test.is_normal[keep])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="validation folders (MVTec layout)")
    parser.add_argument("--curves", default="none,sqrt", help="comma-separated curves")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--out", type=Path, required=True, help="markdown record to write")
    args = parser.parse_args(argv)
    curves, seeds = args.curves.split(","), [int(s) for s in args.seeds.split(",")]
    tables = {name: curve_table(name) for name in curves}
    categories = sorted({c.name for f in args.folders for c in f.iterdir() if c.is_dir()})
    columns = [*(f.name for f in args.folders), *categories, *KINDS]
    lines = [
        f"Command: `python benchmarks/grey_curve.py {' '.join(map(str, args.folders))} --curves "
        f"{args.curves} --seeds {args.seeds} --out {args.out}` (no image of the benchmark's test split)",
        "",
        "| seed | curve | mean image AUROC (%) | " + " | ".join(columns) + " |",
        "|---" * (3 + len(columns)) + "|",
    ]
    for seed in seeds:
        for name, table in tables.items():
            found = {
                (folder.name, c.name): category_aurocs(c, table, seed)
                for folder in args.folders
                for c in sorted(folder.iterdir())
                if c.is_dir()
            }
            groups = [
                *([v["all"] for k, v in found.items() if k[0] == f.name] for f in args.folders),
                *([v["all"] for k, v in found.items() if k[1] == c] for c in categories),
                *([v[kind] for v in found.values()] for kind in KINDS),
            ]
            cells = " | ".join(f"{100 * statistics.mean(g):.1f}" for g in groups)
            mean = statistics.mean(v["all"] for v in found.values())
            lines.append(f"| {seed} | {name} | **{100 * mean:.2f}** | {cells} |")
            print(lines[-1], flush=True)
    with atomic_open(args.out) as handle:
        handle.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

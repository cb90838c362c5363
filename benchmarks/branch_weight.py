"""The defect branch's map at other weights in the local detector's sum (validation folders only).

One fit of the product per category, folder and seed (``OneClassDetector(encoder="lite0")``, as
``oneclass bench --methods patch-ocnn`` fits it); the branch's standardised map is then weighted by
w before it is added (its per-pixel spread divided by w; w = 0 leaves it out) and the test images
rescored. Image AUROC, mean over the folders' categories, and by defect kind::

    python benchmarks/branch_weight.py data/inspection-validation-{0,1,2,3} --seeds 0,1 \\
        --out benchmarks/defaults/patch-branch-weight.md                                # ~12 min
"""

from __future__ import annotations

import statistics
from pathlib import Path

from _folders import KINDS, fitted_product, folder_arguments, kind_aurocs, seeds_of
from _record import record  # benchmarks/: this folder is on sys.path when run

WEIGHTS = (0.0, 0.5, 0.75, 1.0, 1.5)


def weighted_aurocs(category: Path, seed: int) -> dict[float, dict[str, float]]:
    """{w: {"all" and each kind: image AUROC}} of one category's test images."""
    detector, _, test, tested = fitted_product(category, seed)
    scorer = detector.head_.scorer_
    spread, out = scorer.tuned_spread.clone(), {}
    for weight in WEIGHTS:
        scorer.tuned_spread = spread / weight if weight else spread * 1e12
        out[weight] = kind_aurocs(detector.score_samples(tested), test)
    scorer.tuned_spread = spread
    return out


def main(argv: list[str] | None = None) -> int:
    args = folder_arguments(__doc__.splitlines()[0]).parse_args(argv)
    lines = [
        f"Command: `python benchmarks/branch_weight.py {' '.join(map(str, args.folders))} --seeds "
        f"{args.seeds} --out {args.out}` (validation folders only, no test image)",
        "",
        "| seed | weight of the defect branch's map | mean image AUROC (%) | "
        + " | ".join(f.name for f in args.folders)
        + " | "
        + " | ".join(KINDS)
        + " |",
        "|---" * (3 + len(args.folders) + len(KINDS)) + "|",
    ]
    for seed in seeds_of(args.seeds):
        found = {
            folder: [weighted_aurocs(c, seed) for c in sorted(folder.iterdir()) if c.is_dir()]
            for folder in args.folders
        }
        for weight in WEIGHTS:
            per_folder = [statistics.mean(c[weight]["all"] for c in found[f]) for f in args.folders]
            per_kind = [statistics.mean(c[weight][k] for f in args.folders for c in found[f]) for k in KINDS]
            row = [f"{100 * statistics.mean(per_folder):.2f}", *(f"{100 * v:.1f}" for v in per_folder)]
            lines.append(
                f"| {seed} | {weight:g} | " + " | ".join(row) + " | "
                + " | ".join(f"{100 * v:.1f}" for v in per_kind) + " |"
            )  # fmt: skip
            print(lines[-1], flush=True)
    record(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Choose the kernel OC-NN's defaults without looking at any test split.

Every variant of the head runs on the validation split of the one-class protocol
(``oneclass bench --split validation``: 20% of the normal class's training images held out, the
other classes' training images as stand-in anomalies; the test split is never loaded), on the
same encoder latents, for every class of MNIST and Fashion-MNIST. The variants move one setting
at a time away from the current default. The script prints mean validation AUROC and the
false-alarm rate at the threshold per variant and data set, writes them to
``benchmarks/defaults/``, and names the variant with the best AUROC averaged over both data sets.

    python benchmarks/select_defaults.py --features ae --seeds 0      # about 25 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from oneclass.evaluation.methods import BenchConfig, HeadMethod
from oneclass.services.bench import run_benchmark

VARIANTS = {
    "default (bandwidth 0.2, 2048 units, whitened)": {},
    "bandwidth 0.1": {"bandwidth": 0.1},
    "bandwidth 0.3": {"bandwidth": 0.3},
    "bandwidth 0.5": {"bandwidth": 0.5},
    "bandwidth 0.8": {"bandwidth": 0.8},
    "512 units": {"hidden": 512},
    "1024 units": {"hidden": 1024},
    "4096 units": {"hidden": 4096},
    "not whitened (per-dimension scaling)": {"whiten": False},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", default="ae", help="encoder whose latents the heads see")
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/defaults"))
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = [HeadMethod("ocnn", args.features, name=name, **params) for name, params in VARIANTS.items()]
    methods.append(HeadMethod("knn", args.features, name="5-NN distance (reference)"))
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for dataset in args.datasets.split(","):
        out = args.out / f"{dataset}-{args.features}"
        command = " ".join(["python benchmarks/select_defaults.py", *(argv or sys.argv[1:])])
        records = run_benchmark(
            dataset, methods, list(range(10)), seeds, BenchConfig(split="validation"), out,
            command=command, log=lambda line: print(line, file=sys.stderr, flush=True),
        )  # fmt: skip
        for method in methods:
            rows = [r for r in records if r["method"] == method.name]
            table.setdefault(method.name, {})[dataset] = (
                float(np.mean([r["auroc"] for r in rows])),
                float(np.mean([r["false_alarm_rate"] for r in rows])),
            )
    datasets = args.datasets.split(",")
    print(f"features: {args.features}; seeds {seeds}; validation split (no test images)\n")
    print("| variant | " + " | ".join(f"{d} AUROC (%) | {d} FAR" for d in datasets) + " | mean AUROC (%) |")
    print("|---" * (2 * len(datasets) + 2) + "|")
    for name, cells in table.items():
        values = " | ".join(f"{100 * cells[d][0]:.2f} | {cells[d][1]:.3f}" for d in datasets)
        print(f"| {name} | {values} | {100 * np.mean([cells[d][0] for d in datasets]):.2f} |")
    heads = {k: v for k, v in table.items() if not k.endswith("(reference)")}
    best = max(heads, key=lambda k: np.mean([heads[k][d][0] for d in datasets]))
    print(f"\nbest on validation: {best}")
    (args.out / f"selection-{args.features}.json").write_text(
        json.dumps({"best": best, "table": table}, indent=2)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Choose the patch OC-NN's defaults on the inspection benchmark's validation split.

The validation folders (``python benchmarks/inspection_data.py --set validation``) are cut from
the test set's training blocks only; no test image is read. Each variant moves one setting away
from the current default; the script prints mean image AUROC, pixel AUROC, PRO and the
false-alarm rate at the threshold over the categories, and names the variant with the best mean
image AUROC.

    python benchmarks/inspection_data.py --set validation --out data/inspection-validation
    python benchmarks/select_patch_defaults.py data/inspection-validation     # about 10 minutes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from oneclass.evaluation.metrics import auroc, pixel_auroc, pro_score
from oneclass.heads.ocnn.patch import PatchOCNN
from oneclass.services.inspection import categories, load_task

VARIANTS = {
    "default (2048 units, bandwidth 0.2, worst 1%)": {},
    "1024 units": {"hidden": 1024},
    "512 units": {"hidden": 512},
    "4096 units": {"hidden": 4096},
    "bandwidth 0.1": {"bandwidth": 0.1},
    "bandwidth 0.5": {"bandwidth": 0.5},
    "worst region only": {"top_share": 1e-9},
    "worst 3%": {"top_share": 0.03},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoder", default="lite0")
    args = parser.parse_args(argv)
    table = {name: [] for name in VARIANTS}
    for category in categories(args.root):
        task = load_task(category, args.seed, 0.1)
        train, test = task.features(args.encoder)
        for name, params in VARIANTS.items():
            head = PatchOCNN(seed=args.seed, **params).fit(
                lambda index, train=train: train[index], len(train), task.image_size
            )
            scores, maps = head.score_maps(test)
            far = float((scores[task.test_is_normal] < head.threshold_).mean())
            row = (
                auroc(scores, task.test_is_normal),
                pixel_auroc(maps, task.masks),
                pro_score(maps, task.masks),
                far,
            )
            table[name].append(row)
            print(
                f"{category.name} {name}: " + " ".join(f"{v:.4f}" for v in row), file=sys.stderr, flush=True
            )
    print(f"validation split {args.root} (no test images), seed {args.seed}, encoder {args.encoder}\n")
    print("| variant | image AUROC (%) | pixel AUROC (%) | PRO (%) | false-alarm rate |")
    print("|---|---|---|---|---|")
    means = {}
    for name, rows in table.items():
        means[name] = np.mean(rows, axis=0)
        m = means[name]
        print(f"| {name} | {100 * m[0]:.2f} | {100 * m[1]:.2f} | {100 * m[2]:.2f} | {m[3]:.3f} |")
    best = max(means, key=lambda k: means[k][0])
    print(f"\nbest on validation: {best}")
    out = Path("benchmarks/defaults") / f"patch-selection-{args.encoder}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"best": best, "means": {k: v.tolist() for k, v in means.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

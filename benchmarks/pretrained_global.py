"""ImageNet features of the whole image on a validation split: at which size, from which blocks,
alone and as a third Fisher member of ``ssl-fast+ae`` (no test image is loaded).

The features (``networks/global_features.py``: EfficientNet-Lite0's blocks 10 and 15 averaged
over the image resized to a smaller side of 56, 84 or 112 pixels; "block 15" rows use only its
320 columns) are computed once per size for the whole training split: nothing in them is trained,
so they do not depend on the normal class. For each normal class, ``validation_split`` holds out
20% of its training images and joins nine times as many of the other classes; the kernel OC-NN
(the product's head, width 0.2) on the features alone, the default ``ssl-fast+ae`` (its two heads
fitted on all its training images, as in ``fashion_levers.py``), and the default with one more
kernel OC-NN on the features, the three Fisher-combined.

    python benchmarks/pretrained_global.py --out benchmarks/defaults/pretrained-global/fashion-mnist.md
    python benchmarks/pretrained_global.py --dataset mnist --sides 84 \
        --out benchmarks/defaults/pretrained-global/mnist.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _record import class_table, record  # benchmarks/_record.py: this folder is on sys.path when run
from fashion_levers import fisher_heads, fit, with_third_member

from oneclass.data.datasets import load_dataset
from oneclass.evaluation.metrics import auroc
from oneclass.evaluation.protocol import validation_split
from oneclass.heads.ocnn.heads import KernelOCNN
from oneclass.networks.global_features import TAPS, GlobalImageNetFeatures
from oneclass.training.autoencoder import encode

BATCH = 64
OUT = Path("benchmarks/defaults/pretrained-global/fashion-mnist.md")
LAST_BLOCK = 320  # block 15's channels: the last columns of the features


def split_features(x: np.ndarray, side: int) -> np.ndarray:
    """Features ``(n, 432)`` of every image of the split ``x`` ``(n, H, W)`` at ``side`` pixels."""
    net = GlobalImageNetFeatures((1, *x.shape[1:]), side=side).load_pretrained()
    return encode(net, x[:, None], torch.device("cpu"), BATCH)


def class_results(
    x: np.ndarray, y: np.ndarray, normal: int, seed: int, features: dict[int, np.ndarray]
) -> dict[str, float]:
    """Validation AUROC of the default, of the features at each size alone (blocks 10 and 15, and
    block 15 alone) and of the default with them as a third member."""
    fit_rows, val_rows, is_normal = validation_split(y, (normal,), seed)
    default = fit(x[fit_rows], seed)
    z_fit, z_val = default.transform(x[fit_rows]), default.transform(x[val_rows])
    sizes = tuple(default.encoder_.group_sizes)
    results = {
        "ssl-fast+ae (the default, heads on all images)": auroc(
            fisher_heads(z_fit, z_val, sizes, (0.2, 0.2)), is_normal
        )
    }
    for side, table in features.items():
        for blocks, columns in ((TAPS, slice(None)), ((15,), slice(-LAST_BLOCK, None))):
            g_fit, g_val = table[fit_rows][:, columns], table[val_rows][:, columns]
            alone = KernelOCNN(seed=0).fit(g_fit).score_samples(g_val)
            name = f"{side} px, block{'s' if len(blocks) > 1 else ''} {' and '.join(map(str, blocks))}"
            results[f"ImageNet features alone, {name}"] = auroc(alone, is_normal)
            if blocks == TAPS:
                three = with_third_member(z_fit, z_val, sizes, g_fit, g_val)
                results[f"ssl-fast+ae + ImageNet features, {name}"] = auroc(three, is_normal)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist or mnist")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sides", default="56,84,112", help="smaller sides to resize the images to")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    x, y = load_dataset(args.dataset, "train")
    started = time.perf_counter()
    features = {}
    for side in (int(s) for s in args.sides.split(",")):
        clock = time.perf_counter()
        features[side] = split_features(x, side)
        speed = len(x) / (time.perf_counter() - clock)
        print(f"{side} px: {speed:.0f} images/s", file=sys.stderr, flush=True)
    classes = [int(c) for c in args.classes.split(",")]
    per_class = {}
    for normal in classes:
        per_class[normal] = class_results(x, y, normal, args.seed, features)
        rounded = {k: round(100 * v, 2) for k, v in per_class[normal].items()}
        print(normal, rounded, file=sys.stderr, flush=True)
    command = shlex.join(["python", "benchmarks/pretrained_global.py", *(argv or sys.argv[1:])])
    lines = [
        f"Command: `{command}` ({args.dataset}, validation split, seed {args.seed}; 2 cores, "
        f"{(time.perf_counter() - started) / 60:.0f} min)",
        "",
        "Validation AUROC (%) of ImageNet features of the whole image (Lite0, kernel OC-NN), alone and "
        "as a third member of `ssl-fast+ae`:",
        "",
        *class_table(per_class, classes),
    ]
    record(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

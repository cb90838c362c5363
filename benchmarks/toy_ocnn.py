"""Why the paper's OC-NN ranks badly, on a 2-D toy set where the answer can be seen.

Normal data: a noisy ring centred away from the origin (as latents are). Abnormal test points:
uniform in the plane, split into those inside the ring's hole and those outside it. For each
variant the script draws the score map (higher = more normal, the white line is the threshold)
and prints the AUROC against each kind of outlier plus the share of training data below it.

    python benchmarks/toy_ocnn.py --out docs/figures     # about a minute on 2 CPU cores
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from oneclass.calibration import flagged  # noqa: E402
from oneclass.evaluation.metrics import auroc  # noqa: E402
from oneclass.heads import KernelOCNN, OCSVMHead, PaperOCNN  # noqa: E402

CENTRE = np.array([2.0, 1.0])


def ring(n: int, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = 1.0 + 0.1 * rng.normal(size=n)
    return (CENTRE + np.c_[radius * np.cos(angle), radius * np.sin(angle)]).astype(np.float32)


def outliers(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    points = CENTRE + rng.uniform(-2.5, 2.5, size=(n, 2))
    distance = np.linalg.norm(points - CENTRE, axis=1)
    inside, outside = points[distance < 0.6], points[distance > 1.4]
    return inside.astype(np.float32), outside.astype(np.float32)


VARIANTS = {
    "paper (sigmoid, r per batch)": lambda s: PaperOCNN(seed=s),
    "paper, 100 epochs": lambda s: PaperOCNN(epochs=100, seed=s),
    "paper, 1024 hidden": lambda s: PaperOCNN(hidden=1024, seed=s),
    "paper, nu=0.3": lambda s: PaperOCNN(nu=0.3, seed=s),
    "kernel OC-NN (default)": lambda s: KernelOCNN(seed=s),
    "kernel OC-NN untrained (kernel density)": lambda s: KernelOCNN(tol=1e9, seed=s),
    "kernel OC-NN, bandwidth 1.0": lambda s: KernelOCNN(bandwidth=1.0, seed=s),
    "RBF OC-SVM (scikit-learn)": lambda s: OCSVMHead(),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    train, test_normal = ring(2000, rng), ring(1000, rng)
    inside, outside = outliers(4000, rng)
    grid_x, grid_y = np.meshgrid(np.linspace(-1, 5, 160), np.linspace(-2, 4, 160))
    grid = np.c_[grid_x.ravel(), grid_y.ravel()].astype(np.float32)

    columns = 4
    rows = -(-len(VARIANTS) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.6 * rows))
    print("| variant | AUROC vs outliers inside the ring | AUROC vs outliers outside | train share below r |")
    print("|---|---|---|---|")
    for axis, (name, make) in zip(axes.ravel(), VARIANTS.items(), strict=False):
        head = make(args.seed).fit(train)
        normal_scores = head.score_samples(test_normal)
        inside_auc = auroc(
            np.r_[normal_scores, head.score_samples(inside)],
            np.r_[np.ones(len(test_normal)), np.zeros(len(inside))],
        )
        outside_auc = auroc(
            np.r_[normal_scores, head.score_samples(outside)],
            np.r_[np.ones(len(test_normal)), np.zeros(len(outside))],
        )
        share = float(flagged(head.score_samples(train), head.threshold_).mean())
        print(f"| {name} | {inside_auc:.3f} | {outside_auc:.3f} | {share:.3f} |")
        scores = head.score_samples(grid).reshape(grid_x.shape)
        axis.contourf(grid_x, grid_y, scores, levels=30, cmap="viridis")
        axis.contour(grid_x, grid_y, scores, levels=[head.threshold_], colors="white", linewidths=1.5)
        axis.scatter(train[::8, 0], train[::8, 1], s=2, c="red")
        axis.scatter([0], [0], marker="+", c="black")
        axis.set_title(f"{name}\nAUROC in {inside_auc:.2f} / out {outside_auc:.2f}", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    for axis in axes.ravel()[len(VARIANTS) :]:
        axis.axis("off")
    args.out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.out / "toy_ocnn_score_maps.png", dpi=80)
    print(f"\nwrote {args.out / 'toy_ocnn_score_maps.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The image's own regions as the reference: a zero-shot member beside the local detector's sum
(validation folders only).

A texture repeats itself, so a region unlike every other region of the same image is suspect,
whatever the training images looked like (zero-shot texture detectors score this way). It is the
one reference that a change of light between the training blocks and new crops cannot move (at
nu = 0.1 the default flags 74% of the test split's good crops). Each region's anomaly here is its
distance to the nearest region of the same image outside a window of ``radius`` regions around it
(so that the regions of one defect do not vouch for each other), in the OC-NN's whitened descriptor
space; the map is smoothed and standardised per pixel by the training images' maps as the other
members are, weighted by w, and added to the product's summed map (w = 0: the product as it is).

One fit of the product per category, folder and seed (``OneClassDetector(encoder="lite0")``, as
``oneclass bench --methods patch-ocnn`` fits it). Image AUROC, mean over the folders' categories,
by category and by defect kind::

    python benchmarks/self_similarity.py data/inspection-validation-{0,1,2,3} --seeds 0,1 \\
        --out benchmarks/defaults/patch-self-similarity.md                              # ~16 min
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from _folders import (
    categories_of,
    each_category,
    fitted_product,
    folder_arguments,
    kind_aurocs,
    seeds_of,
    summary_row,
    table_head,
)
from _record import record  # benchmarks/: this folder is on sys.path when run

from oneclass.detector import OneClassDetector
from oneclass.heads.ocnn.patch import smooth_maps, split_logit, worst_share_score

RADII = (8, 12)  # regions (2 image pixels each at lite0's scale); a defect spans up to about 8
WEIGHTS = (0.5, 1.0)


def whitened_regions(detector: OneClassDetector, images: np.ndarray) -> torch.Tensor:
    """Every region's descriptor ``(n, h * w, D)`` in the OC-NN's whitened space, and the grid."""
    scorer = detector.head_.scorer_
    with torch.no_grad():
        descriptors, _ = split_logit(detector._patch_features(detector._images(images)), scorer.tuned)
    n, dim, h, w = descriptors.shape
    flat = descriptors.permute(0, 2, 3, 1).reshape(n, h * w, dim)
    return (flat - scorer.net.mean) @ scorer.net.transform, (h, w)


def self_distances(regions: torch.Tensor, grid: tuple[int, int], radius: int) -> torch.Tensor:
    """``(n, h, w)``: each region's distance to the nearest region of its own image that lies
    more than ``radius`` regions away (Chebyshev) from it."""
    h, w = grid
    rows, columns = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    places = torch.stack([rows.flatten(), columns.flatten()], 1).float()
    near = torch.cdist(places, places, p=float("inf")) <= radius
    nearest = []
    for part in regions.split(32):
        squared = (part * part).sum(-1)
        d2 = squared[:, :, None] + squared[:, None, :] - 2 * part @ part.transpose(1, 2)
        nearest.append(d2.masked_fill(near, torch.inf).amin(2).clamp_min(0).sqrt())
    return torch.cat(nearest).view(-1, h, w)


def standardised(train_maps: torch.Tensor, test_maps: torch.Tensor) -> torch.Tensor:
    """``test_maps`` minus the training maps' per-pixel mean, over their spread (floored at 1%
    of the map's mean spread, as the product's members)."""
    spread = train_maps.std(0)
    return (test_maps - train_maps.mean(0)) / spread.clamp_min(0.01 * spread.mean())


def category_aurocs(category: Path, seed: int) -> dict[str, dict[str, float]]:
    """{row: {"all" and each kind: image AUROC}} of one category's test images."""
    detector, images, test, tested = fitted_product(category, seed)
    scores, maps = detector.scores_and_maps(tested)
    maps, size = torch.from_numpy(maps), detector.head_.scorer_.image_size
    share = detector.head_.scorer_.top_share
    train_regions, grid = whitened_regions(detector, images)
    test_regions, _ = whitened_regions(detector, tested)
    rows = {"the product (w = 0)": scores}
    for radius in RADII:
        train_maps = smooth_maps(self_distances(train_regions, grid, radius), size)
        own = standardised(train_maps, smooth_maps(self_distances(test_regions, grid, radius), size))
        rows[f"own regions alone, radius {radius}"] = worst_share_score(own, share).numpy()
        for weight in WEIGHTS:
            summed = worst_share_score(maps + weight * own, share).numpy()
            rows[f"the product + {weight:g} x own regions, radius {radius}"] = summed
    return {name: kind_aurocs(row_scores, test) for name, row_scores in rows.items()}


def main(argv: list[str] | None = None) -> int:
    args = folder_arguments(__doc__.splitlines()[0]).parse_args(argv)
    categories = categories_of(args.folders)
    command = (
        f"Command: `python benchmarks/self_similarity.py {' '.join(map(str, args.folders))} --seeds "
        f"{args.seeds} --out {args.out}` (validation folders only, no test image)"
    )
    lines = table_head(command, "candidate", args.folders, categories)
    for seed in seeds_of(args.seeds):
        found = each_category(args.folders, lambda category, seed=seed: category_aurocs(category, seed))
        for name in next(iter(found.values())):
            mean, cells = summary_row({k: v[name] for k, v in found.items()}, args.folders, categories)
            lines.append(f"| {seed} | {name} | **{100 * mean:.2f}** | {cells} |")
            print(lines[-1], flush=True)
    record(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

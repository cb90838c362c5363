"""One-off: the default kernel OC-NN with other input geometries and bandwidth mixtures, against
kNN, per class on latents cached by cache_latents.py (seeds as given).

    python benchmarks/scratch/head_geometry.py fashion-mnist 0,1,2 "default,geometry=global,knn"

A spec is "default" (the head with per-dimension scaling, its default when this was written),
"knn", "knn;geometry=standard" or ";"-separated settings: geometry=standard (per-dimension
scale), global (one scale, kNN's geometry) or whiten (PCA);
scales=0.5/1/2 (bandwidth multipliers dealt out over the units in turn); nu, bandwidth, hidden.

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import sys

import numpy as np
import torch

from oneclass.evaluation.metrics import auroc
from oneclass.heads import KernelOCNN, KNNHead
from oneclass.heads.ocnn import KernelOCNNNet, median_distance, whitening


def geometry_map(Z, geometry):
    mean = Z.mean(0)
    if geometry == "standard":
        transform = np.diag(1 / (Z.std(0) + 1e-6))
    elif geometry == "global":
        transform = np.eye(Z.shape[1]) / Z.std()
    elif geometry == "raw":
        transform = np.eye(Z.shape[1])
    else:
        transform = whitening(Z)
    return lambda X: ((X - mean) @ transform).astype(np.float32)


class MixedWidths(KernelOCNN):
    """KernelOCNN on already-mapped latents (no standardisation of its own), a width per unit."""

    def __init__(self, scales=(1.0,), **kw):
        super().__init__(**kw)
        self.scales = scales

    def _build(self, Z):
        rng = np.random.default_rng(self.seed)
        centres = Z[rng.choice(len(Z), min(self.hidden, len(Z)), replace=False)]
        width = self.bandwidth * median_distance(Z, rng)
        d = Z.shape[1]
        net = KernelOCNNNet(torch.zeros(d), torch.eye(d), torch.from_numpy(centres), 1.0, False)
        per_unit = np.array([self.scales[j % len(self.scales)] for j in range(len(centres))])
        net.gamma = torch.from_numpy((1 / (2 * (width * per_unit) ** 2)).astype(np.float32))
        return net


def run(spec, train, test):
    if spec == "default":
        return KernelOCNN(whiten=False).fit(train).score_samples(test)
    settings = (
        dict(part.split("=") for part in spec.split(";")[1:] if part)
        if spec.startswith("knn")
        else dict(part.split("=") for part in spec.split(";"))
    )
    mapping = geometry_map(train, settings.pop("geometry", "raw" if spec.startswith("knn") else "standard"))
    if spec.startswith("knn"):
        return KNNHead(k=int(settings.get("k", 5))).fit(mapping(train)).score_samples(mapping(test))
    scales = tuple(float(s) for s in settings.pop("scales", "1").split("/"))
    cast = {"nu": float, "bandwidth": float, "hidden": int}
    head = MixedWidths(scales, **{k: cast[k](v) for k, v in settings.items()})
    return head.fit(mapping(train)).score_samples(mapping(test))


dataset, seeds, specs = sys.argv[1], [int(s) for s in sys.argv[2].split(",")], sys.argv[3].split(",")
table = {spec: np.zeros((len(seeds), 10)) for spec in specs}
for i, seed in enumerate(seeds):
    for c in range(10):
        cached = np.load(f"/tmp/lat/{dataset}_{seed}_{c}.npz")
        for spec in specs:
            table[spec][i, c] = auroc(run(spec, cached["train"], cached["test"]), cached["normal"])
    print(f"seed {seed}", {s: round(100 * table[s][i].mean(), 2) for s in specs}, flush=True)
for spec in specs:
    per_class = " ".join(f"{100 * v:5.1f}" for v in table[spec].mean(0))
    per_seed = " ".join(f"{100 * v:.2f}" for v in table[spec].mean(1))
    print(f"{spec:34s} {per_class} | {100 * table[spec].mean():.2f} (seeds {per_seed})", flush=True)

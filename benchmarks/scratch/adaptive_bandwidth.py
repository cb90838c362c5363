"""One-off: kernel OC-NN with a bandwidth per centre (distance to its k-th neighbour), on latents
cached by cache_latents.py.

    python benchmarks/scratch/adaptive_bandwidth.py fashion-mnist "adapt k5 s1,adapt k5 s2"

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import sys

import numpy as np
import torch

from oneclass.evaluation.metrics import auroc
from oneclass.heads import KernelOCNN, KNNHead
from oneclass.heads.ocnn import KernelOCNNNet


def kth_distance(centres, points, k):
    c = torch.from_numpy(centres).double()
    p = torch.from_numpy(points).double()
    d = torch.cdist(c, p)  # (m, n)
    return d.topk(k + 1, largest=False).values[:, k].numpy()  # skip self (distance 0)


class Adaptive(KernelOCNN):
    def __init__(self, k=5, scale=1.0, raw=False, **kw):
        super().__init__(**kw)
        self.k, self.scale, self.raw = k, scale, raw

    def _build(self, Z):
        rng = np.random.default_rng(self.seed)
        if self.raw:
            mean = np.zeros(Z.shape[1], np.float32)
            sc = np.full(Z.shape[1], Z.std(), np.float32)
        else:
            mean, sc = Z.mean(0), Z.std(0) + 1e-6
        standard = ((Z - mean) / sc).astype(np.float32)
        centres = standard[rng.choice(len(Z), min(self.hidden, len(Z)), replace=False)]
        dk = kth_distance(centres, standard, self.k)
        dk = np.maximum(dk, 1e-3 * np.median(dk))
        net = KernelOCNNNet(
            torch.from_numpy(mean.astype(np.float32)),
            torch.diag(torch.from_numpy(1 / sc.astype(np.float32))),
            torch.from_numpy(centres),
            1.0,
            False,
        )
        net.gamma = torch.from_numpy((1.0 / (2.0 * (self.scale * dk) ** 2)).astype(np.float32))
        return net


ds = sys.argv[1]
V = {
    "h4096": lambda: KernelOCNN(whiten=False),
    "adapt k5 s1": lambda: Adaptive(k=5, scale=1.0),
    "adapt k5 s2": lambda: Adaptive(k=5, scale=2.0),
    "adapt k10 s1": lambda: Adaptive(k=10, scale=1.0),
    "adapt k5 s1 raw": lambda: Adaptive(k=5, scale=1.0, raw=True),
    "knn": lambda: KNNHead(),
}
if len(sys.argv) > 2:
    V = {k: V[k] for k in sys.argv[2].split(",")}
res = {k: [] for k in V}
for c in range(10):
    d = np.load(f"/tmp/lat/{ds}_0_{c}.npz")
    for k, f in V.items():
        h = f().fit(d["train"])
        res[k].append(auroc(h.score_samples(d["test"]), d["normal"]))
    print(c, {k: round(100 * v[-1], 1) for k, v in res.items()}, flush=True)
for k in V:
    print(
        f"{k:20s}", " ".join(f"{100 * v:5.1f}" for v in res[k]), f"| {100 * np.mean(res[k]):.2f}", flush=True
    )

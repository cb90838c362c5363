"""One-off: the 0/6/9 task with the hidden layer scaled by sqrt(1024 / units), and 4096 / 8192 units.

python benchmarks/scratch/units_scaling_069.py 069

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import sys

import numpy as np

from oneclass import OneClassDetector
from oneclass.data import load_dataset
from oneclass.evaluation.metrics import auroc
from oneclass.heads import KernelOCNN


class Scaled(KernelOCNN):
    def __init__(self, ref=1024, **kw):
        super().__init__(**kw)
        self.ref = ref

    def _build(self, Z):
        net = super()._build(Z)
        c = (self.ref / net.V.weight.shape[0]) ** 0.5
        orig = net.hidden
        net.hidden = lambda z: orig(z) * c
        return net


V = {
    "4096 scaled to 1024": lambda: Scaled(hidden=4096),
    "1024": lambda: KernelOCNN(whiten=False, hidden=1024),
    "4096": lambda: KernelOCNN(whiten=False, hidden=4096),
    "8192 scaled to 1024": lambda: Scaled(hidden=8192),
}
if sys.argv[1] == "069":
    x, y = load_dataset("mnist", "train")
    xt, yt = load_dataset("mnist", "test")
    d = OneClassDetector(encoder="ae", encoder_epochs=5, seed=0, device="cpu", quiet=True)
    d.fit_encoder(x)
    z, zt = d.transform(x), d.transform(xt)
    m = np.isin(y, (0, 6, 9))
    tm = np.isin(yt, (0, 6, 9))
    for k, f in V.items():
        h = f().fit(z[m])
        s = h.score_samples(zt)
        print(k, round(auroc(s, tm), 4), round(float((s[tm] < h.offset_).mean()), 3), flush=True)
else:
    ds = sys.argv[1]
    res = {k: [] for k in V}
    for c in range(10):
        dd = np.load(f"/tmp/lat/{ds}_0_{c}.npz")
        for k, f in V.items():
            if k in ("1024", "4096"):
                continue
            h = f().fit(dd["train"])
            res[k].append(auroc(h.score_samples(dd["test"]), dd["normal"]))
    for k in V:
        if res[k]:
            print(
                k, " ".join(f"{100 * v:5.1f}" for v in res[k]), f"| {100 * np.mean(res[k]):.2f}", flush=True
            )

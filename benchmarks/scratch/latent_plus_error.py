"""One-off: append the autoencoder's log reconstruction error to the latent (scaled to the latent's
typical spread times a weight) and fit both the kernel OC-NN and 5-NN distance on the result.

python benchmarks/scratch/latent_plus_error.py fashion-mnist 2,4,6,0,8 1,3

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import sys

import numpy as np
import torch

from oneclass.data import load_dataset
from oneclass.evaluation.methods import BenchConfig, ClassTask
from oneclass.evaluation.metrics import auroc
from oneclass.evaluation.protocol import one_class_split
from oneclass.heads import KernelOCNN, KNNHead
from oneclass.training.autoencoder import reconstruction_scores

dataset, classes = sys.argv[1], [int(c) for c in sys.argv[2].split(",")]
weights = [float(w) for w in sys.argv[3].split(",")]
x, y = load_dataset(dataset, "train")
xt, yt = load_dataset(dataset, "test")
results: dict[str, list[float]] = {}
for c in classes:
    index = one_class_split(y, (c,))
    task = ClassTask(dataset, c, 0, x[index][:, None], xt[:, None], yt == c, BenchConfig(encoder_epochs=15))
    train, test = task.features("ae")
    model = task.encoder("ae").encoder_
    errors = [
        np.log(reconstruction_scores(model, images, torch.device("cpu")))
        for images in (task.train_x, task.test_x)
    ]
    spread = float(np.sqrt((train.std(0) ** 2).mean()))  # a typical latent dimension's std
    centre, scale = errors[0].mean(), errors[0].std()
    results.setdefault("error alone", []).append(auroc(-errors[1], task.test_is_normal))
    for weight in [0.0, *weights]:
        extra = [weight * spread * (e - centre) / scale for e in errors]
        z_train, z_test = (
            np.c_[z, e[:, None]].astype(np.float32) for z, e in zip((train, test), extra, strict=True)
        )
        for name, head in (("ocnn", KernelOCNN(whiten=False, seed=0)), ("knn", KNNHead())):
            score = head.fit(z_train).score_samples(z_test)
            results.setdefault(f"{name}, error weight {weight}", []).append(auroc(score, task.test_is_normal))
    print(f"class {c} done", file=sys.stderr, flush=True)
for name, values in results.items():
    print(dataset, name, " ".join(f"{100 * v:.1f}" for v in values), f"mean {100 * np.mean(values):.2f}")

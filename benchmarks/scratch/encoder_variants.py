"""One-off: does a different autoencoder change the order of the kernel OC-NN and 5-NN distance?
Trains the benchmark's AE per class with other settings, then fits both heads on its latents.

python benchmarks/scratch/encoder_variants.py fashion-mnist 2,4,6,0,8 "epochs=30" "latent_dim=64"

Pinned to ``whiten=False`` (per-dimension scaling): its figures predate the whitened default.
"""

import sys

from oneclass.data import load_dataset
from oneclass.evaluation.methods import BenchConfig, ClassTask
from oneclass.evaluation.metrics import auroc
from oneclass.evaluation.protocol import one_class_split
from oneclass.heads import KernelOCNN, KNNHead

dataset, classes = sys.argv[1], [int(c) for c in sys.argv[2].split(",")]
variants = ["encoder_epochs=15"] + sys.argv[3:]
x, y = load_dataset(dataset, "train")
xt, yt = load_dataset(dataset, "test")
for variant in variants:
    key, value = variant.split("=")
    config = BenchConfig(**{"encoder_epochs": 15, key: int(value)})
    ocnn, knn = [], []
    for c in classes:
        index = one_class_split(y, (c,))
        task = ClassTask(dataset, c, 0, x[index][:, None], xt[:, None], yt == c, config)
        train, test = task.features("ae")
        ocnn.append(
            auroc(KernelOCNN(whiten=False, seed=0).fit(train).score_samples(test), task.test_is_normal)
        )
        knn.append(auroc(KNNHead().fit(train).score_samples(test), task.test_is_normal))
    cells = " ".join(f"{100 * a:.1f}/{100 * b:.1f}" for a, b in zip(ocnn, knn, strict=True))
    print(
        f"{dataset} {variant}: ocnn/knn per class {cells}; mean {100 * sum(ocnn) / len(ocnn):.2f} / "
        f"{100 * sum(knn) / len(knn):.2f}",
        flush=True,
    )

"""OC-NN variants on the benchmark's latents: what each design choice is worth on MNIST.

For each normal class, the LeNet autoencoder is trained on that class only (the benchmark's
protocol and settings, 15 epochs); every variant below is fitted on the same latents and scored
on the whole test split. Prints per-class and mean AUROC as a Markdown table.

    python benchmarks/ocnn_variants.py --classes 2,3,5,8   # hardest classes: ~10 minutes, 2 CPU cores
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from oneclass.data import load_dataset
from oneclass.evaluation.methods import BenchConfig, ClassTask
from oneclass.evaluation.metrics import auroc
from oneclass.evaluation.protocol import one_class_split
from oneclass.heads import KernelOCNN, KNNHead, OCSVMHead, ReportOCNN
from oneclass.heads.ocnn import median_distance


class Standardised:
    """Wraps a head so that it sees latents standardised with the training mean and std."""

    def __init__(self, head):
        self.head = head

    def fit(self, Z):
        self.mean, self.std = Z.mean(0), Z.std(0) + 1e-6
        self.head.fit((Z - self.mean) / self.std)
        return self

    def score_samples(self, Z):
        return self.head.score_samples((Z - self.mean) / self.std)


class MedianBandwidthOCSVM(Standardised):
    """RBF OC-SVM on standardised latents with the kernel OC-NN's bandwidth rule."""

    def __init__(self, bandwidth: float = 0.2, seed: int = 0):
        self.bandwidth, self.seed = bandwidth, seed

    def fit(self, Z):
        self.mean, self.std = Z.mean(0), Z.std(0) + 1e-6
        standard = (Z - self.mean) / self.std
        median = median_distance(standard, np.random.default_rng(self.seed))
        self.head = OCSVMHead(gamma=1.0 / (2 * (self.bandwidth * median) ** 2)).fit(standard)
        return self


VARIANTS = {
    "report: sigmoid, raw latents, r per batch": lambda s: ReportOCNN(seed=s),
    "report + standardised latents": lambda s: Standardised(ReportOCNN(seed=s)),
    "report + r per epoch": lambda s: ReportOCNN(r_update="epoch", seed=s),
    "report + tanh": lambda s: ReportOCNN(activation="tanh", seed=s),
    "report, 100 epochs": lambda s: ReportOCNN(epochs=100, seed=s),
    "kernel OC-NN, 1 epoch (close to a kernel density)": lambda s: KernelOCNN(epochs=1, seed=s),
    "kernel OC-NN (default: bandwidth 0.2, 1024 units, r per epoch)": lambda s: KernelOCNN(seed=s),
    "kernel OC-NN, r per batch": lambda s: KernelOCNN(r_update="batch", seed=s),
    "kernel OC-NN, bandwidth 0.1": lambda s: KernelOCNN(bandwidth=0.1, seed=s),
    "kernel OC-NN, bandwidth 0.4": lambda s: KernelOCNN(bandwidth=0.4, seed=s),
    "kernel OC-NN, 256 units": lambda s: KernelOCNN(hidden=256, seed=s),
    "kernel OC-NN, 4096 units": lambda s: KernelOCNN(hidden=4096, seed=s),
    "kernel OC-NN, learned centres": lambda s: KernelOCNN(learn_centres=True, seed=s),
    "kernel OC-NN, nu = 0.02": lambda s: KernelOCNN(nu=0.02, seed=s),
    "RBF OC-SVM, gamma = scale (the benchmark's)": lambda s: OCSVMHead(),
    "RBF OC-SVM, standardised, bandwidth as the kernel OC-NN": lambda s: MedianBandwidthOCSVM(seed=s),
    "5-NN distance": lambda s: KNNHead(),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--encoder-epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    classes = [int(c) for c in args.classes.split(",")]
    x, y = load_dataset(args.dataset, "train")
    xt, yt = load_dataset(args.dataset, "test")
    results: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for normal in classes:
        index = one_class_split(y, (normal,))
        task = ClassTask(
            args.dataset,
            normal,
            args.seed,
            x[index][:, None],
            xt[:, None],
            yt == normal,
            BenchConfig(encoder_epochs=args.encoder_epochs),
        )
        train_z, test_z = task.features("ae")
        for name, make in VARIANTS.items():
            head = make(args.seed).fit(train_z)
            results[name].append(auroc(head.score_samples(test_z), task.test_is_normal))
        print(f"class {normal} done", file=sys.stderr, flush=True)
    print(
        f"{args.dataset}, AE latents ({args.encoder_epochs} epochs on the normal class), seed {args.seed}\n"
    )
    print("| variant | " + " | ".join(str(c) for c in classes) + " | mean |")
    print("|---" * (len(classes) + 2) + "|")
    for name, values in results.items():
        cells = " | ".join(f"{100 * v:.1f}" for v in values)
        print(f"| {name} | {cells} | **{100 * np.mean(values):.1f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

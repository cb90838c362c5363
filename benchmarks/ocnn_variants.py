"""OC-NN variants on the benchmark's latents: what each design choice is worth on MNIST.

For each normal class, the LeNet autoencoder is trained on that class only (the benchmark's
protocol and settings, 15 epochs); every variant below is fitted on the same latents and scored
on the whole test split. Prints per-class and mean AUROC as a Markdown table.

    python benchmarks/ocnn_variants.py --study design --classes 2,3,5,8   # ~10 minutes, 2 CPU cores
    python benchmarks/ocnn_variants.py --study units --dataset fashion-mnist   # ~30 minutes
    python benchmarks/ocnn_variants.py --study solver --dataset fashion-mnist  # ~5 minutes
    python benchmarks/ocnn_variants.py --study geometry --seeds 0,1,2          # ~5 minutes

The first three studies ran before the default head whitened its input; they pin
``whiten=False`` (per-dimension standardisation, as then) so that they regenerate as recorded.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from oneclass.data import load_dataset
from oneclass.evaluation.methods import BenchConfig, ClassTask
from oneclass.evaluation.metrics import auroc
from oneclass.evaluation.protocol import one_class_split
from oneclass.heads import KernelOCNN, KNNHead, OCSVMHead, ReportOCNN
from oneclass.heads.ocnn import KernelOCNNNet, median_distance, whitening


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


class Whitened(Standardised):
    """Wraps a head so that it sees PCA-whitened latents (the default kernel OC-NN's input)."""

    def fit(self, Z):
        self.mean, self.transform = Z.mean(0), whitening(Z)
        self.head.fit(self._map(Z))
        return self

    def _map(self, Z):
        return ((Z - self.mean) @ self.transform).astype(np.float32)

    def score_samples(self, Z):
        return self.head.score_samples(self._map(Z))


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


class RawLatentKernelOCNN(KernelOCNN):
    """The kernel OC-NN on latents scaled by one global std instead of per-dimension standardising."""

    def _build(self, Z):
        rng = np.random.default_rng(self.seed)
        mean = np.zeros(Z.shape[1], np.float32)
        scale = np.full(Z.shape[1], Z.std(), np.float32)
        centres = (Z / scale)[rng.choice(len(Z), min(self.hidden, len(Z)), replace=False)]
        gamma = 1.0 / (2.0 * (self.bandwidth * median_distance(Z / scale, rng)) ** 2)
        transform = torch.diag(torch.from_numpy(1 / scale))
        return KernelOCNNNet(torch.from_numpy(mean), transform, torch.from_numpy(centres), gamma)


class MultiBandwidthKernelOCNN(KernelOCNN):
    """Each centre carries one unit per bandwidth; the OC-NN weights choose among the scales."""

    def __init__(self, bandwidths: tuple[float, ...] = (0.15, 0.3), **params):
        super().__init__(**params)
        self.bandwidths = bandwidths

    def _build(self, Z):
        rng = np.random.default_rng(self.seed)
        mean, scale = Z.mean(0), Z.std(0) + 1e-6
        standard = (Z - mean) / scale
        per_scale = min(self.hidden // len(self.bandwidths), len(Z))
        chosen = standard[rng.choice(len(Z), per_scale, replace=False)]
        median = median_distance(standard, rng)
        net = KernelOCNNNet(
            torch.from_numpy(mean),
            torch.diag(torch.from_numpy(1 / scale)),
            torch.from_numpy(np.tile(chosen, (len(self.bandwidths), 1))),
            1.0,
        )
        net.gamma = torch.from_numpy(
            np.repeat([1.0 / (2 * (b * median) ** 2) for b in self.bandwidths], per_scale).astype(np.float32)
        )
        return net


def adam_kernel_ocnn(**params) -> KernelOCNN:
    """The kernel OC-NN as the first two studies ran it: Adam, 20 epochs, 4096 units unless given."""
    return KernelOCNN(solver="adam", **{"hidden": 4096, "whiten": False, **params})


def standardised_kernel_ocnn(**params) -> KernelOCNN:
    """The Frank-Wolfe kernel OC-NN as the third study ran it: per-dimension standardisation."""
    return KernelOCNN(whiten=False, **params)


# The first study (issue 4): what each design choice is worth, kernel OC-NN with 1024 units.
DESIGN = {
    "report: sigmoid, raw latents, r per batch": lambda s: ReportOCNN(seed=s),
    "report + standardised latents": lambda s: Standardised(ReportOCNN(seed=s)),
    "report + r per epoch": lambda s: ReportOCNN(r_update="epoch", seed=s),
    "report + tanh": lambda s: ReportOCNN(activation="tanh", seed=s),
    "report, 100 epochs": lambda s: ReportOCNN(epochs=100, seed=s),
    "kernel OC-NN, 1 epoch (close to a kernel density)": lambda s: adam_kernel_ocnn(
        hidden=1024, epochs=1, seed=s
    ),
    "kernel OC-NN (bandwidth 0.2, 1024 units, r per epoch)": lambda s: adam_kernel_ocnn(hidden=1024, seed=s),
    "kernel OC-NN, r per batch": lambda s: adam_kernel_ocnn(hidden=1024, r_update="batch", seed=s),
    "kernel OC-NN, bandwidth 0.1": lambda s: adam_kernel_ocnn(hidden=1024, bandwidth=0.1, seed=s),
    "kernel OC-NN, bandwidth 0.4": lambda s: adam_kernel_ocnn(hidden=1024, bandwidth=0.4, seed=s),
    "kernel OC-NN, 256 units": lambda s: adam_kernel_ocnn(hidden=256, seed=s),
    "kernel OC-NN, 4096 units": lambda s: adam_kernel_ocnn(hidden=4096, seed=s),
    "kernel OC-NN, learned centres": lambda s: adam_kernel_ocnn(hidden=1024, learn_centres=True, seed=s),
    "kernel OC-NN, nu = 0.02": lambda s: adam_kernel_ocnn(hidden=1024, nu=0.02, seed=s),
    "RBF OC-SVM, gamma = scale (the benchmark's)": lambda s: OCSVMHead(),
    "RBF OC-SVM, standardised, bandwidth as the kernel OC-NN": lambda s: MedianBandwidthOCSVM(seed=s),
    "5-NN distance": lambda s: KNNHead(),
}

# The second study: how many units, and what else moves the kernel OC-NN once units are many.
UNITS = {
    "1024 units (the first default)": lambda s: adam_kernel_ocnn(hidden=1024, seed=s),
    "2048 units": lambda s: adam_kernel_ocnn(hidden=2048, seed=s),
    "4096 units (then the default)": lambda s: adam_kernel_ocnn(hidden=4096, seed=s),
    "one unit per training point": lambda s: adam_kernel_ocnn(hidden=8192, seed=s),
    "one unit per point, bandwidth 0.15": lambda s: adam_kernel_ocnn(hidden=8192, bandwidth=0.15, seed=s),
    "one unit per point, bandwidth 0.25": lambda s: adam_kernel_ocnn(hidden=8192, bandwidth=0.25, seed=s),
    "one unit per point, bandwidth 0.3": lambda s: adam_kernel_ocnn(hidden=8192, bandwidth=0.3, seed=s),
    "one unit per point, 5 epochs": lambda s: adam_kernel_ocnn(hidden=8192, epochs=5, seed=s),
    "one unit per point, 60 epochs": lambda s: adam_kernel_ocnn(hidden=8192, epochs=60, seed=s),
    "one unit per point, nu = 0.05": lambda s: adam_kernel_ocnn(hidden=8192, nu=0.05, seed=s),
    "one unit per point, nu = 0.05, 5 epochs of 1000": lambda s: adam_kernel_ocnn(
        hidden=8192, nu=0.05, epochs=5, batch_size=1000, seed=s
    ),
    "4096 units, latents not standardised per dimension": lambda s: RawLatentKernelOCNN(
        hidden=4096, solver="adam", whiten=False, seed=s
    ),
    "2048 centres x bandwidths 0.15 and 0.3": lambda s: MultiBandwidthKernelOCNN(
        hidden=4096, solver="adam", whiten=False, seed=s
    ),
    "4096 centres x bandwidths 0.2 and 0.4": lambda s: MultiBandwidthKernelOCNN(
        (0.2, 0.4), hidden=8192, solver="adam", whiten=False, seed=s
    ),
    "RBF OC-SVM, standardised, bandwidth as the kernel OC-NN": lambda s: MedianBandwidthOCSVM(seed=s),
    "5-NN distance": lambda s: KNNHead(),
}

# The third study: the output layer trained to the optimum (Frank-Wolfe) against Adam.
SOLVER = {
    "kernel density (the start, w = mean hidden vector)": lambda s: standardised_kernel_ocnn(
        tol=float("inf"), seed=s
    ),
    "Adam lr 1e-3, 20 epochs, 4096 units (the previous default)": lambda s: adam_kernel_ocnn(seed=s),
    "Adam lr 1e-4, 20 epochs, 4096 units": lambda s: adam_kernel_ocnn(lr=1e-4, seed=s),
    "Frank-Wolfe, 1024 units": lambda s: standardised_kernel_ocnn(hidden=1024, seed=s),
    "Frank-Wolfe, 2048 units (then the default)": lambda s: standardised_kernel_ocnn(seed=s),
    "Frank-Wolfe, 4096 units": lambda s: standardised_kernel_ocnn(hidden=4096, seed=s),
    "Frank-Wolfe, 2048 units, tol 1e-4": lambda s: standardised_kernel_ocnn(tol=1e-4, seed=s),
    "Frank-Wolfe, 2048 units, bandwidth 0.15": lambda s: standardised_kernel_ocnn(bandwidth=0.15, seed=s),
    "RBF OC-SVM, standardised, bandwidth as the kernel OC-NN": lambda s: MedianBandwidthOCSVM(seed=s),
    "5-NN distance": lambda s: KNNHead(),
}

# The fourth study: the input geometry of the Gaussian units (per-dimension scale or whitening),
# with kNN given the same whitening for a fair reading.
GEOMETRY = {
    "standardised per dimension (previous default)": lambda s: standardised_kernel_ocnn(seed=s),
    "whitened (default)": lambda s: KernelOCNN(seed=s),
    "whitened, bandwidth 0.15": lambda s: KernelOCNN(bandwidth=0.15, seed=s),
    "whitened, 4096 units": lambda s: KernelOCNN(hidden=4096, seed=s),
    "whitened, 4096 units, bandwidth 0.15": lambda s: KernelOCNN(hidden=4096, bandwidth=0.15, seed=s),
    "RBF OC-SVM, gamma = scale (the benchmark's)": lambda s: OCSVMHead(),
    "5-NN distance (the benchmark's)": lambda s: KNNHead(),
    "5-NN distance on whitened latents": lambda s: Whitened(KNNHead()),
}

STUDIES = {"design": DESIGN, "units": UNITS, "solver": SOLVER, "geometry": GEOMETRY}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--encoder-epochs", type=int, default=15)
    parser.add_argument("--seeds", default="0", help="Comma-separated; the table shows their mean.")
    parser.add_argument("--study", choices=sorted(STUDIES), default="units")
    args = parser.parse_args(argv)
    variants = STUDIES[args.study]
    classes = [int(c) for c in args.classes.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    x, y = load_dataset(args.dataset, "train")
    xt, yt = load_dataset(args.dataset, "test")
    results = {name: np.zeros((len(seeds), len(classes))) for name in variants}
    for row, seed in enumerate(seeds):
        for column, normal in enumerate(classes):
            index = one_class_split(y, (normal,))
            task = ClassTask(
                args.dataset,
                normal,
                seed,
                x[index][:, None],
                xt[:, None],
                yt == normal,
                BenchConfig(encoder_epochs=args.encoder_epochs),
            )
            train_z, test_z = task.features("ae")
            for name, make in variants.items():
                head = make(seed).fit(train_z)
                results[name][row, column] = auroc(head.score_samples(test_z), task.test_is_normal)
            print(f"seed {seed} class {normal} done", file=sys.stderr, flush=True)
    print(
        f"{args.dataset}, AE latents ({args.encoder_epochs} epochs on the normal class), "
        f"seed{'s' if len(seeds) > 1 else ''} {args.seeds}: AUROC (%), mean over seeds\n"
    )
    per_seed_header = " | per seed" if len(seeds) > 1 else ""
    print("| variant | " + " | ".join(str(c) for c in classes) + f" | mean{per_seed_header} |")
    print("|---" * (len(classes) + 2 + (len(seeds) > 1)) + "|")
    for name, table in results.items():
        cells = " | ".join(f"{100 * v:.1f}" for v in table.mean(0))
        per_seed = " | " + " / ".join(f"{100 * v:.2f}" for v in table.mean(1)) if len(seeds) > 1 else ""
        print(f"| {name} | {cells} | **{100 * table.mean():.2f}**{per_seed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

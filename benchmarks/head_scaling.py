"""Head fitting time against n, and accuracy on the study's 0/6/9 task, on the same latents.

The encoder (LeNet autoencoder) is trained once on all 60,000 MNIST training digits, as in the
study; its latents feed every head. Part 1 fits each head on the first n latents for
n = 1k, 5k, 20k, 60k and times it. Part 2 fits each head on the training digits 0, 6 and 9
(about 18,000) and scores the test split (0/6/9 normal, the rest abnormal).

    python benchmarks/head_scaling.py                   # about 10 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from oneclass import OneClassDetector
from oneclass.calibration import flagged
from oneclass.data import load_dataset
from oneclass.evaluation.metrics import auroc
from oneclass.heads import KernelOCNN, KNNHead, OCSVMHead, PaperOCNN
from oneclass.services.bench import machine_description

HEADS = {
    "ocnn (kernel, default: 2048 units, Frank-Wolfe)": lambda seed: KernelOCNN(seed=seed),
    "ocnn, 4096 units": lambda seed: KernelOCNN(hidden=4096, seed=seed),
    "ocnn, other centres (head seed + 1)": lambda seed: KernelOCNN(seed=seed + 1),
    "ocnn-paper": lambda seed: PaperOCNN(seed=seed),
    "OneClassSVM (RBF, scikit-learn)": lambda seed: OCSVMHead(),
    "5-NN distance": lambda seed: KNNHead(),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder-epochs", type=int, default=5)
    parser.add_argument("--sizes", default="1000,5000,20000,60000")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    x, y = load_dataset("mnist", "train")
    xt, yt = load_dataset("mnist", "test")
    detector = OneClassDetector(
        encoder="ae", encoder_epochs=args.encoder_epochs, seed=args.seed, device="cpu", quiet=True
    )
    start = time.perf_counter()
    detector.fit_encoder(x)
    z, zt = detector.transform(x), detector.transform(xt)
    print(
        f"encoder: {args.encoder_epochs} epochs on 60,000 digits + latents "
        f"in {time.perf_counter() - start:.0f}s; "
        f"machine: {machine_description()}; seed {args.seed}\n"
    )

    svm, ocnn, large = (
        "OneClassSVM (RBF, scikit-learn)",
        "ocnn (kernel, default: 2048 units, Frank-Wolfe)",
        "ocnn, 4096 units",
    )
    fit_heads = {k: HEADS[k] for k in (ocnn, large, "ocnn-paper", svm)}
    print(
        "| n | "
        + " | ".join(f"{name} fit (s)" for name in fit_heads)
        + " | OneClassSVM / ocnn | OneClassSVM / ocnn 4096 |"
    )
    print("|---" * (len(fit_heads) + 3) + "|")
    for n in sizes:
        times = {}
        for name, make in fit_heads.items():
            start = time.perf_counter()
            make(args.seed).fit(z[:n])
            times[name] = time.perf_counter() - start
        ratios = f"{times[svm] / times[ocnn]:.1f}x | {times[svm] / times[large]:.1f}x"
        print(f"| {n} | " + " | ".join(f"{t:.2f}" for t in times.values()) + f" | {ratios} |", flush=True)

    normal = np.isin(y, (0, 6, 9))
    test_normal = np.isin(yt, (0, 6, 9))
    print(f"\n0/6/9 task: {int(normal.sum())} normal training digits, {len(yt)} test digits\n")
    print("| head | test AUROC | false alarms on normal test (nu = 0.1) | fit (s) |")
    print("|---|---|---|---|")
    for name, make in HEADS.items():
        start = time.perf_counter()
        head = make(args.seed).fit(z[normal])
        seconds = time.perf_counter() - start
        scores = head.score_samples(zt)
        false_alarms = float(flagged(scores[test_normal], head.threshold_).mean())
        print(
            f"| {name} | {auroc(scores, test_normal):.4f} | {false_alarms:.3f} | {seconds:.1f} |", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

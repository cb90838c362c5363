"""Measure the ways of using the ssl encoder, on the validation split only (no test images).

The ssl encoder (``networks/transforms.py``) is trained once per class on the normal training
images; each candidate below uses it differently. The split is ``oneclass bench --split
validation``'s: 20% of the normal class's training images held out, the other classes' training
images as stand-in anomalies. Writes ``OUT/<dataset>/results.md`` per data set and prints the
mean validation AUROC of every candidate.

Candidates:
- the OC-NN on the features of all 8 transformed copies (the default), and unwhitened;
- 5-NN on all copies, on the untransformed copy only, on the mean over the copies;
- the encoder's own score: the log-likelihood of the true transformations (GEOM's score);
- the OC-NN on the ssl features combined with the OC-NN on the autoencoder latent, Fisher's
  way: the sum of the log tail probabilities of each score among the training scores (in-sample
  or the OC-NN's out-of-fold scores; the ``ssl+ae`` encoder's head uses the latter); also with
  the VAE's latent, both, the ssl encoder's own GEOM score, or ImageNet features (lite0 patch
  features averaged over the image, as ``ocnn@lite0-pooled``) as further members;
- one OC-NN on the ssl features and the autoencoder latent side by side;
- with ``--encoders``: the whole detector (held-out threshold) with other encoder settings.

    python benchmarks/ssl_candidates.py --datasets mnist,fashion-mnist --seed 0   # ~30 min, 2 cores
    python benchmarks/ssl_candidates.py --only "NAME;NAME" ...   # some candidates only
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from oneclass.calibration import nu_quantile, p_values
from oneclass.detector import OneClassDetector
from oneclass.evaluation.methods import (
    BenchConfig,
    ClassTask,
    HeadMethod,
    Method,
    MethodOutput,
    OwnScoreMethod,
)
from oneclass.heads import head_class
from oneclass.services.bench import run_benchmark


class CopyKNN(Method):
    """5-NN distance on a reduction of the ssl features' per-copy blocks."""

    def __init__(self, reduce: str):
        self.reduce = reduce
        self.name = f"5-NN, {reduce}"
        self.description = self.name

    def run(self, task: ClassTask) -> MethodOutput:
        train, test = (self._reduced(z, task) for z in task.features("ssl"))
        head = head_class("knn")(nu=task.config.nu).fit(train)
        return MethodOutput(head.train_scores_, head.score_samples(test), head.threshold_)

    def _reduced(self, z: np.ndarray, task: ClassTask) -> np.ndarray:
        copies = task.encoder("ssl").encoder_.count
        blocks = z.reshape(len(z), copies, -1)
        return blocks[:, 0] if self.reduce == "untransformed copy only" else blocks.mean(1)


class FisherCandidate(Method):
    """OC-NN on ssl features and OC-NN on other encoders' latents (and optionally the ssl
    encoder's own GEOM score), combined by summing each score's log tail probability among that
    score's training scores (in-sample, or the OC-NN's out-of-fold scores). The product's head,
    ``heads.combination.FisherCombination``, is the out-of-fold two-member case; this one also
    takes in-sample references and the GEOM score as a member, which it does not."""

    def __init__(self, *others: str, reference: str = "in-sample", geom: bool = False):
        self.others, self.reference, self.geom = others, reference, geom
        parts = ["OC-NN ssl", *(f"OC-NN {other}" for other in others)] + (["ssl-geom"] if geom else [])
        suffix = ", out-of-fold" if reference != "in-sample" else ""
        self.name = self.description = " + ".join(parts) + ", Fisher" + suffix

    def run(self, task: ClassTask) -> MethodOutput:
        members = [self._ocnn(task, kind) for kind in ("ssl", *self.others)]
        if self.geom:
            own = OwnScoreMethod("ssl").run(task)
            members.append((own.train_scores, own.test_scores))
        train_total, test_total = 0.0, 0.0
        for train, test in members:  # the training scores are also the reference
            reference = np.sort(train)
            train_total = train_total + np.log(p_values(reference, train))
            test_total = test_total + np.log(p_values(reference, test))
        return MethodOutput(train_total, test_total, nu_quantile(train_total, task.config.nu))

    def _ocnn(self, task: ClassTask, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(training, test) scores of an OC-NN on ``kind`` features; training scores in-sample
        or out of fold."""
        train_z, test_z = task.features(kind)
        head = head_class("ocnn")(nu=task.config.nu, seed=task.seed, device="cpu").fit(train_z)
        oof = self.reference != "in-sample"
        train = head.out_of_fold_scores_ if oof else head.score_samples(train_z)
        return train, head.score_samples(test_z)


class ConcatenatedFeatures(Method):
    """One OC-NN on the ssl features and another encoder's latent side by side (whitened together)."""

    def __init__(self, other: str):
        self.other = other
        self.name = f"OC-NN on ssl and {other} features concatenated"
        self.description = self.name

    def run(self, task: ClassTask) -> MethodOutput:
        (ssl_train, ssl_test), (other_train, other_test) = task.features("ssl"), task.features(self.other)
        train_z, test_z = np.hstack([ssl_train, other_train]), np.hstack([ssl_test, other_test])
        head = head_class("ocnn")(nu=task.config.nu, seed=task.seed, device="cpu").fit(train_z)
        return MethodOutput(head.score_samples(train_z), head.score_samples(test_z), head.threshold_)


class EncoderVariant(Method):
    """The whole ssl detector (held-out threshold) with other encoder settings."""

    def __init__(self, name: str, **params):
        self.name, self.description, self.params = name, name, params

    def run(self, task: ClassTask) -> MethodOutput:
        detector = OneClassDetector(encoder="ssl", seed=task.seed, device="cpu", quiet=True, **self.params)
        detector.fit(task.train_x)
        return MethodOutput(
            detector.score_samples(task.train_x), detector.score_samples(task.test_x), detector.threshold_
        )


CANDIDATES: list[Method] = [
    HeadMethod("ocnn", "ssl", name="OC-NN, all copies (default)"),
    HeadMethod("ocnn", "ssl", name="OC-NN, all copies, not whitened", whiten=False),
    HeadMethod("knn", "ssl", name="5-NN, all copies"),
    CopyKNN("untransformed copy only"),
    CopyKNN("mean over copies"),
    OwnScoreMethod("ssl"),
    FisherCandidate("ae"),
    FisherCandidate("ae", reference="out-of-fold"),
    ConcatenatedFeatures("ae"),
    FisherCandidate("vae", reference="out-of-fold"),
    FisherCandidate("ae", "vae", reference="out-of-fold"),
    FisherCandidate("ae", reference="out-of-fold", geom=True),
    FisherCandidate("ae", "lite0", reference="out-of-fold"),
]
ENCODER_VARIANTS: list[Method] = [
    EncoderVariant("detector, default encoder (3 epochs, batch 64, channels 16-32-64-64)"),
    EncoderVariant("detector, 6 epochs", encoder_epochs=6),
    EncoderVariant("detector, batch 200", batch_size=200),
    EncoderVariant("detector, channels 24-48-96-96", channels=(24, 48, 96, 96)),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist,fashion-mnist")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoders", action="store_true", help="also the encoder variants (slow)")
    parser.add_argument("--only", help="candidate names separated by ; (default: all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/defaults/ssl"))
    args = parser.parse_args(argv)
    methods = CANDIDATES + (ENCODER_VARIANTS if args.encoders else [])
    if args.only:
        methods = [m for m in methods if m.name in args.only.split(";")]
    classes = [int(c) for c in args.classes.split(",")]
    arguments = argv if argv is not None else sys.argv[1:]
    command = shlex.join(["python", "benchmarks/ssl_candidates.py", *arguments])
    for dataset in args.datasets.split(","):
        records = run_benchmark(
            dataset, methods, classes, [args.seed], BenchConfig(split="validation"), args.out / dataset,
            command=command, log=lambda line: print(line, file=sys.stderr, flush=True),
        )  # fmt: skip
        for method in methods:
            aurocs = [r["auroc"] for r in records if r["method"] == method.name]
            print(f"{dataset:>14}  {100 * np.mean(aurocs):5.2f}  {method.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Data-parallel training under torchrun: 2 CPU processes with gloo on real MNIST digits."""

import json
import subprocess
import sys

import numpy as np
import pytest

from oneclass import OneClassDetector
from oneclass.evaluation.protocol import one_class_split

NU = 0.1
FIT = [
    "fit", "--data", "mnist", "--normal", "3", "--train-limit", "2000", "--test-limit", "3000",
    "--encoder", "ae", "--encoder-epochs", "2", "--head-epochs", "5", "--nu", str(NU),
    "--calibration-share", "0", "--device", "cpu", "--quiet",
]  # fmt: skip
AUROC_TOLERANCE = 0.03  # two processes see the same data in another order: SGD noise, not bias


def run(command, tmp_path):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "oneclass.cli", *FIT, "--out", tmp / "one"], tmp)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run([*torchrun, "-m", "--", "oneclass.cli", *FIT, "--out", tmp / "two"], tmp)  # "--": torchrun would
    # otherwise take --nu for an abbreviation of its own --numa-binding
    return tmp / "one", tmp / "two"


def test_two_processes_score_like_one(runs):
    one, two = (json.loads((path / "metrics.json").read_text()) for path in runs)
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert abs(two["test_auroc"] - one["test_auroc"]) <= AUROC_TOLERANCE
    assert two["test_auroc"] > 0.8
    assert abs(two["train_share_below_threshold"] - NU) <= 0.01
    # only the first process wrote: one model, no leftovers from the other
    assert sorted(p.name for p in runs[1].glob("*.safetensors")) == ["model.safetensors"]
    assert not list(runs[1].glob("checkpoint-*"))


def test_r_is_the_quantile_over_all_ranks(runs, mnist_train):
    x, y = mnist_train
    train = x[one_class_split(y, (3,), 2000)]
    detector = OneClassDetector.load(runs[1], device="cpu")
    scores = detector.score_samples(train)
    assert np.std(scores) > 0
    global_r = np.quantile(scores, NU)
    assert detector.threshold_ == pytest.approx(global_r, rel=1e-5)
    # the tolerance tells a global quantile from a per-rank one (each rank holds half the data)
    for half in (scores[0::2], scores[1::2]):
        assert abs(np.quantile(half, NU) - global_r) > 1e-5 * abs(global_r)

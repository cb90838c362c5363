"""Data-parallel training under torchrun: 2 CPU processes with gloo on real MNIST digits."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from oneclass.heads import KernelOCNN

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
    # only the first process wrote: one model, no leftovers from the other
    assert sorted(p.name for p in runs[1].glob("*.safetensors")) == ["model.safetensors"]
    assert not list(runs[1].glob("checkpoint-*"))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ranks")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run([*torchrun, str(Path(__file__).with_name("distributed_worker.py")), str(tmp)], tmp)
    return [load_file(tmp / f"rank{r}.safetensors") for r in (0, 1)]


def test_the_head_trained_by_two_ranks_is_the_one_process_head(ranks):
    """Each rank holds half of the hidden values (3,001 points: 1,501 and 1,500); the Frank-Wolfe
    vertices, the cross-fitted threshold and the weights must be those of one process."""
    latents = np.random.default_rng(0).normal(size=(3001, 8)).astype(np.float32)
    alone = KernelOCNN(hidden=256, seed=0).fit(latents)
    for tensors in ranks:
        assert float(tensors["head.threshold"]) == pytest.approx(alone.threshold_, rel=1e-5, abs=1e-6)
        np.testing.assert_allclose(
            tensors["head.w.weight"].numpy(), alone.net_.w.weight.numpy(), rtol=1e-4, atol=1e-7
        )


def test_the_patch_head_trained_by_two_ranks(ranks):
    """Each rank reads its half of the images; the whitening moments, the patch sample and the
    out-of-fold image scores are gathered from both, so the ranks end with the same head, whose
    threshold is the nu-quantile over all images, and which scores like the one-process head."""
    sys.path.insert(0, str(Path(__file__).parent))
    from distributed_worker import fit_patch_head, patch_features

    first, second = ({k: v for k, v in r.items() if k.startswith("patch.")} for r in ranks)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    train = first["patch.train_scores"].numpy()
    assert len(train) == 61  # every image's score came back, from both ranks
    assert abs(np.mean(train < float(first["patch.threshold"])) - NU) <= 2 / 61
    alone = fit_patch_head()
    test = np.r_[np.arange(500, 530), np.arange(1000, 1030)]
    alone_scores = alone.score_samples(patch_features(test))
    together = first["patch.test_scores"].numpy()
    assert np.corrcoef(alone_scores, together)[0, 1] > 0.9
    assert together[:30].mean() > together[30:].mean() + 1.0  # the abnormal region is seen


def test_the_patch_heads_discriminator_trained_by_two_ranks(ranks):
    """Each rank paints its share of the images; the defect rows are gathered and every rank
    trains the same discriminator, whose map statistics and threshold come from the reference
    images of both ranks."""
    sys.path.insert(0, str(Path(__file__).parent))
    from distributed_worker import fit_patch_head_with_defects, patch_features

    first, second = ({k: v for k, v in r.items() if k.startswith("painted.")} for r in ranks)
    assert any(k.startswith("painted.defects.layers") for k in first)
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    train = first["painted.train_scores"].numpy()
    alone = fit_patch_head_with_defects()
    assert len(train) == len(alone.train_image_scores_) == 13  # the reference fold, from both ranks
    assert np.mean(train < float(first["painted.threshold"])) <= NU + 1 / 13
    together = first["painted.test_scores"].numpy()
    assert together[:30].mean() > together[30:].mean() + 1.0  # the abnormal region is seen
    test = np.r_[np.arange(500, 530), np.arange(1000, 1030)]
    assert np.corrcoef(alone.score_samples(patch_features(test)), together)[0, 1] > 0.8


@pytest.mark.parametrize("kind", ["ae", "ssl"])
def test_both_ranks_train_the_encoder_together(kind, ranks):
    """Gradients averaged over the ranks: both end with the same weights, and both trained
    (a rank left out, or ranks training apart on their own shards, would end elsewhere)."""
    first, second = ranks
    encoder = [k for k in first if k.startswith(f"{kind}.") and first[k].is_floating_point()]
    assert encoder and all(torch.equal(first[k], second[k]) for k in encoder)
    moved = [k for k in encoder if not torch.equal(first[k], first[f"{kind}-initial." + k.split(".", 1)[1]])]
    assert len(moved) >= len(encoder) // 2


def test_both_ranks_fit_the_same_joint_detector(ranks):
    """ssl+ae under torchrun: both parts trained together by the ranks, both member heads and the
    Fisher combination's references the same on every rank, so every rank scores alike."""
    first, second = ranks
    weights = [k for k in first if k.startswith("joint.") and k not in ("joint.threshold", "joint.scores")]
    assert any(".parts.ssl." in k for k in weights) and any(".parts.ae." in k for k in weights)
    assert all(torch.equal(first[k], second[k]) for k in weights)
    assert float(first["joint.threshold"]) == float(second["joint.threshold"])
    assert torch.equal(first["joint.scores"], second["joint.scores"])
    assert first["joint.scores"].std() > 0


def test_both_ranks_distil_the_same_student(ranks):
    """ssl-fast under torchrun: the teacher trained by the ranks together, the same targets on
    every rank (each computes them from all images), the student trained together."""
    first, second = ranks
    weights = [k for k in first if k.startswith("fast.") and k != "fast.scores"]
    assert any(k.startswith("fast.student.") for k in weights) and "fast.target_projection" in weights
    assert all(torch.equal(first[k], second[k]) for k in weights)
    assert torch.count_nonzero(first["fast.target_projection"]) > 0
    assert torch.equal(first["fast.scores"], second["fast.scores"]) and first["fast.scores"].std() > 0


def test_both_ranks_fine_tune_the_same_defect_branch(ranks):
    """The patch features' defect branch under torchrun: each rank trains on its shard of each
    step's painted and clean digits, gradients averaged, so both end with the same, moved blocks
    and score every region alike."""
    first, second = ranks
    branch = [k for k in first if k.startswith("tuned.")]
    assert any(k.startswith("tuned.blocks.") for k in branch) and "tuned.logits" in branch
    assert all(torch.equal(first[k], second[k]) for k in branch)
    blocks = [k for k in branch if k.startswith("tuned.blocks.")]
    moved = [k for k in blocks if not torch.equal(first[k], first[k.replace("tuned.", "tuned-initial.", 1)])]
    assert len(moved) >= len(blocks) // 2
    assert first["tuned.logits"].std() > 0

"""The joint encoder ssl+ae and Fisher's combination of its two heads: the combination's
arithmetic, the detector on real digits (held-out threshold, save/load, ONNX with both networks
and the p-value lookup), resuming an interrupted fit part by part, and the data sets' default."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from conftest import is_constant
from oneclass import OneClassDetector, OneClassError
from oneclass.cli import main
from oneclass.evaluation.metrics import auroc
from oneclass.heads import KernelOCNN
from oneclass.heads.combination import FisherCombination, FisherNet
from oneclass.training.checkpoint import Checkpointer


def _fitted_combination(normal: np.ndarray, nu: float = 0.1) -> FisherCombination:
    members = [KernelOCNN(nu=nu, hidden=128, seed=0), KernelOCNN(nu=nu, hidden=128, seed=0)]
    return FisherCombination(members, (6, 3), nu=nu).fit(normal)


@pytest.fixture(scope="module")
def gaussian_groups():
    rng = np.random.default_rng(0)
    normal, test = rng.normal(size=(600, 9)), rng.normal(size=(300, 9))
    return _fitted_combination(normal), normal, test


def test_an_image_unusual_in_either_group_scores_low(gaussian_groups):
    """Shifting only the 6 columns of group 0, or only the 3 of group 1, puts a point below
    nearly every normal point: each group's evidence counts on its own."""
    head, _, test = gaussian_groups
    first, second = test.copy(), test.copy()
    first[:, :6] += 4.0
    second[:, 6:] += 4.0
    normal_scores = head.score_samples(test)
    assert not is_constant(normal_scores)
    floor = np.percentile(normal_scores, 5)
    assert (head.score_samples(first) < floor).mean() > 0.95
    assert (head.score_samples(second) < floor).mean() > 0.95
    # the score is a sum of two log p-values against 600 reference scores each
    assert normal_scores.max() <= 0.0 and normal_scores.min() >= 2 * np.log(1 / 601) - 1e-9


def test_the_threshold_holds_nu_on_new_points(gaussian_groups):
    """The references are out-of-fold scores, so the training points' combined scores look like
    new points' and the nu-quantile threshold flags about nu of new normal points."""
    head, _, _ = gaussian_groups
    fresh = np.random.default_rng(7).normal(size=(4000, 9))
    rate = float((head.score_samples(fresh) < head.threshold_).mean())
    assert 0.06 <= rate <= 0.15, rate


def test_combination_saves_and_its_network_matches(gaussian_groups):
    head, _, test = gaussian_groups
    loaded = FisherCombination.from_state(head.get_config(), head.state_tensors())
    np.testing.assert_array_equal(loaded.score_samples(test), head.score_samples(test))
    assert loaded.threshold_ == head.threshold_
    with torch.no_grad():
        network = head.torch_module()(torch.from_numpy(test.astype(np.float32))).double().numpy()
    np.testing.assert_allclose(network, head.score_samples(test), atol=1e-5)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 4801])
def test_the_exported_count_of_references_is_exact(n):
    """The ONNX graph counts the references at or below a score in blocks: the same count as
    comparing against every reference, ties, block edges and scores beyond all included."""
    rng = np.random.default_rng(n)
    reference = rng.normal(size=n)
    reference[: n // 3] = np.round(reference[: n // 3], 1)  # ties
    reference = np.sort(reference.astype(np.float32))
    net = FisherNet([nn.Identity()], [reference.astype(np.float64)], (1,))
    scores = np.r_[rng.normal(size=500), reference[:50], [-1e9, 1e9]].astype(np.float32)
    counted = net.count_at_or_below(net.reference0, torch.from_numpy(scores)).numpy()
    np.testing.assert_array_equal(counted, (reference[None, :] <= scores[:, None]).sum(1))


def test_combination_needs_one_head_per_group():
    with pytest.raises(OneClassError, match="one head per feature group"):
        FisherCombination([KernelOCNN()], (6, 3))


@pytest.fixture(scope="module")
def joint_detector(mnist_train):
    """ssl+ae on 2,000 real threes (1 epoch per part to keep tests short)."""
    x, y = mnist_train
    return OneClassDetector(encoder="ssl+ae", encoder_epochs=1, seed=0, device="cpu", quiet=True).fit(
        x[y == 3][:2000]
    )


def test_joint_detector_on_real_threes(joint_detector, mnist_test):
    xt, yt = mnist_test
    scores = joint_detector.score_samples(xt[:3000])
    assert not is_constant(scores) and np.isfinite(scores).all()
    assert auroc(scores, yt[:3000] == 3) > 0.95
    # each part trained on its own schedule, and says so
    assert set(joint_detector.encoder_schedule_) == {"ssl", "ae"}
    assert [r["part"] for r in joint_detector.history_["encoder"]] == ["ssl", "ae"]
    assert joint_detector.head_.group_sizes == (512, 32)
    # the threshold comes from 400 held-out threes, and nu holds on new ones
    assert joint_detector.threshold_images_ == 400
    rate = float((joint_detector.score_samples(xt[yt == 3]) < joint_detector.threshold_).mean())
    assert 0.05 <= rate <= 0.16, rate


def test_joint_detector_saves_loads_and_exports(joint_detector, mnist_test, tmp_path):
    pytest.importorskip("onnxruntime")
    from oneclass.services.export import export_onnx
    from test_export import onnx_scores

    joint_detector.save(tmp_path / "run")
    loaded = OneClassDetector.load(tmp_path / "run")
    images = np.ascontiguousarray(mnist_test[0][:1000, None])
    expected = joint_detector.score_samples(images)
    assert np.array_equal(loaded.score_samples(images), expected)
    onnx = onnx_scores(export_onnx(loaded, tmp_path / "onnx"), images)
    # a member score within float rounding of a reference score may count it or not: a few
    # images' p-values move by one step; all others agree to rounding
    differ = np.abs(onnx - expected) > 1e-4
    assert differ.mean() <= 0.01, differ.mean()
    assert np.corrcoef(onnx, expected)[0, 1] > 0.9999


def test_joint_detector_on_non_square_colour_images(mnist_train, tmp_path):
    """Colour 20x28 images (real digits cut and coloured): the ssl part uses its 4 shape-keeping
    transformations, the autoencoder its own shape; both in one ONNX graph."""
    pytest.importorskip("onnxruntime")
    from oneclass.services.export import export_onnx
    from test_export import onnx_scores

    x, y = mnist_train
    digits = x[y == 1][:400, 4:24]
    images = np.stack([digits, digits // 2, 255 - digits], axis=1)
    detector = OneClassDetector(encoder="ssl+ae", encoder_epochs=1, device="cpu", quiet=True).fit(images)
    assert detector.encoder_.parts["ssl"].count == 4 and detector.head_.group_sizes == (256, 32)
    expected = detector.score_samples(images[:100])
    assert not is_constant(expected)
    onnx = onnx_scores(export_onnx(detector, tmp_path), images[:100])
    assert (np.abs(onnx - expected) > 1e-4).mean() <= 0.02


def test_an_interrupted_joint_fit_resumes_part_by_part(mnist_train, tmp_path):
    """Stopped after the autoencoder's first epoch (the ssl part done), a second fit_encoder
    with the same checkpoint skips the ssl part and finishes the autoencoder: bitwise the same
    weights as an uninterrupted run."""
    x, y = mnist_train
    images = x[y == 5][:600]

    def detector():
        return OneClassDetector(encoder="ssl+ae", encoder_epochs=2, seed=3, device="cpu", quiet=True)

    whole = detector().fit_encoder(images)

    class Stop(Exception):
        pass

    def stop_in_ae(record):
        if record["part"] == "ae":
            raise Stop

    checkpoint = Checkpointer(tmp_path, "encoder")
    with pytest.raises(Stop):
        detector().fit_encoder(images, on_epoch=stop_in_ae, checkpoint=checkpoint)
    assert {p.name for p in tmp_path.glob("checkpoint-*.json")} == {
        "checkpoint-encoder-ssl.json",
        "checkpoint-encoder-ae.json",
    }
    resumed = detector().fit_encoder(images, checkpoint=checkpoint)
    state, expected = resumed.encoder_.state_dict(), whole.encoder_.state_dict()
    assert all(torch.equal(state[name], expected[name]) for name in expected)
    assert [r["part"] for r in resumed.history_["encoder"]] == ["ssl", "ssl", "ae", "ae"]


def test_joint_encoder_refuses_channels():
    with pytest.raises(OneClassError, match="channels: encoder ssl\\+ae uses each part's default"):
        OneClassDetector(encoder="ssl+ae", channels=(8, 8))


def test_fit_with_the_joint_encoder_through_the_cli(tmp_path):
    result = CliRunner().invoke(
        main,
        ["fit", "--data", "mnist", "--normal", "7", "--encoder", "ssl+ae", "--train-limit", "600",
         "--test-limit", "500",
         "--encoder-epochs", "1", "--head-epochs", "3", "--device", "cpu", "--quiet",
         "--out", str(tmp_path / "run")],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    loaded = OneClassDetector.load(tmp_path / "run")
    assert loaded.encoder == "ssl+ae" and loaded.head_.name == "fisher"
    log = (tmp_path / "run" / "train.log").read_text()
    assert "ssl encoder: batch" in log and "ae encoder: batch" in log and "part=ae" in log
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["encoder_schedule"]) == {"ssl", "ae"} and len(metrics["head_passes"]) == 2

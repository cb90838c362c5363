"""The scikit-learn style facade on real MNIST digits."""

import json

import numpy as np
import pytest
import torch

from conftest import is_constant
from oneclass import OneClassDetector, OneClassError
from oneclass.evaluation.metrics import auroc


def test_scores_are_real_and_oriented(fitted_detector, digits_small):
    _, _, xt, yt = digits_small
    scores = fitted_detector.score_samples(xt)
    assert scores.shape == (len(xt),) and np.isfinite(scores).all()
    assert not is_constant(scores)
    np.testing.assert_allclose(fitted_detector.decision_function(xt), scores - fitted_detector.threshold_)
    predictions = fitted_detector.predict(xt)
    assert set(np.unique(predictions)) <= {-1, 1}
    assert (predictions == np.where(scores >= fitted_detector.threshold_, 1, -1)).all()


def test_share_of_training_data_below_r_is_nu(fitted_detector, digits_small):
    x, y, _, _ = digits_small
    share = (fitted_detector.score_samples(x[y == 0]) < fitted_detector.threshold_).mean()
    assert abs(share - fitted_detector.nu) <= 0.01


def test_transform_gives_latents(fitted_detector, digits_small):
    z = fitted_detector.transform(digits_small[2][:10])
    assert z.shape == (10, 32) and z.dtype == np.float32


def test_encoder_is_not_trained_by_the_head(digits_small):
    x, y, _, _ = digits_small
    detector = OneClassDetector(encoder="ae", encoder_epochs=1, head_epochs=2, device="cpu", quiet=True)
    detector.fit_encoder(x[:500])
    before = {k: v.clone() for k, v in detector.encoder_.state_dict().items()}
    detector.fit_head(x[y == 0])
    after = detector.encoder_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("head", ["ocnn", "ocnn-paper"])
def test_save_load_gives_identical_scores(head, fitted_detector, digits_small, tmp_path):
    x, y, xt, _ = digits_small
    detector = fitted_detector
    if head != fitted_detector.head:
        detector = OneClassDetector(
            encoder="ae", head=head, encoder_epochs=1, head_epochs=2, device="cpu", quiet=True
        ).fit(x[y == 0])
    detector.save(tmp_path / "run")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["format_version"] == 1 and config["head"]["name"] == head
    loaded = OneClassDetector.load(tmp_path / "run")
    assert np.array_equal(loaded.score_samples(xt), detector.score_samples(xt))
    assert loaded.threshold_ == detector.threshold_


def test_load_refuses_altered_weights(fitted_detector, tmp_path):
    run = fitted_detector.save(tmp_path / "run")
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(OneClassError, match="checksum does not match"):
        OneClassDetector.load(run)


def test_same_seed_same_scores_bitwise(digits_small):
    x, y, xt, _ = digits_small

    def run(seed):
        detector = OneClassDetector(
            encoder="vae", encoder_epochs=1, head_epochs=2, seed=seed, device="cpu", quiet=True
        )
        return detector.fit(x[:800]).score_samples(xt[:200])

    first, second = run(1), run(1)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, run(2))


def test_input_validation(fitted_detector):
    with pytest.raises(OneClassError, match="shape"):
        fitted_detector.score_samples(np.zeros((2, 5, 28, 28, 1), np.uint8))
    with pytest.raises(OneClassError, match="NaN"):
        fitted_detector.score_samples(np.full((2, 28, 28), np.nan, np.float32))
    with pytest.raises(OneClassError, match=r"\[0, 1\]"):
        fitted_detector.score_samples(np.full((2, 28, 28), 255.0, np.float32))
    with pytest.raises(OneClassError, match="fitted on"):
        fitted_detector.score_samples(np.zeros((2, 32, 32), np.uint8))
    with pytest.raises(OneClassError, match="not fitted"):
        OneClassDetector().score_samples(np.zeros((2, 28, 28), np.uint8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nu": 0.0}, r"nu must be a number in \(0, 1\]"),
        ({"encoder": "gan"}, "encoder must be one of"),
        ({"head": "svm2"}, "head must be one of"),
        ({"latent_dim": 0}, "latent_dim"),
        ({"encoder_epochs": 0}, "encoder_epochs"),
        ({"device": "tpu"}, "device must be one of"),
    ],
)
def test_parameter_errors_name_the_parameter(kwargs, message):
    with pytest.raises(OneClassError, match=message):
        OneClassDetector(**kwargs)


def test_detector_separates_a_trained_digit_better_than_chance_with_the_ae(digits_small):
    """Not a quality goal: a sanity check that the pipeline's scores carry information."""
    x, y, xt, yt = digits_small
    detector = OneClassDetector(encoder="ae", encoder_epochs=2, head_epochs=5, device="cpu", quiet=True)
    scores = detector.fit(x[y == 1]).score_samples(xt)
    assert abs(auroc(scores, yt == 1) - 0.5) > 0.05

"""The single-pass ssl encoder ``ssl-fast`` (networks/distill.py): the student's targets, the two
training stages, the detector on real digits (saved, loaded, exported), and ``ssl-fast+ae``."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conftest import is_constant
from oneclass import OneClassDetector
from oneclass.cli import main
from oneclass.evaluation.metrics import auroc
from oneclass.networks import build_encoder
from oneclass.networks.distill import STUDENT_OUTPUTS
from oneclass.networks.transforms import transform_all
from oneclass.training.autoencoder import train_autoencoder
from test_ssl import SSL_PARITY


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 20, 30)])
def test_each_copys_target_is_the_teachers_projected_features_of_that_copy(shape):
    """The targets of copy k come from the teacher's features of the image, reordered by the
    group's composition: they must equal the teacher's features computed on copy k itself."""
    torch.manual_seed(0)
    model = build_encoder("ssl-fast", shape, 32).eval()
    features = model.target_mean.numel()
    model.target_mean.normal_()
    model.target_projection.normal_()
    x = torch.rand(5, *shape)
    copies = transform_all(x, model.count)
    with torch.no_grad():
        targets = torch.from_numpy(model.copy_targets(model.teacher.encode(x).numpy()))
        assert targets.shape == (5, model.count, STUDENT_OUTPUTS)
        for k in range(model.count):
            copy_k = copies[k * 5 : (k + 1) * 5]
            expected = (model.teacher.encode(copy_k) - model.target_mean) @ model.target_projection
            torch.testing.assert_close(targets[:, k], expected, rtol=1e-5, atol=1e-5)
    assert model.teacher.encode(x).shape[1] == features


def test_the_student_loss_is_its_error_on_each_copy_against_that_copys_target():
    """``forward(x, targets)``: per image, the mean over copies of the squared error between the
    student's outputs for the copy and the copy's target row; zero when the targets are them."""
    torch.manual_seed(0)
    model = build_encoder("ssl-fast", (1, 28, 28), 32).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        outputs = model.student(transform_all(x, model.count)).view(model.count, 3, -1).transpose(0, 1)
        assert torch.allclose(model(x, outputs), torch.zeros(3), atol=1e-10)
        shifted = outputs.clone()
        shifted[1, 5] += 2.0  # image 1, copy 5: every output off by 2
        expected = torch.tensor([0.0, 4.0 / model.count, 0.0])
        torch.testing.assert_close(model(x, shifted), expected, rtol=1e-5, atol=1e-6)


def test_targets_are_principal_components_with_their_variances():
    """The first target has unit variance, the others less, in order, and no two correlate."""
    rng = np.random.default_rng(0)
    model = build_encoder("ssl-fast", (1, 28, 28), 32)
    features = rng.normal(size=(800, 512)) * np.linspace(3, 0.1, 512) + 5.0
    model.prepare_distillation(features)
    targets = ((torch.from_numpy(features).float() - model.target_mean) @ model.target_projection).numpy()
    assert targets.shape == (800, STUDENT_OUTPUTS)
    spread = targets.std(0)
    assert abs(spread[0] - 1.0) < 1e-3 and np.all(np.diff(spread) <= 1e-6) and spread[-1] > 0.05
    correlation = np.corrcoef(targets.T)
    assert np.abs(correlation - np.eye(STUDENT_OUTPUTS)).max() < 1e-3


def test_fewer_images_than_targets_leave_the_extra_targets_zero():
    model = build_encoder("ssl-fast", (1, 28, 28), 32)
    model.prepare_distillation(np.random.default_rng(0).normal(size=(10, 512)))
    assert torch.isfinite(model.target_projection).all()
    assert torch.count_nonzero(model.target_projection[:, 10:]) == 0


def test_the_student_stage_trains_the_student_and_leaves_the_teacher(mnist_train):
    """Real threes: the teacher's weights and batch-norm statistics stay as the teacher stage
    left them, the student's move, and the student's loss falls from one epoch to the next."""
    x, y = mnist_train
    images = x[y == 3][:600, None]
    torch.manual_seed(0)
    model = build_encoder("ssl-fast", (1, 28, 28), 32)
    schedule = {"batch_size": 16, "lr": 1e-3, "weight_decay": 0, "seed": 0, "device": torch.device("cpu")}
    train_autoencoder(model.teacher, images, epochs=1, quiet=True, **schedule)
    with torch.no_grad():
        features = model.teacher.encode(torch.from_numpy(images).float() / 255).numpy()
    model.prepare_distillation(features)
    teacher = {k: v.clone() for k, v in model.teacher.state_dict().items()}
    student = {k: v.clone() for k, v in model.student.state_dict().items()}
    targets = model.copy_targets(features)
    history = train_autoencoder(model, images, epochs=2, quiet=True, targets=targets, **schedule)
    assert all(torch.equal(v, model.teacher.state_dict()[k]) for k, v in teacher.items())
    moved = [
        k
        for k, v in student.items()
        if v.is_floating_point() and not torch.equal(v, model.student.state_dict()[k])
    ]
    assert len(moved) >= len(student) // 2
    assert history[1]["loss"] < history[0]["loss"]


@pytest.fixture(scope="module")
def fast_detector(mnist_train):
    """ssl-fast on 2,000 real threes (1 epoch per stage to keep tests short)."""
    x, y = mnist_train
    return OneClassDetector(encoder="ssl-fast", encoder_epochs=1, seed=0, device="cpu", quiet=True).fit(
        x[y == 3][:2000]
    )


def test_ssl_fast_detector_ranks_threes_above_other_digits(fast_detector, mnist_test):
    xt, yt = mnist_test
    scores = fast_detector.score_samples(xt[:3000])
    assert not is_constant(scores) and np.isfinite(scores).all()
    assert auroc(scores, yt[:3000] == 3) > 0.95
    assert fast_detector.transform(xt[:10]).shape == (10, STUDENT_OUTPUTS)  # one pass: 64 numbers
    assert [r["part"] for r in fast_detector.history_["encoder"]] == ["ssl", "student"]
    assert fast_detector.encoder_schedule_["student"] == {"batch_size": 16, "epochs": 1}
    assert fast_detector.threshold_images_ == 400  # held out, as the ssl encoder's


def test_ssl_fast_detector_saves_loads_and_exports(fast_detector, mnist_test, tmp_path):
    pytest.importorskip("onnxruntime")
    from oneclass.services.export import export_onnx
    from test_export import onnx_scores, relative_error

    fast_detector.save(tmp_path / "run")
    loaded = OneClassDetector.load(tmp_path / "run")
    images = np.ascontiguousarray(mnist_test[0][:500, None])
    expected = fast_detector.score_samples(images)
    assert np.array_equal(loaded.score_samples(images), expected)
    onnx = onnx_scores(export_onnx(loaded, tmp_path / "onnx"), images)
    assert np.std(onnx) > 0 and relative_error(onnx, expected) <= SSL_PARITY


def test_ssl_fast_on_non_square_colour_images(mnist_train, tmp_path):
    """Colour 20x28 images: the student learns the 4 shape-keeping copies' targets."""
    pytest.importorskip("onnxruntime")
    from oneclass.services.export import export_onnx
    from test_export import onnx_scores, relative_error

    x, y = mnist_train
    digits = x[y == 1][:400, 4:24]
    images = np.stack([digits, digits // 2, 255 - digits], axis=1)
    detector = OneClassDetector(encoder="ssl-fast", encoder_epochs=1, device="cpu", quiet=True).fit(images)
    assert detector.encoder_.count == 4
    expected = detector.score_samples(images[:50])
    assert not is_constant(expected)
    assert relative_error(onnx_scores(export_onnx(detector, tmp_path), images[:50]), expected) <= SSL_PARITY


def test_fit_on_a_data_set_defaults_to_the_fast_joint_encoder_with_gradient_histograms(tmp_path):
    """``fit --data mnist`` with no encoder: ssl-fast+ae+hog, three networks trained in order
    (teacher, student, autoencoder), a head on the student's 64 outputs, one on the latent and
    one on the gradient histograms' 32 principal components."""
    run = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["fit", "--data", "mnist", "--normal", "7", "--train-limit", "600",
         "--test-limit", "500", "--encoder-epochs", "1", "--head-epochs", "3", "--device", "cpu",
         "--quiet", "--out", str(run)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    loaded = OneClassDetector.load(run)
    assert loaded.encoder == "ssl-fast+ae+hog" and loaded.head_.group_sizes == (STUDENT_OUTPUTS, 32, 32)
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["encoder_schedule"]) == {"ssl", "student", "ae"}
    assert 0.8 < metrics["test_auroc"] <= 1.0, metrics["test_auroc"]

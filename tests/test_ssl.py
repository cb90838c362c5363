"""The self-supervised shape encoder (ssl): transformations, features, the ssl detector on real
digits, its held-out threshold, ONNX export with the test-time transformations (the default
ssl+ae detector that builds on it: test_joint.py)."""

import numpy as np
import pytest
import torch

from conftest import is_constant
from oneclass import OneClassDetector
from oneclass.evaluation.metrics import auroc
from oneclass.networks import build_encoder
from oneclass.networks.transforms import transform_all, transformation_count

SSL_PARITY = 1e-4  # largest |ONNX - PyTorch| score difference, relative to the largest |score|


def test_the_transformations_are_the_square_symmetries_identity_first():
    x = torch.rand(3, 2, 6, 6)
    copies = transform_all(x, 8).view(8, 3, 2, 6, 6)
    assert torch.equal(copies[0], x)
    flat = copies[:, 0].flatten(1)  # a random image has no symmetry: 8 different copies
    assert len({tuple(row.tolist()) for row in flat}) == 8
    assert torch.equal(copies[2], x.flip(2).flip(3))  # the half turn
    # rotating every copy by a quarter turn permutes the copies (a group), none is lost
    turned = {tuple(torch.rot90(c, 1, (2, 3))[0].flatten().tolist()) for c in copies}
    assert turned == {tuple(c[0].flatten().tolist()) for c in copies}


def test_non_square_images_keep_their_shape_with_four_transformations():
    assert transformation_count((1, 20, 30)) == 4 and transformation_count((3, 32, 32)) == 8
    model = build_encoder("ssl", (3, 20, 30), 32).eval()
    x = torch.rand(5, 3, 20, 30)
    assert transform_all(x, 4).shape == (20, 3, 20, 30)
    features = model.encode(x)
    assert features.shape == (5, 4 * 64)
    assert model(x).shape == (5,) and model.anomaly_score(x).shape == (5,)


def test_features_are_one_unit_vector_per_transformed_copy():
    model = build_encoder("ssl", (1, 28, 28), 32).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        blocks = model.encode(x).view(4, 8, 64)
        one = model.encode(x[1:2])
    torch.testing.assert_close(blocks.norm(dim=2), torch.ones(4, 8))
    torch.testing.assert_close(one[0], blocks[1].flatten(), rtol=1e-4, atol=1e-5)  # per image, not per batch
    assert not torch.allclose(blocks[:, 0], blocks[:, 1])  # the copies differ


def test_training_lowers_the_transformation_loss_on_real_digits(mnist_train):
    """The default 3 epochs on 1,000 real threes: the network learns to tell the copies apart
    (the loss of a guess is log 8 = 2.08)."""
    x, y = mnist_train
    detector = OneClassDetector(encoder="ssl", seed=0, device="cpu", quiet=True)
    detector.fit_encoder(x[y == 3][:1000])
    losses = [record["loss"] for record in detector.history_["encoder"]]
    assert len(losses) == 3 and losses[0] < np.log(8)
    assert losses[2] < 0.6 * losses[0], losses
    assert detector.encoder_schedule_ == {"batch_size": 40, "epochs": 3}  # 1,000 images: 25 steps


@pytest.fixture(scope="module")
def ssl_detector(mnist_train):
    """The ssl detector on 2,000 real threes (1 epoch to keep tests short)."""
    x, y = mnist_train
    return OneClassDetector(encoder="ssl", encoder_epochs=1, seed=0, device="cpu", quiet=True).fit(
        x[y == 3][:2000]
    )


def test_ssl_detector_ranks_threes_above_other_digits(ssl_detector, mnist_test):
    """A 3 is the digit the reconstruction latents find hard (the ae OC-NN: 93 on the test split)."""
    xt, yt = mnist_test
    scores = ssl_detector.score_samples(xt[:3000])
    assert not is_constant(scores) and np.isfinite(scores).all()
    assert auroc(scores, yt[:3000] == 3) > 0.95


def test_ssl_threshold_comes_from_held_out_images(ssl_detector, mnist_test):
    """Even at 2,000 images (where the ae's out-of-fold threshold holds) the whitened 512 ssl
    features fit their training images too well: 400 are held out for the threshold, and nu
    holds on new threes."""
    assert ssl_detector.threshold_images_ == 400
    xt, yt = mnist_test
    rate = float((ssl_detector.score_samples(xt[yt == 3]) < ssl_detector.threshold_).mean())
    assert 0.05 <= rate <= 0.16, rate


def test_ssl_detector_saves_and_loads(ssl_detector, mnist_test, tmp_path):
    ssl_detector.save(tmp_path / "run")
    loaded = OneClassDetector.load(tmp_path / "run")
    xt = mnist_test[0][:300]
    assert np.array_equal(loaded.score_samples(xt), ssl_detector.score_samples(xt))
    assert loaded.channels is None and loaded.encoder_.count == 8


def test_ssl_onnx_graph_includes_the_transformations(ssl_detector, mnist_test, tmp_path):
    pytest.importorskip("onnxruntime")
    from oneclass.services.export import export_onnx
    from test_export import onnx_scores, relative_error

    path = export_onnx(ssl_detector, tmp_path)
    images = np.ascontiguousarray(mnist_test[0][:500, None])
    onnx = onnx_scores(path, images)
    assert np.std(onnx) > 0
    assert relative_error(onnx, ssl_detector.score_samples(images)) <= SSL_PARITY


def test_ssl_onnx_on_non_square_colour_images(mnist_train, tmp_path):
    """Colour 20x28 images (real digits cut and coloured): the 4 shape-keeping transformations."""
    pytest.importorskip("onnxruntime")
    from oneclass.services.export import export_onnx
    from test_export import onnx_scores, relative_error

    x, y = mnist_train
    digits = x[y == 1][:400, 4:24]
    images = np.stack([digits, digits // 2, 255 - digits], axis=1)
    detector = OneClassDetector(encoder="ssl", encoder_epochs=1, device="cpu", quiet=True).fit(images)
    assert detector.encoder_.count == 4
    path = export_onnx(detector, tmp_path)
    expected = detector.score_samples(images[:50])
    assert np.std(expected) > 0
    assert relative_error(onnx_scores(path, images[:50]), expected) <= SSL_PARITY

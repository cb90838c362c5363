"""Folders of image files as lazily read datasets, streamed from disk in batches.

Layouts:
- anomalib / MVTec: ``ROOT/train/good/`` (normal training images), ``ROOT/test/good/`` and
  ``ROOT/test/<defect kind>/`` (evaluation), selected with ``--data folder:ROOT``;
- explicit ``--normal-dir DIR`` (and optionally ``--abnormal-dir DIR``, for evaluation only).
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import OneClassError
from .images import (
    HIGH_BIT_MODES,
    IMAGE_SUFFIXES,
    ImageFileError,
    find_image_files,
    header_size,
    high_bit_white,
    read_image,
    upright_size,
)

GOOD = "good"


@dataclass
class ImageFolder:
    """Image files read on demand as uint8 ``(n, C, H, W)``: indexing with an int array or a slice
    reads just those files, so a folder larger than memory can be trained on and scored."""

    paths: list[str | Path]
    image_shape: tuple[int, int, int]
    is_normal: np.ndarray | None = None  # bool (n,) when known
    kinds: list[str] = field(default_factory=list)  # sub-folder name per image ("good", defect kind)
    white: int | None = None  # the level of grey files of more than 8 bits read as 255 (``read_image``)
    dtype = np.dtype(np.uint8)
    ndim = 4

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), *self.image_shape)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            # one image: (C, H, W), as numpy would give it
            return read_image(self.paths[int(index)], self.image_shape, self.white)
        if isinstance(index, slice):
            chosen = self.paths[index]
        else:
            chosen = [self.paths[int(i)] for i in np.atleast_1d(np.asarray(index))]
        if not chosen:
            return np.zeros((0, *self.image_shape), np.uint8)
        return np.stack([read_image(path, self.image_shape, self.white) for path in chosen])

    def subset(self, index: np.ndarray) -> ImageFolder:
        index = np.asarray(index)
        return ImageFolder(
            [self.paths[i] for i in index],
            self.image_shape,
            None if self.is_normal is None else self.is_normal[index],
            [self.kinds[i] for i in index] if self.kinds else [],
            self.white,
        )


def take(images: np.ndarray | ImageFolder, index: np.ndarray) -> np.ndarray | ImageFolder:
    """The images at ``index``: a view of a folder that stays on disk, else an array."""
    return images.subset(index) if isinstance(images, ImageFolder) else images[index]


def run_folders(data: dict) -> tuple[str | None, str | None]:
    """(the normal training folder, the abnormal folder) of a run, resolved, from the ``data``
    entry of its metrics.json (``services/fit.py`` writes it); (None, None) for a dataset run."""
    if data.get("kind") != "folder":
        return None, None
    if data.get("root"):
        return str(Path(data["root"], "train", GOOD).resolve()), None
    return data.get("normal_dir"), data.get("abnormal_dir")


@functools.lru_cache(maxsize=4096)
def _kind_of_folder(folder: str, training: str | None, abnormal: str | None) -> str:
    path = Path(os.path.realpath(folder))
    if str(path) == training:
        return GOOD
    if str(path) == abnormal or path.name == GOOD:
        return path.name
    beside = path.parent / GOOD
    # a folder beside the run's own training folder is new images, not a defect kind: good/ and
    # new/ side by side is a user's layout, test/good/ and test/scratch/ MVTec's
    return path.name if beside.is_dir() and str(beside.resolve()) != training else ""


def layout_kind(path: str | os.PathLike, training: str | None = None, abnormal: str | None = None) -> str:
    """What the MVTec / anomalib layout says an image file is: ``good`` (also any image of the
    run's resolved ``training`` folder), its defect kind (the name of a folder beside a ``good``
    folder other than ``training``, as in ``test/scratch/001.png``, or of the run's ``abnormal``
    folder), or "" (unknown)."""
    return _kind_of_folder(os.path.dirname(os.path.abspath(path)), training, abnormal)


def list_images(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise OneClassError(f"{folder}: no such folder")
    paths = find_image_files(folder)
    if not paths:
        raise OneClassError(f"{folder}: holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return paths


GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
RATIO_TOLERANCE = 0.05  # relative difference of height / width beyond which a resize distorts


def check_files(paths: list, skip_bad: bool, expected: tuple[int, int, int] | None = None) -> list:
    """Open every file's header once: unreadable files stop the run, or are skipped with a
    warning naming them when ``skip_bad``. With the ``expected`` ``(C, H, W)`` of the images as a
    run reads them, also warn (once, with a count and the first file) about files that reading
    will distort: another aspect ratio (stretched to the run's) or grey files for a colour run."""
    good = []
    stretched, grey = Mismatch(), Mismatch()
    for path in paths:
        try:
            with Image.open(path) as image:
                mode, (width, height) = image.mode, header_size(image)
                image.verify()
            good.append(path)
        except (
            UnidentifiedImageError,
            Image.DecompressionBombError,
            OSError,
            ValueError,
            SyntaxError,
        ) as exc:
            message = f"{path}: not a readable image ({exc.__class__.__name__})"
            if not skip_bad:
                raise ImageFileError(message + "; pass --skip-bad to skip such files") from exc
            warnings.warn(f"skipping {message}", stacklevel=2)
            continue
        if expected is not None:
            channels, rows, columns = expected
            if abs((height / width) / (rows / columns) - 1) > RATIO_TOLERANCE:
                stretched.add(f"{path} ({width}x{height})")
            if channels == 3 and mode in GREY_MODES:
                grey.add(str(path))
    if not good:
        raise ImageFileError("no readable images among the given files")
    if expected is not None:
        size = f"{expected[2]}x{expected[1]}"
        stretched.warn(f"not of the run's aspect ratio ({size}); read stretched to it, a distorted image")
        grey.warn("grey, while the run's images are colour; read with three equal channels")
    return good


@dataclass
class Mismatch:
    """Files that share one problem: how many, and the first one (for a one-line warning)."""

    count: int = 0
    first: str = ""

    def add(self, what: str) -> None:
        self.count += 1
        self.first = self.first or what

    def warn(self, problem: str) -> None:
        if self.count:
            more = f" and {self.count - 1} more" if self.count > 1 else ""
            warnings.warn(f"{self.first}{more}: {problem}", stacklevel=3)


# the local detector keeps larger images' detail up to this side (BENCHMARKS.md, "Image size")
DETAIL_SIZE_CAP = 256


def default_image_size(largest: int, keep_detail: bool = False) -> int:
    """The side images are resized to when no size is given: 28 for small images (32 pixels or
    less), else 64; with ``keep_detail`` (the local detector) the images' own larger side, 64 at
    least and ``DETAIL_SIZE_CAP`` at most, small images included: downsizing blurs away the
    small defects it looks for."""
    if keep_detail:
        return min(max(largest, 64), DETAIL_SIZE_CAP)
    return 28 if largest <= 32 else 64


SIZE_SAMPLE = 64  # training images whose sizes set the default side (headers only)


def sampled(paths: list) -> list:
    """Up to ``SIZE_SAMPLE`` of ``paths`` spread evenly over them, the first one first: the
    training files whose headers (and levels) set how a run reads its images."""
    picks = np.unique(np.linspace(0, len(paths) - 1, min(len(paths), SIZE_SAMPLE)).round().astype(int))
    return [paths[i] for i in picks]


def infer_shape(
    paths: list, size: int | None, channels: int | None, keep_detail: bool = False
) -> tuple[int, int, int]:
    """``(C, H, W)`` of the images as the detector sees them. Grey images stay grey, colour
    images are RGB (as the first image is). The larger side is ``size`` or ``default_image_size``
    of the median larger side, and the other keeps the median height / width ratio, both over up
    to ``SIZE_SAMPLE`` images spread over ``paths`` (one odd thumbnail does not set them): a
    640x480 camera frame stays 4:3 instead of being squashed to a square."""
    sides, ratios, modes = [], [], []
    for path in sampled(paths):  # the first image first
        with Image.open(path) as image:
            width, height = upright_size(image)
            sides.append(max(width, height))
            ratios.append(height / width)
            modes.append(image.mode)
    grey = modes[0] in GREY_MODES
    channels = channels or (1 if grey else 3)
    size = size or default_image_size(int(np.median(sides)), keep_detail)
    if channels not in (1, 3):
        raise OneClassError(f"--channels must be 1 or 3, got {channels}")
    if size < 4:
        raise OneClassError(f"--image-size must be at least 4, got {size}")
    height, width = sides_of(size, float(np.median(ratios)))
    return channels, height, width


def infer_white(paths: list) -> int | None:
    """The level read as white (``images.high_bit_white``) for the grey files of more than 8 bits
    among up to ``SIZE_SAMPLE`` images spread over ``paths``, from their brightest level; None when
    none of them has more than 8 bits. Fixed at fit for the whole run: a factor per image would
    stretch each to its own brightest pixel, and a darker image would no longer be darker."""
    brightest = None
    for path in sampled(paths):
        with Image.open(path) as image:
            if image.mode in HIGH_BIT_MODES:
                level = int(np.asarray(image).max())
                brightest = level if brightest is None else max(brightest, level)
    return None if brightest is None else high_bit_white(brightest)


# the smaller side is at least this (or the larger side, if that is smaller): every encoder's
# pooling stages need a few pixels, so a long strip is squeezed no further than this
MIN_SIDE = 16


def sides_of(size: int, ratio: float) -> tuple[int, int]:
    """``(H, W)`` with the larger side ``size`` and H / W as close to ``ratio`` as whole pixels
    allow, the smaller side ``MIN_SIDE`` at least."""
    floor = min(size, MIN_SIDE)
    if ratio >= 1:
        return size, max(floor, round(size / ratio))
    return max(floor, round(size * ratio)), size


def folder_splits(
    root: str | os.PathLike | None = None,
    normal_dir: str | os.PathLike | None = None,
    abnormal_dir: str | os.PathLike | None = None,
    size: int | None = None,
    channels: int | None = None,
    skip_bad: bool = False,
    keep_detail: bool = False,
    white: int | None = None,
) -> tuple[ImageFolder, ImageFolder | None]:
    """(normal training images, evaluation images or None) from a layout described above, at
    ``size`` (else ``default_image_size``; ``keep_detail`` for the local detector); grey files of
    more than 8 bits read with level ``white`` as 255 (else ``infer_white`` of the training files)."""
    if root is not None:
        root = Path(root)
        if not root.is_dir():
            raise OneClassError(f"{root}: no such folder")
        if not (root / "train" / GOOD).is_dir():
            raise OneClassError(
                f"{root}: expected the layout {root}/train/{GOOD}/ (normal images) and optionally "
                f"{root}/test/<kind>/; for a plain folder of normal images use --normal-dir {root}"
            )
        train_paths = list_images(root / "train" / GOOD)
        test_root = root / "test"
        test_paths, kinds = [], []
        if test_root.is_dir():
            for kind_dir in sorted(p for p in test_root.iterdir() if p.is_dir()):
                found = find_image_files(kind_dir)
                test_paths += found
                kinds += [kind_dir.name] * len(found)
    elif normal_dir is not None:
        train_paths = list_images(Path(normal_dir))
        test_paths = list_images(Path(abnormal_dir)) if abnormal_dir is not None else []
        kinds = ["abnormal"] * len(test_paths)
    else:
        raise OneClassError("give a folder dataset as --data folder:PATH or --normal-dir DIR")
    train_paths = check_files(train_paths, skip_bad)
    shape = infer_shape(train_paths, size, channels, keep_detail)
    white = white or infer_white(train_paths)
    train = ImageFolder(train_paths, shape, np.ones(len(train_paths), bool), [GOOD] * len(train_paths), white)
    if not test_paths:
        return train, None
    kind_of = dict(zip(test_paths, kinds, strict=True))
    test_paths = check_files(test_paths, skip_bad, shape)
    test_kinds = [kind_of[p] for p in test_paths]
    is_normal = np.array([kind == GOOD for kind in test_kinds])
    return train, ImageFolder(test_paths, shape, is_normal, test_kinds, white)


def defect_masks(test: ImageFolder, root: str | os.PathLike) -> np.ndarray | None:
    """The defect masks of an MVTec-layout test split, bool ``(n, H, W)`` at the images' size:
    ``ROOT/ground_truth/<kind>/<name>_mask.png`` for a defective image, all False for a good one.
    None when a defective image has no mask (the folder gives no pixel labels)."""
    masks = np.zeros((len(test), *test.image_shape[1:]), dtype=bool)
    for i, (path, kind) in enumerate(zip(test.paths, test.kinds, strict=True)):
        if kind == GOOD:
            continue
        mask_path = Path(root) / "ground_truth" / kind / f"{Path(path).stem}_mask.png"
        if not mask_path.is_file():
            return None
        masks[i] = read_image(mask_path, (1, *test.image_shape[1:]))[0] > 127
    return masks

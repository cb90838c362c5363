"""Inputs named on the command line: ``mnist:test``, an IDX file, image files, folders or globs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OneClassError
from .datasets import DATASETS, load_dataset
from .folders import GOOD, ImageFolder, check_files, layout_kind, run_folders
from .idx import IDXError, read_idx
from .images import expand_image_paths


@dataclass
class InputBatch:
    """Images from one named source, with an id per image and labels where the source has them."""

    source: str
    ids: list[str]
    images: np.ndarray | ImageFolder  # uint8 (n, C, H, W); files are read batch by batch
    labels: np.ndarray | None = None  # class numbers, or folder kinds ("good", "scratch", "" unknown)
    dataset: str | None = None
    is_normal: np.ndarray | None = None  # bool, where the folder layout says (see ``labelled``)
    labelled: np.ndarray | None = None  # bool: the layout names this image's kind


def parse_dataset_spec(spec: str) -> tuple[str, str] | None:
    """``mnist`` / ``mnist:test`` -> (name, split); None when ``spec`` names no dataset."""
    name, _, split = spec.partition(":")
    if name.lower() not in DATASETS:
        return None
    return name.lower(), split or "test"


def _is_idx(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith(("ubyte", ".idx")) or "-idx" in name or ".idx" in name


def load_inputs(
    specs: list[str],
    shape: tuple[int, int, int],
    data_dir: str | os.PathLike | None = None,
    skip_bad: bool = False,
    run_data: dict | None = None,
) -> list[InputBatch]:
    """Resolve every spec to images of ``shape`` (channels, height, width); ``run_data``: the
    ``data`` entry of the scoring run's metrics.json, which says what its own folders hold."""
    batches: list[InputBatch] = []
    image_specs: list[str] = []
    for spec in specs:
        dataset = parse_dataset_spec(spec)
        if dataset is not None and not Path(spec).exists():
            images, labels = load_dataset(*dataset, data_dir=data_dir)
            ids = [str(i) for i in range(len(images))]
            batches.append(InputBatch(f"{dataset[0]}:{dataset[1]}", ids, images[:, None], labels, dataset[0]))
        elif Path(spec).is_file() and _is_idx(Path(spec)):
            images = read_idx(spec)
            if images.ndim != 3 or images.dtype != np.uint8:
                raise IDXError(
                    f"{spec}: expected uint8 images of shape (n, h, w), got {images.dtype} {images.shape}"
                )
            batches.append(InputBatch(spec, [str(i) for i in range(len(images))], images[:, None]))
        else:
            image_specs.append(spec)
    if image_specs:
        paths = check_files(expand_image_paths(image_specs), skip_bad, tuple(shape))
        ids = [p if isinstance(p, str) else str(p) for p in paths]  # the same strings, not copies
        run_data = run_data or {}
        training, abnormal = run_folders(run_data)
        kinds = np.array([layout_kind(p, training, abnormal) for p in ids], dtype=object)
        white = run_data.get("high_bit_white")  # as the run read its training files
        batch = InputBatch("files", ids, ImageFolder(ids, tuple(shape), white=white), kinds)
        if (kinds != "").any():
            batch.labelled, batch.is_normal = kinds != "", kinds == GOOD
        batches.append(batch)
    for batch in batches:
        if tuple(batch.images.shape[1:]) != tuple(shape):
            raise OneClassError(
                f"{batch.source}: images of shape {tuple(batch.images.shape[1:])}, "
                f"the model expects {tuple(shape)}"
            )
    return batches

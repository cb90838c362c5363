"""What the scripts that fit the product on inspection folders share: their arguments, the image
AUROC against each defect kind, the product fitted on a category, and a table row of means by
folder, category and kind."""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from oneclass.data.folders import folder_splits
from oneclass.detector import OneClassDetector
from oneclass.evaluation.metrics import auroc

KINDS = ("missing", "scratch", "stain")
T = TypeVar("T")


def folder_arguments(description: str) -> argparse.ArgumentParser:
    """A parser of the folders (MVTec layout), ``--seeds`` (comma-separated) and ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("folders", nargs="+", type=Path, help="inspection folders (MVTec layout)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds")
    parser.add_argument("--out", type=Path, required=True, help="markdown record to write")
    return parser


def seeds_of(text: str) -> list[int]:
    return [int(s) for s in text.split(",")]


def categories_of(folders: list[Path]) -> list[str]:
    """The categories (subfolders) of every folder, sorted."""
    return sorted({c.name for f in folders for c in f.iterdir() if c.is_dir()})


def each_category(folders: list[Path], measure: Callable[[Path], T]) -> dict[tuple[str, str], T]:
    """{(folder name, category): ``measure(category folder)``} over every folder's categories."""
    return {(f.name, c.name): measure(c) for f in folders for c in sorted(f.iterdir()) if c.is_dir()}


def table_head(command: str, label: str, folders: list[Path], categories: list[str]) -> list[str]:
    """A record's first lines: its command, then the head of a table whose rows ``summary_row``
    fills (seed, ``label``, the mean, means by folder, category and kind)."""
    columns = [*(f.name for f in folders), *categories, *KINDS]
    return [
        command,
        "",
        f"| seed | {label} | mean image AUROC (%) | " + " | ".join(columns) + " |",
        "|---" * (3 + len(columns)) + "|",
    ]


def fitted_product(category: Path, seed: int, transform=None):
    """(the product fitted as ``oneclass bench --methods patch-ocnn`` fits it, its training images,
    the test split, its images), each image through ``transform`` first when one is given."""
    train, test = folder_splits(category, keep_detail=True)
    images, tested = train[np.arange(len(train))], test[np.arange(len(test))]
    if transform is not None:
        images, tested = transform(images), transform(tested)
    detector = OneClassDetector(encoder="lite0", seed=seed, nu=0.1, device="cpu", quiet=True).fit(images)
    return detector, images, test, tested


def kind_aurocs(scores: np.ndarray, test) -> dict[str, float]:
    """{"all" and each kind: image AUROC} of a test split's ``scores`` (higher = more normal)."""
    kinds, found = np.array(test.kinds), {"all": auroc(scores, test.is_normal)}
    for kind in KINDS:
        keep = test.is_normal | (kinds == kind)
        found[kind] = auroc(scores[keep], test.is_normal[keep])
    return found


def summary_row(found: dict[tuple[str, str], dict[str, float]], folders: list[Path], categories: list[str]):
    """(the mean image AUROC, the table cells: means by folder, by category and by kind, in per
    cent) of ``found[(folder name, category)]`` from ``kind_aurocs``."""
    groups = [
        *([v["all"] for k, v in found.items() if k[0] == f.name] for f in folders),
        *([v["all"] for k, v in found.items() if k[1] == c] for c in categories),
        *([v[kind] for v in found.values()] for kind in KINDS),
    ]
    cells = " | ".join(f"{100 * statistics.mean(g):.1f}" for g in groups)
    return statistics.mean(v["all"] for v in found.values()), cells


def variant_rows(
    folders: list[Path], seeds: list[int], variants: dict[str, Callable[[Path, int], tuple]], lines: list[str]
) -> None:
    """For each seed and each variant, a row of ``table_head``'s table appended to ``lines`` (and
    printed): ``variants[name](category folder, seed)`` gives (a fitted detector, the test split,
    its images as the detector takes them), scored here."""
    categories = categories_of(folders)
    for seed in seeds:
        for name, fit in variants.items():

            def measure(category, fit=fit, seed=seed):
                detector, test, tested = fit(category, seed)
                return kind_aurocs(detector.score_samples(tested), test)

            mean, cells = summary_row(each_category(folders, measure), folders, categories)
            lines.append(f"| {seed} | {name} | **{100 * mean:.2f}** | {cells} |")
            print(lines[-1], flush=True)


def product_variant(transform=None, setting: Callable = contextlib.nullcontext):
    """A variant for ``variant_rows``: the product fitted as ``fitted_product`` fits it (images
    through ``transform``), inside the context ``setting()``."""

    def fit(category: Path, seed: int):
        with setting():
            detector, _, test, tested = fitted_product(category, seed, transform)
        return detector, test, tested

    return fit

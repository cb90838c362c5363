"""The benchmark runner, the service behind ``oneclass bench``: for each normal class c, every
method (``evaluation/methods.py``) is trained on the training images of class c only and scores
the whole test split (class c positive). Results are written as results.json (one record per
dataset, method, class and seed), results.csv and results.md; the CLI adds report.html."""

from __future__ import annotations

import csv
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import calibration
from ..data import load_dataset
from ..data.datasets import dataset_info
from ..errors import OneClassError
from ..evaluation.methods import METHODS, BenchConfig, ClassTask, Method
from ..evaluation.metrics import detection_metrics
from ..evaluation.protocol import one_class_split, validation_split
from ..evaluation.published import published_markdown
from ..fileio import atomic_open, write_json
from ..timing import Stopwatch


def select_methods(names: list[str] | None, registry: dict[str, Any] = METHODS) -> list[Any]:
    """The methods of ``registry`` named in ``names``; without names, those run by default."""
    if not names:
        return [m for m in registry.values() if getattr(m, "default", True)]
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise OneClassError(f"unknown methods {unknown}; expected some of {', '.join(registry)}")
    return [registry[n] for n in names]


def machine_description() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {sys.version.split()[0]}"
    )


def run_benchmark(
    dataset: str,
    methods: list[Method],
    classes: list[int],
    seeds: list[int],
    config: BenchConfig,
    out: str | os.PathLike,
    *,
    data_dir: str | os.PathLike | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run every method on every (class, seed); write results after each class (a long run
    that stops part-way keeps what it finished). Returns the records."""
    info = dataset_info(dataset)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_x, train_y = load_dataset(info.name, "train", data_dir)
    if config.split == "test":
        test_x, test_y = load_dataset(info.name, "test", data_dir)
        test_x, test_y = test_x[: config.test_limit], test_y[: config.test_limit]
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    for seed in seeds:
        for normal in classes:
            if config.split == "test":
                index = one_class_split(train_y, (normal,), config.train_limit)
                evaluation, is_normal = test_x, test_y == normal
            else:  # the test split is never loaded: settings are chosen here
                index, held_out, is_normal = validation_split(train_y, (normal,), seed, config.train_limit)
                evaluation = train_x[held_out]
            task = ClassTask(
                info.name, normal, seed, train_x[index][:, None], evaluation[:, None], is_normal, config
            )
            for method in methods:
                clock = Stopwatch()
                before = dict(task.shared_seconds)
                output = method.run(task)
                shared = {k: v for k, v in task.shared_seconds.items() if k not in before}
                wall = clock.seconds() - sum(shared.values())
                metrics = detection_metrics(output.test_scores, task.test_is_normal, output.threshold)
                record = {
                    "dataset": info.name,
                    "method": method.name,
                    "normal_class": normal,
                    "seed": seed,
                    **metrics,
                    "nu": config.nu,
                    "train_share_flagged": float(
                        calibration.flagged(output.train_scores, output.threshold).mean()
                    ),
                    "n_train": len(index),
                    "n_test": len(evaluation),
                    "split": config.split,
                    "method_s": round(wall, 3),
                    "shared_encoder_s": {
                        f"{k}_encoder_s": task.shared_seconds[f"{k}_encoder_s"] for k in method.uses
                    },
                    **({"extra": output.extra} if output.extra else {}),
                }
                records.append(record)
                log(
                    f"{info.name} class {normal} seed {seed} {method.name:>16}: AUROC {metrics['auroc']:.4f} "
                    f"AP {metrics['average_precision']:.4f} FAR {metrics['false_alarm_rate']:.3f} "
                    f"({wall:.1f}s)"
                )
            write_results(
                out,
                records,
                dataset=info.name,
                config=config,
                command=command,
                elapsed=time.perf_counter() - started,
            )
    return records


def write_results(
    out: Path,
    records: list[dict[str, Any]],
    *,
    dataset: str,
    config: BenchConfig,
    command: str,
    elapsed: float,
) -> None:
    write_json(
        out / "results.json",
        {
            "command": command,
            "machine": machine_description(),
            "config": asdict(config),
            "elapsed_s": round(elapsed, 1),
            "records": records,
        },
    )
    columns = [
        "dataset",
        "method",
        "normal_class",
        "seed",
        "auroc",
        "average_precision",
        "false_alarm_rate",
        "detection_rate",
        "nu",
        "train_share_flagged",
        "n_train",
        "n_test",
        "method_s",
    ]
    with atomic_open(out / "results.csv", "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    with atomic_open(out / "results.md", "w") as handle:
        handle.write(markdown_tables(records, dataset, command, elapsed))


def _per_class_table(
    records: list[dict[str, Any]],
    methods: list[str],
    classes: list[int],
    seeds: list[int],
    key: str,
    scale: float,
    fmt: str,
    std_fmt: str,
) -> list[str]:
    """Rows: methods; columns: classes (mean over seeds), the mean and its std over seeds."""
    lines = ["| method | " + " | ".join(str(c) for c in classes) + " | mean | std over seeds |"]
    lines.append("|---" * (len(classes) + 3) + "|")
    for method in methods:
        rows = [r for r in records if r["method"] == method]
        per_class = [np.mean([r[key] for r in rows if r["normal_class"] == c] or [np.nan]) for c in classes]
        per_seed = [
            np.mean([r[key] for r in rows if r["seed"] == s])
            for s in seeds
            if any(r["seed"] == s for r in rows)
        ]
        cells = " | ".join(fmt.format(scale * v) for v in per_class)
        mean = fmt.format(scale * np.nanmean(per_class))
        lines.append(f"| {method} | {cells} | **{mean}** | {std_fmt.format(scale * np.std(per_seed))} |")
    return lines


def markdown_tables(
    records: list[dict[str, Any]], dataset: str, command: str = "", elapsed: float = 0.0
) -> str:
    """Per-class AUROC (%) per method, mean over seeds; the mean over classes with its std over
    seeds; then AP, false alarms vs nu, detection rate and time; then the published numbers."""
    methods = list(dict.fromkeys(r["method"] for r in records))
    classes = sorted({r["normal_class"] for r in records})
    seeds = sorted({r["seed"] for r in records})
    validation = records and records[0].get("split") == "validation"
    where = "the validation split (training images only)" if validation else "the test split"
    lines = [f"### {dataset}: one-class AUROC (%) on {where}, mean over seeds {seeds}", ""]
    if command:
        lines += [
            f"Command: `{command}`  ",
            f"Machine: {machine_description()}; wall time {elapsed / 60:.1f} min",
            "",
        ]
    lines += _per_class_table(records, methods, classes, seeds, "auroc", 100.0, "{:.1f}", "{:.2f}")
    lines += [
        "",
        f"False-alarm rate on the normal images of {where} at each method's own threshold "
        "(nu-based), per class, mean over seeds:",
        "",
    ]
    lines += _per_class_table(records, methods, classes, seeds, "false_alarm_rate", 1.0, "{:.3f}", "{:.3f}")
    lines += ["", "Other metrics, mean over classes and seeds (threshold = each method's own, nu-based):", ""]
    lines.append(
        "| method | AP (%) | false-alarm rate on normal images (nu) | detection rate | "
        "training share flagged (in-sample) | method time per class (s) | shared encoder time per class (s) |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for method in methods:
        rows = [r for r in records if r["method"] == method]
        shared = np.mean([sum(r["shared_encoder_s"].values()) for r in rows])
        lines.append(
            f"| {method} | {100 * np.mean([r['average_precision'] for r in rows]):.1f} | "
            f"{np.mean([r['false_alarm_rate'] for r in rows]):.3f} ({rows[0]['nu']}) | "
            f"{np.mean([r['detection_rate'] for r in rows]):.3f} | "
            f"{np.mean([r['train_share_flagged'] for r in rows]):.3f} | "
            f"{np.mean([r['method_s'] for r in rows]):.1f} | {shared:.1f} |"
        )
    if not validation:  # published numbers are test-split numbers
        lines += ["", published_markdown(dataset), ""]
    return "\n".join(lines)

"""What the benchmark scripts do with their table: print it and write it to their ``--out`` file
(atomically: an interrupted run leaves the previous file whole)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from oneclass.fileio import atomic_open


def record(lines: list[str], out: Path) -> str:
    """Join ``lines``, print them and write them to ``out``; returns the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out) as handle:
        handle.write(text)
    return text


def class_table(per_class: dict[int, dict[str, float]], classes: list[int]) -> list[str]:
    """A markdown table of AUROCs ``per_class[class][candidate]`` (fractions), one row per candidate
    with a column per class and the mean over ``classes``, in per cent."""
    lines = [
        "| candidate | " + " | ".join(f"class {c}" for c in classes) + " | mean |",
        "|---" * (len(classes) + 2) + "|",
    ]
    for name in per_class[classes[0]]:
        cells = [f"{100 * per_class[c][name]:.2f}" for c in classes]
        mean = 100 * np.mean([per_class[c][name] for c in classes])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | **{mean:.2f}** |")
    return lines

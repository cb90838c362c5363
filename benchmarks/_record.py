"""What the benchmark scripts do with their table: print it and write it to their ``--out`` file
(atomically: an interrupted run leaves the previous file whole)."""

from __future__ import annotations

from pathlib import Path

from oneclass.fileio import atomic_open


def record(lines: list[str], out: Path) -> str:
    """Join ``lines``, print them and write them to ``out``; returns the text."""
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out) as handle:
        handle.write(text)
    return text

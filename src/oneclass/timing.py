"""Wall-clock timing of the stages of a run."""

from __future__ import annotations

import time


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 3)

"""Repeated timings and their summary: median and p10-p90 spread."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """The median and the 10th and 90th percentiles of some samples."""

    p50: float
    p10: float
    p90: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Summary:
        values = np.asarray(samples, dtype=np.float64)
        p10, p50, p90 = np.percentile(values, [10, 50, 90])
        return cls(float(p50), float(p10), float(p90), len(samples))

    def text(self, unit: str, scale: float = 1.0, digits: int = 1) -> str:
        """``p50 unit (p10-p90, n=...)``."""
        f = f"{{:.{digits}f}}"
        return (
            f"{f.format(self.p50 * scale)} {unit} "
            f"({f.format(self.p10 * scale)}–{f.format(self.p90 * scale)}, "
            f"n={self.n})"
        )


def timed(call: Callable[[], object], rounds: int, warmup: int = 2) -> Summary:
    """Seconds per call of ``call``, over ``rounds`` calls after ``warmup``."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return Summary.of(samples)

"""Latency statistics: percentiles, moments, throughput and window-to-window spread.

Conventions (stated so results can be compared with other tools):
- percentiles interpolate linearly between order statistics (numpy's default "linear", the same rule
  as TFLite's Python benchmark tool `benchmark_litert_model`): p = x[k] + f * (x[k+1] - x[k]) with
  k + f = (n - 1) * q / 100;
- `std` is the sample standard deviation (n - 1 denominator; 0 for a single run), like Python's
  `statistics.stdev` that `benchmark_litert_model` reports;
- throughput comes in two labelled forms, never as a bare "fps": `fps_median` = 1000 / median latency
  (ms), the rate a typical invoke implies and the one shown beside the median headline; `fps_mean` =
  1000 / mean latency, runs per second of measured invoke time (the sustained single-stream rate, which
  a few preempted runs on a loaded machine pull far below the median's);
- `window_spread` is (max - min) / median of the windows' medians: how far apart two windows of the
  same benchmark land (0.05 = 5%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latencies in milliseconds."""

    runs: int
    median: float
    p90: float
    p95: float
    p99: float
    mean: float
    std: float
    min: float
    max: float

    def to_dict(self) -> dict[str, float]:
        """The `latency_ms` mapping saved with a result (run count excluded)."""
        d = asdict(self)
        d.pop("runs")
        return d

    @property
    def fps_median(self) -> float:
        """1000 / median ms: the throughput the headline latency implies."""
        return fps(self.median)

    @property
    def fps_mean(self) -> float:
        """1000 / mean ms: runs per second of measured invoke time."""
        return fps(self.mean)


def percentile(sorted_values: Sequence[float] | np.ndarray, q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, linear interpolation."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    k = (n - 1) * q / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, n - 1)
    f = k - lo
    a, b = float(sorted_values[lo]), float(sorted_values[hi])
    return a + f * (b - a)


def summarize(latencies_ms: Sequence[float] | np.ndarray) -> LatencyStats:
    """Median, p90, p95, p99, mean, sample std, min and max of latencies in ms."""
    x = np.sort(np.asarray(latencies_ms, dtype=np.float64).reshape(-1))
    n = int(x.size)
    if n == 0:
        raise ValueError("no latencies to summarize")
    if not np.all(np.isfinite(x)):
        raise ValueError("latencies must be finite")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    return LatencyStats(
        runs=n,
        median=percentile(x, 50),
        p90=percentile(x, 90),
        p95=percentile(x, 95),
        p99=percentile(x, 99),
        mean=mean,
        std=std,
        min=float(x[0]),
        max=float(x[-1]),
    )


def fps(latency_ms: float) -> float:
    """Single-stream throughput at a latency: inferences per second (1000 / latency_ms)."""
    return 1000.0 / latency_ms if latency_ms > 0 else float("inf")


def window_spread(window_medians: Sequence[float]) -> float | None:
    """(max - min) / median of per-window medians; None with fewer than two windows."""
    if len(window_medians) < 2:
        return None
    m = np.asarray(window_medians, dtype=np.float64)
    mid = float(np.median(m))
    if mid <= 0:
        return None
    return float((m.max() - m.min()) / mid)


def relative_difference(a: float, b: float) -> float:
    """|a - b| / b: how far `a` is from the reference `b` (0.05 = 5%)."""
    return abs(a - b) / b if b else float("inf")

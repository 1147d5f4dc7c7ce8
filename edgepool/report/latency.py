"""Latency distributions from what a saved benchmark result keeps.

A result file (RUN/benchmarks/<stamp>.json) keeps summaries, not every run's latency: for the whole
benchmark and for each timed window, min, p50 (median), p90, p95, p99 and max (`edgepool.bench.stats`,
linear-interpolated percentiles). Between two stored percentiles the cumulative distribution is taken
as linear, so it is exact at the stored points and an interpolation between them. The histogram is the
mix of the windows' distributions weighted by their runs (more break points than the pooled summary,
and a window that ran slower shows as its own bump); with no windows, the pooled summary's. When a
result does carry raw latencies (`latencies_ms`: a list), those are used as they are.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# stored key -> cumulative share of runs at or below it
QUANTILES = (("min", 0.0), ("median", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
LOG_RATIO = 5.0
HOW = ("reconstructed from the stored percentiles (min, p50, p90, p95, p99, max of every timed window), "
       "linear between them: results keep summaries, not every run's latency")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) and f > 0 else None


def points(latency: dict[str, Any] | None) -> list[tuple[float, float]]:
    """(ms, cumulative share) for each stored percentile, sorted, non-decreasing; [] when fewer than 2."""
    if not isinstance(latency, dict):
        return []
    out: list[tuple[float, float]] = []
    for key, q in QUANTILES:
        v = _num(latency.get(key))
        if v is not None:
            out.append((v, q))
    out.sort(key=lambda p: p[1])
    fixed, hi = [], 0.0
    for v, q in out:  # percentiles never decrease; a rounding wobble is flattened
        hi = max(hi, v)
        fixed.append((hi, q))
    return fixed if len(fixed) >= 2 and fixed[0][1] == 0.0 and fixed[-1][1] == 1.0 else []


def raw_latencies(result: dict[str, Any]) -> np.ndarray | None:
    raw = result.get("latencies_ms")
    if not isinstance(raw, list) or len(raw) < 2:
        return None
    arr = np.asarray([v for v in raw if _num(v) is not None], dtype=np.float64)
    return np.sort(arr) if arr.size >= 2 else None


def _cdf(pts: list[tuple[float, float]], x: np.ndarray) -> np.ndarray:
    xs = np.array([p[0] for p in pts])
    qs = np.array([p[1] for p in pts])
    if xs[-1] == xs[0]:  # every run the same latency
        return (x >= xs[0]).astype(np.float64)
    # a jump at a repeated x (min == p50): np.interp takes the right-most value there, which is the CDF's definition
    return np.interp(x, xs, qs, left=0.0, right=1.0)


def _window_parts(result: dict[str, Any]) -> list[tuple[int, list[tuple[float, float]]]]:
    parts = []
    for w in result.get("windows") or []:
        if not isinstance(w, dict):
            continue
        pts = points(w.get("latency_ms"))
        runs = w.get("runs")
        if pts and isinstance(runs, int) and runs > 0:
            parts.append((runs, pts))
    return parts


def cdf_at(result: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The share of runs at or below each x (ms): raw latencies, else the windows' mix, else the summary."""
    raw = raw_latencies(result)
    if raw is not None:
        return np.searchsorted(raw, x, side="right") / raw.size
    parts = _window_parts(result)
    if parts:
        total = sum(r for r, _ in parts)
        return sum(r * _cdf(p, x) for r, p in parts) / total
    pts = points(result.get("latency_ms"))
    return _cdf(pts, x) if pts else np.zeros_like(x)


def has_distribution(result: dict[str, Any]) -> bool:
    return raw_latencies(result) is not None or bool(_window_parts(result)) or bool(points(result.get("latency_ms")))


def span(result: dict[str, Any]) -> tuple[float, float, float] | None:
    """(min, p99, max) in ms, from raw latencies or the stored summary."""
    raw = raw_latencies(result)
    if raw is not None:
        return float(raw[0]), float(np.percentile(raw, 99)), float(raw[-1])
    pts = dict((q, v) for v, q in points(result.get("latency_ms")))
    if not pts:
        parts = _window_parts(result)
        if not parts:
            return None
        lo = min(p[0][0] for _, p in parts)
        hi = max(p[-1][0] for _, p in parts)
        return lo, hi, hi
    return pts[0.0], pts.get(0.99, pts[1.0]), pts[1.0]


def histogram(results: list[tuple[str, dict[str, Any]]], bins: int = 40) -> tuple[list[dict[str, Any]], float]:
    """Histogram series over shared bins from the fastest min to the slowest p99 (the tail past it is in the
    CDF), and the largest share of a model's runs that lies beyond the right edge. The bins are even on a log
    scale when the slowest p99 is more than LOG_RATIO times the fastest min (series "log": True)."""
    spans = [(label, r, span(r)) for label, r in results]
    spans = [(label, r, s) for label, r, s in spans if s is not None]
    if not spans:
        return [], 0.0
    lo = min(s[0] for _, _, s in spans)
    hi = max(s[1] for _, _, s in spans)
    if hi <= lo:
        hi = lo * 1.01 + 1e-9
    log = hi / lo > LOG_RATIO  # a long tail: even bins on a log axis, or the body would be one bar
    edges = np.geomspace(lo, hi, bins + 1) if log else np.linspace(lo, hi, bins + 1)
    series, beyond = [], 0.0
    for label, r, _ in spans:
        c = cdf_at(r, edges)
        c[0] = cdf_at(r, np.array([lo - 1e-12]))[0]  # everything at lo counts in the first bin
        mass = np.diff(c)
        beyond = max(beyond, float(1.0 - c[-1]))
        series.append({"label": label, "edges": edges.tolist(), "mass": mass.tolist(), "log": log})
    return series, beyond


def cdf_series(label: str, result: dict[str, Any], n: int = 200) -> dict[str, Any] | None:
    """A CDF line over a log-spaced grid from min to max, the stored percentile points, and each window's line."""
    s = span(result)
    if s is None:
        return None
    lo, _, hi = s
    hi = max(hi, lo * 1.0001)
    x = np.geomspace(lo * 0.999, hi, n)
    raw = raw_latencies(result)
    pooled = points(result.get("latency_ms"))
    if raw is None and pooled:
        y = _cdf(pooled, x)  # the pooled summary is exact at its points: the line goes through them
    else:
        y = cdf_at(result, x)
    windows = [(x.tolist(), _cdf(p, x).tolist()) for _, p in _window_parts(result)] if raw is None else []
    return {"label": label, "x": x.tolist(), "y": y.tolist(), "points": [] if raw is not None else pooled,
            "windows": windows}

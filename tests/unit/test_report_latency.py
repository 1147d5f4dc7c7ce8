"""Latency distributions of the report, from what a saved result keeps: exact at the stored percentiles."""

from __future__ import annotations

import numpy as np
import pytest

from edgepool.bench import stats
from edgepool.report import latency


def _result(windows: list[np.ndarray]) -> dict:
    """A result as `BenchmarkResult.to_dict` saves it: the pooled summary and each window's, no raw latencies."""
    pooled = np.concatenate(windows)
    return {"latency_ms": stats.summarize(pooled).to_dict(),
            "windows": [{"index": i, "runs": int(w.size), "latency_ms": stats.summarize(w).to_dict()}
                        for i, w in enumerate(windows)]}


@pytest.fixture
def two_windows():
    rng = np.random.default_rng(0)
    return [rng.lognormal(0.0, 0.2, 400), rng.lognormal(0.3, 0.2, 600)]  # the second window ran slower


def test_cdf_line_goes_through_the_stored_percentiles(two_windows):
    r = _result(two_windows)
    s = latency.cdf_series("m", r)
    pooled = np.concatenate(two_windows)
    for q, key in ((0.5, "median"), (0.9, "p90"), (0.95, "p95"), (0.99, "p99")):
        want = np.percentile(pooled, 100 * q)
        assert (want, q) in [(pytest.approx(v), p) for v, p in s["points"]]
        assert np.interp(want, s["x"], s["y"]) == pytest.approx(q, abs=0.01)
        assert r["latency_ms"][key] == pytest.approx(want)
    assert s["y"][0] == 0.0 and s["y"][-1] == pytest.approx(1.0) and np.all(np.diff(s["y"]) >= 0)
    assert len(s["windows"]) == 2


def test_histogram_is_close_to_the_real_one(two_windows):
    """Against the histogram of the very latencies the summaries came from: the windows' mix is closer than the
    pooled summary alone, and the share it puts past the right edge (the pooled p99) is about the real 1%."""
    r = _result(two_windows)
    pooled = np.concatenate(two_windows)

    def distance(result):
        (s,), beyond = latency.histogram([("m", result)])
        mass, edges = np.array(s["mass"]), np.array(s["edges"])
        assert np.all(mass >= 0) and mass.sum() + beyond == pytest.approx(1.0)
        real = np.histogram(pooled, bins=edges)[0] / pooled.size
        return 0.5 * np.abs(real - mass).sum(), beyond, (pooled > edges[-1]).mean()

    mixed, beyond, real_beyond = distance(r)
    summary_only, _, _ = distance({"latency_ms": r["latency_ms"]})
    assert mixed < summary_only and mixed < 0.25  # total variation distance over 40 bins
    assert real_beyond == pytest.approx(0.01, abs=0.001) and beyond == pytest.approx(real_beyond, abs=0.005)


def test_raw_latencies_are_used_as_they_are():
    x = np.arange(1, 101, dtype=float)
    r = {"latencies_ms": x.tolist(), "latency_ms": {"median": 999.0, "min": 1.0, "max": 1000.0}}
    assert latency.cdf_at(r, np.array([50.0, 100.0]))[0] == 0.5
    assert latency.span(r) == (1.0, pytest.approx(np.percentile(x, 99)), 100.0)
    assert latency.cdf_series("m", r)["points"] == []


def test_what_cannot_be_plotted():
    assert latency.points({"median": 1.0}) == []  # no min / max: no distribution
    assert latency.points(None) == [] and not latency.has_distribution({"latency_ms": {"mean": 2.0}})
    assert latency.points({"min": 1.0, "median": 0.99, "p90": 2.0, "max": 3.0}) == [(1.0, 0.0), (1.0, 0.5), (2.0, 0.9), (3.0, 1.0)]
    assert latency.histogram([("m", {})]) == ([], 0.0)
    same = {"latency_ms": {"min": 2.0, "median": 2.0, "p90": 2.0, "p95": 2.0, "p99": 2.0, "max": 2.0}}
    (s,), beyond = latency.histogram([("m", same)])
    assert sum(s["mass"]) == pytest.approx(1.0) and beyond == 0.0

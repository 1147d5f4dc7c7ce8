"""A baseline and a candidate run for the gate tests, made once per session from `tiny_run`.

`prepared_pair(tiny_run)`: a copy of the tiny digits run with a real int8 export (verified by edgepool),
copied again as the candidate, and both benchmarked in one real `benchmark` call (LiteRT, a few short
windows), saved by edgepool's own `save_results`. `variant(pair, tmp_path)` copies the two runs into a
test's own folder, where the test edits what it needs through edgepool's writers (`runs.atomic_write_json`,
`runs.save_verification`).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

_CACHE: dict[str, tuple[Path, Path]] = {}
# Windows long enough (0.3 s: thousands of runs of a digits model) that p95 is a percentile, not the slowest of a
# handful of runs: with 5 runs per window an identical pair measured 50 % apart in p95 on a quiet machine.
FAST = {"runs": 50, "windows": 3, "min_seconds": 0.3, "warmup_runs": 5, "warmup_min_seconds": 0.1, "max_samples": 60}


def prepared_pair(tiny_run: Any) -> tuple[Path, Path]:
    """(candidate, baseline) run directories; read-only, shared by every test of the session."""
    key = str(tiny_run.path)
    if key in _CACHE:
        return _CACHE[key]
    from edgepool import pipeline, runs
    from edgepool.bench.protocol import BenchOptions
    from edgepool.bench.runner import benchmark, save_results
    from edgepool.recipes import load_recipe

    root = Path(tempfile.mkdtemp(prefix="edgepool-gate-"))
    atexit.register(shutil.rmtree, root, True)
    base = root / "baseline"
    shutil.copytree(tiny_run.path, base)
    outcome = pipeline.export(runs.load_run(base), load_recipe("int8"))
    assert outcome.passed, outcome.reason
    cand = root / "candidate"
    shutil.copytree(base, cand)
    options = BenchOptions(**FAST)
    results = benchmark([cand, base], options, keep_going=True)
    assert all(r.error is None and r.latency_ms for r in results), [r.error for r in results]
    save_results(results, options)
    _CACHE[key] = (cand, base)
    return cand, base


def variant(pair: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the pair (candidate, baseline) in `tmp_path`, for a test to edit."""
    cand, base = tmp_path / "candidate", tmp_path / "baseline"
    shutil.copytree(pair[0], cand)
    shutil.copytree(pair[1], base)
    return cand, base


def bench_doc(run: Path) -> tuple[Path, dict[str, Any]]:
    """The run's one saved benchmark file and its document."""
    from edgepool import runs

    (path,) = sorted((run / "benchmarks").glob("*.json"))
    return path, runs.read_json(path)


def edit_rows(run: Path, **changes: Any) -> None:
    """Set top-level fields of every result row in the run's benchmark file (through edgepool's writer).
    A callable value is called with the row and its result is set."""
    from edgepool import runs

    path, doc = bench_doc(run)
    for row in doc["results"]:
        for k, v in changes.items():
            row[k] = v(row) if callable(v) else v
    runs.atomic_write_json(path, doc)


def scale_latency(row: dict[str, Any], factor: float, window_factors: list[float] | None = None) -> dict[str, Any]:
    """The row's latency statistics times `factor`; every window made to hold those statistics times its own
    factor (1 when not given), so the windows' spread is exactly what the factors say."""
    lat = {k: (v * factor if isinstance(v, int | float) else v) for k, v in row["latency_ms"].items()}
    for i, w in enumerate(row.get("windows") or []):
        f = window_factors[i] if window_factors else 1.0
        w["latency_ms"] = {k: (v * f if isinstance(v, int | float) else v) for k, v in lat.items()}
    return lat

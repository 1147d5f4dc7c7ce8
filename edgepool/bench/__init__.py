"""Benchmark engine: a self-contained device agent, the protocol, statistics, transports and the runner.

`edgepool.bench.benchmark(exports, options, progress=None) -> list[BenchmarkResult]` is the entry
point; importing this package does not import TensorFlow or any TFLite runtime.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BenchOptions", "BenchmarkResult", "benchmark", "save_results"]


def __getattr__(name: str) -> Any:
    if name in ("BenchOptions", "BenchmarkResult"):
        from . import protocol

        return getattr(protocol, name)
    if name in ("benchmark", "save_results"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'edgepool.bench' has no attribute {name!r}")

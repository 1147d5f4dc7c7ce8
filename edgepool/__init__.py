"""edgepool: train pooling CNNs, quantize, export and measure them on edge devices.

The public library API. Importing this package does not import TensorFlow: every name below is
resolved on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "EdgepoolError": "edgepool.errors",
    "Dataset": "edgepool.datasets",
    "load_dataset": "edgepool.datasets",
    "ModelSpec": "edgepool.models",
    "BlockSpec": "edgepool.models",
    "build_model": "edgepool.models",
    "preset": "edgepool.models",
    "train": "edgepool.training",
    "TrainResult": "edgepool.training",
    "Run": "edgepool.runs",
    "load_run": "edgepool.runs",
    "save_run": "edgepool.runs",
    "QuantRecipe": "edgepool.quantize",
    "load_recipe": "edgepool.quantize",
    "export": "edgepool.export",
    "ExportResult": "edgepool.export",
    "verify_export": "edgepool.verify",
    "DeviceProfile": "edgepool.profiles",
    "resolve_profile": "edgepool.profiles",
    "convert_for_profiles": "edgepool.convert",
    "inspect_model": "edgepool.inspect",
    "estimate_model": "edgepool.inspect",
    "analyze_edgetpu": "edgepool.inspect.edgetpu",
    "benchmark": "edgepool.bench.runner",
    "BenchOptions": "edgepool.bench.protocol",
    "BenchmarkResult": "edgepool.bench.protocol",
}

_ALIASES = {"resolve_profile": "resolve"}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    mod = _API.get(name)
    if mod is None:
        raise AttributeError(f"module 'edgepool' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), _ALIASES.get(name, name))

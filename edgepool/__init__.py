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
    "TrainConfig": "edgepool.training",
    "TrainResult": "edgepool.training",
    "Run": "edgepool.runs",
    "Export": "edgepool.runs",
    "load_run": "edgepool.runs",
    "load_export": "edgepool.runs",
    "QuantRecipe": "edgepool.recipes",
    "load_recipe": "edgepool.recipes",
    "DeviceProfile": "edgepool.profiles",
    "resolve_profile": "edgepool.profiles",
    "Format": "edgepool.types",
    "Runtime": "edgepool.types",
    "Status": "edgepool.types",
    "DeploymentTarget": "edgepool.types",
    "Compression": "edgepool.types",
    "Verification": "edgepool.types",
    "Artifact": "edgepool.types",
    "ProgressEvent": "edgepool.types",
    "ModelSource": "edgepool.export",
    "export_model": "edgepool.export",
    "train_run": "edgepool.pipeline",
    "save_run": "edgepool.pipeline",
    "quantize": "edgepool.pipeline",
    "export_run": "edgepool.pipeline",
    "ExportOutcome": "edgepool.pipeline",
    "convert_run": "edgepool.pipeline",
    "ConvertResult": "edgepool.pipeline",
    "verify_export": "edgepool.pipeline",
    "inspect_model": "edgepool.inspect",
    "estimate_model": "edgepool.inspect",
    "analyze_edgetpu": "edgepool.inspect.edgetpu",
    "benchmark": "edgepool.pipeline",
    "BenchOptions": "edgepool.bench.protocol",
    "BenchmarkResult": "edgepool.bench.protocol",
}

# public name -> name in its module (the pipeline's `export`/`verify` would clash with the subpackages)
_ALIASES = {"resolve_profile": "resolve", "export_run": "export", "verify_export": "verify", "convert_run": "convert"}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    mod = _API.get(name)
    if mod is None:
        raise AttributeError(f"module 'edgepool' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), _ALIASES.get(name, name))

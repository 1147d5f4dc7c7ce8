"""TFLite export: float32 / float16 / dynamic-int8 / full-int8 (PTQ or QAT) .tflite with metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..runs import Run, atomic_write_bytes
from . import metadata

MODEL_FILE = "model.tflite"


def tensor_info(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zp = detail.get("quantization", (0.0, 0))
    quantized = detail["dtype"] in (np.int8, np.uint8, np.int16) and scale
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": float(scale) if quantized else None,
        "zero_point": int(zp) if quantized else None,
    }


def io_spec(model: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Input and output tensor specs of a .tflite model (read with the LiteRT interpreter, not run)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model)
    return tensor_info(it.get_input_details()[0]), tensor_info(it.get_output_details()[0])


def build_tflite(run: Run, recipe: Any, progress: Any = None) -> tuple[bytes, dict[str, Any]]:
    """Model bytes for `recipe` (QAT fine-tune when the recipe asks and no QAT model is stored) + facts."""
    from ..quantize import convert_tflite

    facts: dict[str, Any] = {}
    calib_x = run.normalize(run.calib_data()[0]) if recipe.full_integer else None
    if recipe.qat:
        from ..quantize_run import load_or_train_qat

        model, qat_info = load_or_train_qat(run, recipe, progress=progress)
        facts["qat"] = qat_info
    else:
        model = run.load_model()
    return convert_tflite(model, recipe, calib_x), facts


def export_tflite_run(run: Run, recipe: Any, stage: Path, *, profile: Any = None, progress: Any = None) -> dict[str, Any]:
    from . import base_sidecar

    model, facts = build_tflite(run, recipe, progress=progress)
    inp, out = io_spec(model)
    sidecar = {
        **base_sidecar(run, recipe, profile),
        "format": "tflite",
        "file": MODEL_FILE,
        "input": inp,
        "output": out,
        "output_kind": "logits",
        **facts,
    }
    data = metadata.embed(model, sidecar)
    sidecar["size_bytes"] = len(data)
    atomic_write_bytes(stage / MODEL_FILE, data)
    return sidecar

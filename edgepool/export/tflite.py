"""TFLite export: float32 / float16 / dynamic-int8 / full-int8 (PTQ or QAT) .tflite with embedded metadata.

`export(source, recipe, profile)` converts the source's tf_keras model as the recipe says and returns
an `Artifact` holding `model.tflite` (with the sidecar embedded as metadata "edgepool").
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ExportError
from ..types import Artifact, Format, RecipeFormat
from . import metadata
from .source import ModelSource, base_sidecar

if TYPE_CHECKING:
    from ..profiles import DeviceProfile
    from ..recipes import QuantRecipe

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


def representative_samples(x_norm: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x_norm), size=min(n, len(x_norm)), replace=False)
    return x_norm[np.sort(idx)]


def convert(model: Any, recipe: QuantRecipe, calib_x: np.ndarray | None = None) -> bytes:
    """Convert a tf_keras model (float, or a TFMOT QAT model) to .tflite bytes as `recipe` says."""
    from .._tf import quiet_stderr, tf

    if recipe.format != RecipeFormat.TFLITE:
        raise ExportError(f"recipe {recipe.name} is a {recipe.format} recipe", "use a tflite recipe for a .tflite export")
    t = tf()
    conv = t.lite.TFLiteConverter.from_keras_model(model)
    if recipe.weights == "float16":
        conv.optimizations = [t.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [t.float16]
    elif recipe.weights == "int8":
        conv.optimizations = [t.lite.Optimize.DEFAULT]
        # the converter's only switch for per-tensor weights (tf.lite has no public one in 2.21)
        conv._experimental_disable_per_channel = not recipe.per_channel
    if recipe.full_integer:
        if calib_x is None or not len(calib_x):
            raise ExportError(f"recipe {recipe.name} needs calibration samples", "the run's data/calib.npz is missing; re-train the run")
        samples = representative_samples(calib_x, recipe.calibration_samples)

        def rep() -> Any:
            for s in samples:
                yield [s[None].astype(np.float32)]

        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
        types = {"float32": t.float32, "int8": t.int8, "uint8": t.uint8}
        conv.inference_input_type = types[recipe.input_type]
        conv.inference_output_type = types[recipe.output_type]
    try:
        with quiet_stderr(), warnings.catch_warnings():
            # int8 inputs: the converter asks for input statistics the representative data set already gives it
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return bytes(conv.convert())
    except Exception as e:  # the converter raises ConverterError / RuntimeError with long MLIR text
        msg = str(e).strip().splitlines()
        detail = next((m for m in msg if "error" in m.lower()), msg[0] if msg else type(e).__name__)
        raise ExportError(
            f"TFLite conversion with recipe {recipe.name} failed: {detail[:300]}",
            "full-integer recipes need every op to have an int8 kernel; try `dynamic-int8` or another pooling choice",
        ) from None


def export(source: ModelSource, recipe: QuantRecipe, profile: DeviceProfile | None = None) -> Artifact:
    """The source model as a .tflite for `recipe`, its sidecar embedded as metadata."""
    model = convert(source.model, recipe, source.calib_x if recipe.full_integer else None)
    inp, out = io_spec(model)
    sidecar = {
        **base_sidecar(source, recipe, profile),
        "format": Format.TFLITE.value,
        "file": MODEL_FILE,
        "input": inp,
        "output": out,
        "output_kind": "logits",
        **source.facts,
    }
    data = metadata.embed(model, sidecar)
    sidecar["size_bytes"] = len(data)
    return Artifact(Format.TFLITE, MODEL_FILE, {MODEL_FILE: data}, sidecar)

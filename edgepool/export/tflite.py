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


def converter(model: Any, recipe: QuantRecipe, calib_x: np.ndarray | None = None) -> Any:
    """The `tf.lite.TFLiteConverter` for a tf_keras model (float, or a TFMOT QAT model) set as `recipe` says.

    `convert` runs it; the per-layer error report hands it to TensorFlow's QuantizationDebugger."""
    from .._tf import tf

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
    return conv


def convert(model: Any, recipe: QuantRecipe, calib_x: np.ndarray | None = None) -> bytes:
    """Convert a tf_keras model (float, or a TFMOT QAT model) to .tflite bytes as `recipe` says."""
    return convert_with_notes(model, recipe, calib_x)[0]


def convert_with_notes(model: Any, recipe: QuantRecipe, calib_x: np.ndarray | None = None) -> tuple[bytes, dict[str, Any] | None]:
    """`convert`, plus for a selective recipe the record of its float island (`selective_record`)."""
    from .._tf import quiet_stderr

    conv = converter(model, recipe, calib_x)
    try:
        with quiet_stderr(), warnings.catch_warnings():
            # int8 inputs: the converter asks for input statistics the representative data set already gives it
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            # the QuantizationDebugger runs models in tf.lite.Interpreter, which warns that it is deprecated
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            if recipe.selective:
                return convert_selective(conv, model, recipe)
            return bytes(conv.convert()), None
    except ExportError:
        raise
    except Exception as e:  # the converter raises ConverterError / RuntimeError with long MLIR text
        msg = str(e).strip().splitlines()
        detail = next((m for m in msg if "error" in m.lower()), msg[0] if msg else type(e).__name__)
        raise ExportError(
            f"TFLite conversion with recipe {recipe.name} failed: {detail[:300]}",
            "full-integer recipes need every op to have an int8 kernel; try `dynamic-int8` or another pooling choice",
        ) from None


# ------------------------------------------------------------------ selective: a float island in full int8


def float_layer_names(model: Any, patterns: tuple[str, ...] | list[str]) -> list[str]:
    """Names of the layers of `model` that a recipe's `float_layers` selects: class or layer names, shell
    patterns allowed (`L2Pooling*`, `b*_l2pool`)."""
    import fnmatch

    return [layer.name for layer in model.layers
            if any(fnmatch.fnmatchcase(type(layer).__name__, p) or fnmatch.fnmatchcase(layer.name, p) for p in patterns)]


def layer_nodes(tflite_model: bytes, model_name: str, layers: list[str]) -> list[str]:
    """Output tensor names of the ops of `tflite_model` that come from Keras layers `layers` (the converter
    names them MODEL/LAYER/op, fused ops joined with ';')."""
    from ..inspect import read_tflite

    g = read_tflite(tflite_model).main
    want = set(layers)
    nodes = []
    for op in g.ops:
        for ti in op.outputs:
            t = g.tensor(ti)
            if t is None:
                continue
            parts = [p.split("/") for p in t.name.split(";")]
            if any(len(p) > 2 and p[0] == model_name and p[1] in want for p in parts):
                nodes.append(t.name)
    return nodes


def convert_selective(conv: Any, model: Any, recipe: QuantRecipe) -> tuple[bytes, dict[str, Any]]:
    """Full int8 with the recipe's layers / ops kept in float32: TensorFlow's QuantizationDebugger
    (`QuantizationDebugOptions(denylisted_nodes=..., denylisted_ops=...)`, `get_nondebug_quantized_model()`),
    then the converter's own `modify_model_io_type` for the recipe's input / output types.

    Why not the converter's 16x8 mode: in TF 2.21 it is whole-model only (every op int16, no per-op
    choice), it refuses L2 pooling outright ("Quantization to 16x8-bit not yet supported for op:
    'SQUARE'"; with float fallback allowed SQUARE and SQRT fall back to float anyway), and neither the
    Edge TPU nor many int8 CPU kernels run int16 activations."""
    from tensorflow.lite.python.util import modify_model_io_type  # noqa: TID251  (the converter's own IO rewrite)

    from .._tf import tf
    from ..inspect.edgetpu import analyze_edgetpu

    t = tf()
    layers = float_layer_names(model, recipe.float_layers)
    float_conv = t.lite.TFLiteConverter.from_keras_model(model)  # names the ops of those layers
    nodes = layer_nodes(bytes(float_conv.convert()), model.name, layers) if layers else []
    plain = bytes(conv.convert())  # plain int8: what the island is compared with
    if not nodes and not recipe.float_ops:
        record = {"float_layers": [], "float_nodes": [], "float_ops": [], "matched": False,
                  "note": f"no layer or op of this model matches recipe {recipe.name}'s float island: plain int8"}
        return plain, record
    opts = t.lite.experimental.QuantizationDebugOptions(denylisted_nodes=nodes or None,
                                                         denylisted_ops=list(recipe.float_ops) or None)
    # the debugger calibrates with the converter's representative data set and quantizes with the denylists
    dbg = t.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=conv.representative_dataset,
                                                   debug_options=opts)
    model_bytes = bytes(dbg.get_nondebug_quantized_model())
    model_bytes = bytes(modify_model_io_type(model_bytes, conv.inference_input_type, conv.inference_output_type))
    return model_bytes, selective_record(model_bytes, plain, layers, nodes, recipe, analyze_edgetpu)


def selective_record(model_bytes: bytes, plain: bytes, layers: list[str], nodes: list[str], recipe: QuantRecipe,
                     analyze: Any) -> dict[str, Any]:
    """What stayed float, and what that costs on the Edge TPU next to plain int8 (`inspect.edgetpu`)."""
    from ..inspect import read_tflite

    g = read_tflite(model_bytes).main
    float_ops = [{"index": op.index, "op": op.name, "tensor": g.tensor(op.outputs[0]).name if op.outputs else ""}
                 for op in g.ops if op.outputs and g.tensor(op.outputs[0]) is not None
                 and g.tensor(op.outputs[0]).dtype == "FLOAT32" and op.name != "DEQUANTIZE"]
    sel, base = analyze(model_bytes), analyze(plain)
    cost = sel.cpu_ops - base.cpu_ops
    return {
        "float_layers": layers, "float_nodes": nodes, "denylisted_ops": list(recipe.float_ops),
        "float_ops": float_ops, "matched": True,
        "edgetpu": {"split": sel.split, "mapped_ops": sel.mapped_ops, "cpu_ops": sel.cpu_ops,
                    "first_cpu_op": sel.first_cpu_op, "plain_int8_split": base.split,
                    "plain_int8_mapped_ops": base.mapped_ops, "extra_cpu_ops": cost},
    }


def selective_notes(record: dict[str, Any] | None) -> list[str]:
    """The float island and its Edge TPU cost, for people."""
    if record is None:
        return []
    if not record.get("matched"):
        return [record["note"]]
    ops = ", ".join(f"{o['op']}" for o in record["float_ops"]) or "none"
    e = record["edgetpu"]
    return [f"kept in float: layers {', '.join(record['float_layers']) or '-'}; float ops {ops}",
            f"Edge TPU (predicted): {e['split']}; plain int8: {e['plain_int8_split']} "
            f"({e['extra_cpu_ops']:+d} ops on the CPU)"]


def export(source: ModelSource, recipe: QuantRecipe, profile: DeviceProfile | None = None) -> Artifact:
    """The source model as a .tflite for `recipe`, its sidecar embedded as metadata."""
    model, selective = convert_with_notes(source.model, recipe, source.calib_x if recipe.full_integer else None)
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
    if selective is not None:
        sidecar["selective"] = selective
    data = metadata.embed(model, sidecar)
    sidecar["size_bytes"] = len(data)
    artifact = Artifact(Format.TFLITE, MODEL_FILE, {MODEL_FILE: data}, sidecar)
    artifact.notes.extend(selective_notes(selective))
    return artifact

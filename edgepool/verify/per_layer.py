"""Where a quantized TFLite model loses accuracy: every quantized op's output error, by Keras layer.

TensorFlow's own tool measures it: `tf.lite.experimental.QuantizationDebugger` builds the int8 model
with a NumericVerify op after every quantized op, runs the test split through it, and reports per op
the error of the quantized output against the same op computed in float on the same (dequantized)
inputs: `mean_error`, `max_abs_error`, `mean_squared_error`, `stddev`, with the tensor's `scale` and
`zero_point` (`layer_statistics`). The figure to rank by is the one TensorFlow's debugger guide uses,
`rmse/scale` = sqrt(mean_squared_error) / scale: about 1/sqrt(12) = 0.289 when the error is plain
rounding, and the guide names ops above 0.7 as the ones to keep in float. So an op above
`KEEP_FLOAT_RMSE_SCALE` is listed as a float-island candidate, named by its Keras layers, which a
recipe's `float_layers` accepts as they are.

Also a second view, because one op's error is not the whole story (an op whose *input* is rounded hard,
e.g. the QUANTIZE after L2 pooling's float SQUARE, shows no error of its own): `float_rmse` is the RMS
difference of the same tensor in the float model and the quantized model run side by side (LiteRT,
`experimental_preserve_all_tensors=True`), relative to the float tensor's RMS: the accumulated error up to
that layer.

Which layers to keep in float is measured, not guessed from those figures: for each Keras layer, the
debugger's calibrated model is quantized again with that layer's ops denylisted (what
`get_nondebug_quantized_model` does with `denylisted_nodes`) and run on the test samples; a layer whose
float copy alone raises top-1 agreement with the float model by >= `KEEP_FLOAT_GAIN_PP` is listed, and
the listed layers are tried together. (On a small-gap L2 model the rmse/scale rule flagged the global
average pool and the logits; keeping those in float changed nothing, keeping the L2 pools did.)
This module runs nothing but TensorFlow's debugger and quantizer and the LiteRT interpreter.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# TensorFlow's QuantizationDebugger guide: rmse/scale near 0.289 is rounding; above ~0.7 look at the op
ROUNDING_RMSE_SCALE = 1 / math.sqrt(12)
KEEP_FLOAT_RMSE_SCALE = 0.7
KEEP_FLOAT_GAIN_PP = 0.5  # a layer whose float copy alone raises top-1 agreement by this much is worth keeping float
TRIAL_SAMPLES = 300
SOURCE = "tf.lite.experimental.QuantizationDebugger layer_statistics (rmse/scale as in TensorFlow's debugger guide)"


@dataclass
class LayerError:
    """One quantized op's output error (the debugger's statistics) and the Keras layers it came from."""

    op: str
    tensor: str
    tensor_index: int
    layers: list[str]
    num_elements: int
    scale: float
    zero_point: int
    mean_error: float
    max_abs_error: float
    mean_squared_error: float
    stddev: float
    float_rmse: float | None = None  # accumulated: RMS(quantized - float model) / RMS(float model), this tensor

    @property
    def rmse_scale(self) -> float:
        return math.sqrt(max(self.mean_squared_error, 0.0)) / self.scale if self.scale else 0.0

    @property
    def layer(self) -> str:
        return "+".join(self.layers) if self.layers else self.tensor

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "layers": self.layers, "op": self.op, "tensor": self.tensor,
                "tensor_index": self.tensor_index, "rmse_scale": self.rmse_scale, "mean_error": self.mean_error,
                "max_abs_error": self.max_abs_error, "mean_squared_error": self.mean_squared_error,
                "stddev": self.stddev, "scale": self.scale, "zero_point": self.zero_point,
                "num_elements": self.num_elements, "float_rmse": self.float_rmse}


@dataclass
class PerLayerReport:
    """Every quantized op's error, worst first, and the layers a selective recipe should keep in float."""

    samples: int
    errors: list[LayerError]  # sorted by rmse/scale, worst first
    threshold: float = KEEP_FLOAT_RMSE_SCALE
    notes: list[str] = field(default_factory=list)
    export: str | None = None
    recipe: str | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)  # each layer kept in float alone, best first
    combined: dict[str, Any] | None = None  # the keep_float layers in float together

    @property
    def flagged(self) -> list[str]:
        """Keras layer names of the ops above TF's rmse/scale threshold (first layer of a fused op), worst first."""
        out: list[str] = []
        for e in self.errors:
            if e.rmse_scale > self.threshold:
                for name in e.layers[:1] or [e.tensor]:
                    if name not in out:
                        out.append(name)
        return out

    @property
    def keep_float(self) -> list[str]:
        """The layers a selective recipe should keep in float: those whose float copy alone raised top-1
        agreement by >= KEEP_FLOAT_GAIN_PP (measured), best first."""
        return [r["layer"] for r in self.trials if r["gain_pp"] >= KEEP_FLOAT_GAIN_PP]

    def to_dict(self) -> dict[str, Any]:
        return {"export": self.export, "recipe": self.recipe, "samples": self.samples, "sort": "rmse_scale, worst first",
                "threshold_rmse_scale": self.threshold, "rounding_rmse_scale": ROUNDING_RMSE_SCALE,
                "keep_float": self.keep_float, "keep_float_together": self.combined, "float_trials": self.trials,
                "flagged_rmse_scale": self.flagged, "layers": [e.to_dict() for e in self.errors], "notes": self.notes,
                "source": SOURCE}


def keras_layers(tensor_name: str, model_name: str, layer_order: list[str]) -> list[str]:
    """The Keras layers a converter tensor name comes from ("MODEL/LAYER/op", fused ops joined by ';'),
    in model order."""
    found = {p.split("/")[1] for p in tensor_name.split(";") if p.startswith(model_name + "/") and p.count("/") >= 2}
    rank = {n: i for i, n in enumerate(layer_order)}
    # a QAT model names its wrappers quant_<layer>: report the float model's layer names
    return [n.removeprefix("quant_") for n in sorted((n for n in found if n in rank), key=rank.__getitem__)]


def layer_errors(conv: Any, model: Any, x: np.ndarray, *,
                 denylisted_nodes: list[str] | None = None, denylisted_ops: list[str] | None = None,
                 threshold: float = KEEP_FLOAT_RMSE_SCALE, accumulated: bool = True) -> PerLayerReport:
    """Run TensorFlow's QuantizationDebugger for converter `conv` (a full-integer converter of the tf_keras
    `model`, with its representative data set) over the samples `x` and rank its ops by rmse/scale.

    `denylisted_*`: a selective recipe's float island (those ops are float and not measured)."""
    from .._tf import quiet_stderr, tf

    t = tf()
    model_name, layer_order = model.name, [layer.name for layer in model.layers]

    def dataset() -> Iterator[list[np.ndarray]]:
        for s in x:
            yield [s[None].astype(np.float32)]

    opts = t.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylisted_nodes or None,
                                                         denylisted_ops=denylisted_ops or None)
    with quiet_stderr(), warnings.catch_warnings():
        # the debugger runs models in tf.lite.Interpreter (deprecated in favour of LiteRT: a warning each time)
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        dbg = t.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=dataset, debug_options=opts)
        dbg.run()
    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    errors = [_row(r, model_name, layer_order) for r in csv.DictReader(io.StringIO(buf.getvalue()))]
    outputs = list(getattr(model, "output_names", []) or [])
    for e in errors:  # the model's output tensor is named after the graph, not the layer: name the layer
        if not e.layers and e.tensor.startswith("StatefulPartitionedCall:") and outputs:
            k = int(e.tensor.rsplit(":", 1)[1]) if e.tensor.rsplit(":", 1)[1].isdigit() else 0
            e.layers = [outputs[min(k, len(outputs) - 1)]]
    notes: list[str] = []
    trials: list[dict[str, Any]] = []
    combined: dict[str, Any] | None = None
    if accumulated:
        with quiet_stderr():
            float_model = bytes(t.lite.TFLiteConverter.from_keras_model(model).convert())
            quant_model = bytes(dbg.get_nondebug_quantized_model())
            _add_accumulated(errors, float_model, quant_model, x[: min(len(x), 200)])
            trials, combined = _float_trials(dbg, conv, errors, float_model, x[: min(len(x), TRIAL_SAMPLES)],
                                             list(denylisted_nodes or []), denylisted_ops)
        notes.append(f"float_rmse: over the first {min(len(x), 200)} samples, the quantized model's tensor against "
                     "the float model's tensor of the same name, relative to the float tensor's RMS")
        notes.append(f"keep in float: the layers whose own float copy (the rest int8) raises top-1 agreement with "
                     f"the float model by >= {KEEP_FLOAT_GAIN_PP} pp, over the first "
                     f"{min(len(x), TRIAL_SAMPLES)} samples")
    errors.sort(key=lambda e: (-e.rmse_scale, e.tensor_index))
    return PerLayerReport(len(x), errors, threshold, notes, trials=trials, combined=combined)


def _float_trials(dbg: Any, conv: Any, errors: list[LayerError], float_model: bytes, x: np.ndarray,
                  denied: list[str], denied_ops: list[str] | None) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Each Keras layer kept in float alone (the debugger's calibrated model quantized with that layer's ops
    denylisted, as `get_nondebug_quantized_model` does), judged by top-1 agreement with the float model."""
    from tensorflow.lite.python import convert as tflite_convert  # noqa: TID251  (the quantizer the debugger calls)

    from ..inspect import read_tflite

    g = read_tflite(float_model).main
    names = [g.tensor(ti).name for op in g.ops for ti in op.outputs if g.tensor(ti) is not None]
    ref = _outputs(float_model, x).argmax(-1)

    def agreement(extra: list[str]) -> float:
        m = tflite_convert.mlir_quantize(dbg.calibrated_model, disable_per_channel=conv._experimental_disable_per_channel,
                                         denylisted_ops=denied_ops, denylisted_nodes=(denied + extra) or None)
        return float(np.mean(_outputs(bytes(m), x).argmax(-1) == ref))

    def nodes(layer: str) -> list[str]:
        return [n for n in names if any(p.split("/")[1:2] in ([layer], [f"quant_{layer}"]) for p in n.split(";"))]

    base = agreement([])
    layers = list(dict.fromkeys(n for e in sorted(errors, key=lambda e: e.tensor_index) for n in e.layers[:1]))
    trials = []
    for layer in layers:
        ns = nodes(layer)
        if not ns:
            continue
        a = agreement(ns)
        trials.append({"layer": layer, "agreement": a, "int8_agreement": base, "gain_pp": 100 * (a - base)})
    trials.sort(key=lambda r: -r["gain_pp"])
    keep = [r["layer"] for r in trials if r["gain_pp"] >= KEEP_FLOAT_GAIN_PP]
    combined = None
    if keep:
        a = agreement([n for layer in keep for n in nodes(layer)])
        combined = {"layers": keep, "agreement": a, "int8_agreement": base, "gain_pp": 100 * (a - base)}
    return trials, combined


def _outputs(model: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for s in x:
        it.set_tensor(inp["index"], quantize(s[None].astype(np.float32), inp))
        it.invoke()
        rows.append(dequantize(it.get_tensor(out["index"]), out)[0])
    return np.stack(rows)


def _row(r: dict[str, str], model_name: str, layer_order: list[str]) -> LayerError:
    return LayerError(
        op=r["op_name"], tensor=r["tensor_name"], tensor_index=int(float(r["tensor_idx"])),
        layers=keras_layers(r["tensor_name"], model_name, layer_order), num_elements=int(float(r["num_elements"])),
        scale=float(r["scale"]), zero_point=int(float(r["zero_point"])), mean_error=float(r["mean_error"]),
        max_abs_error=float(r["max_abs_error"]), mean_squared_error=float(r["mean_squared_error"]),
        stddev=float(r["stddev"]))


def tensors_by_name(model: bytes, x: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Every float or (dequantized) quantized tensor of `model`, by name, for each sample of `x` (LiteRT with
    `experimental_preserve_all_tensors=True`)."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "intended for debugging purposes only": this is debugging
        warnings.simplefilter("ignore")
        it = Interpreter(model_content=model, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    details = [d for d in it.get_tensor_details() if d["name"] and d["dtype"] in (np.float32, np.int8, np.uint8, np.int16)]
    out: dict[str, list[np.ndarray]] = {}
    for s in x:
        it.set_tensor(inp["index"], quantize(s[None].astype(np.float32), inp))
        it.invoke()
        for d in details:
            try:
                v = it.get_tensor(d["index"])
            except ValueError:  # a constant or scratch tensor without data
                continue
            out.setdefault(d["name"], []).append(dequantize(v, d))
    return out


def quantize(x: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return x
    scale, zp = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zp), info.min, info.max).astype(detail["dtype"])


def dequantize(v: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if v.dtype == np.float32:
        return v.astype(np.float32)
    scale, zp = detail["quantization"]
    return ((v.astype(np.float32) - zp) * scale) if scale else v.astype(np.float32)


def _add_accumulated(errors: list[LayerError], float_model: bytes, quant_model: bytes, x: np.ndarray) -> None:
    f = tensors_by_name(float_model, x)
    q = tensors_by_name(quant_model, x)
    for e in errors:
        a, b = f.get(e.tensor), q.get(e.tensor)
        if not a or not b or a[0].shape != b[0].shape:
            continue
        fa, qb = np.stack(a), np.stack(b)
        ref = float(np.sqrt(np.mean(fa.astype(np.float64) ** 2)))
        diff = float(np.sqrt(np.mean((qb.astype(np.float64) - fa) ** 2)))
        e.float_rmse = diff / ref if ref else diff

"""Child process: load a user's model, read its input, convert it into a run model, run it.

Usage: python -m edgepool.importers._child REQUEST.json

Models are programs: a crafted SavedModel, ONNX or TFLite file can crash the library that parses it,
so every model is parsed, converted and run here, apart from the CLI. The request names the model,
its kind (`detect`), the data's image shape and the normalized test inputs (x.npy, NHWC float32),
and a work folder. The child writes into that folder:

    result.json          {"ok": true, ...facts} or {"ok": false, "code", "message", "hint"}
    source_logits.npy    the source runtime's outputs on x (tf_keras, Keras 3, the SavedModel
                         signature, onnxruntime or the LiteRT interpreter)
    run_logits.npy       the run model's outputs on x, reloaded the way every later command loads it
    model.keras | model.savedmodel   the run model (not for .tflite)

Request `{"op": "reference", ...}` only runs an ONNX / TFLite model over x (verification's reference).
Keras files load with safe_mode unless the request says `unsafe`; `custom_objects` ("module:attr")
are imported only when asked for.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np

KERAS2, KERAS3, SAVEDMODEL, ONNX, TFLITE = "keras2", "keras3", "savedmodel", "onnx", "tflite"
RUN_KERAS, RUN_SAVEDMODEL = "model.keras", "model.savedmodel"
PARITY_ATOL, PARITY_RTOL = 1e-4, 1e-5
CHANNEL_COUNTS = (1, 3, 4)


class Refused(Exception):
    """A one-line reason the model cannot be imported; `code` tells the parent which kind."""

    def __init__(self, code: str, message: str, hint: str, fix: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.hint, self.fix = code, message, hint, fix or {}


# ------------------------------------------------------------------------------------------ helpers


def _tf() -> Any:
    from edgepool._tf import tf

    return tf()


def _tf_keras() -> Any:
    from edgepool._tf import keras

    return keras()


def _one_line(e: BaseException, limit: int = 240) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text[:limit]


def load_custom_objects(specs: list[str]) -> dict[str, Any]:
    """"module:attr" -> {attr: object, its __name__: object}; the module is imported (it is code the user named)."""
    sys.path.insert(0, os.getcwd())
    out: dict[str, Any] = {}
    for spec in specs:
        module, sep, attr = spec.partition(":")
        if not sep or not module or not attr:
            raise Refused("input", f"custom object {spec!r} is not module:attr", "name it as module:attr, e.g. my_layers:Scale")
        try:
            mod = importlib.import_module(module)
        except Exception as e:
            raise Refused("input", f"cannot import module {module!r} for custom object {spec} ({_one_line(e, 160)})",
                          "run from the folder holding the module, or put it on PYTHONPATH") from None
        obj = mod
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise Refused("input", f"module {module!r} has no {attr!r} (custom object {spec})", "check the class name")
            obj = getattr(obj, part)
        out[attr.split(".")[-1]] = obj
        out.setdefault(getattr(obj, "__name__", attr), obj)
    return out


_KERAS_MODULES = ("keras", "tf_keras", "builtins", "tensorflow")


def keras_config(path: str) -> Any:
    """The model config a Keras file holds (JSON read from the archive or the HDF5 attribute; nothing is loaded)."""
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return json.loads(z.read("config.json"))
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else None
    except Exception:
        return None


def unknown_classes(config: Any, custom: dict[str, Any], layers_module: Any) -> list[str]:
    """Classes the config names that neither Keras nor `custom` define (a custom layer whose code is not here)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            name, module = node.get("class_name"), node.get("module")
            if isinstance(name, str) and "config" in node and not name.startswith("__"):  # __lambda__ etc.: Keras' own markers
                registered = str(node.get("registered_name") or name)
                known = name in custom or registered in custom or registered.split(">")[-1] in custom
                builtin = (module.split(".")[0] in _KERAS_MODULES) if isinstance(module, str) else hasattr(layers_module, name)
                if not known and not builtin and not (module is None and name in ("Functional", "Sequential", "Model")):
                    found.append(registered)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return sorted(set(found))


class _LazyLayers:
    """`hasattr(layers, name)` for a legacy .h5 config without module names: imports Keras only when asked."""

    def __init__(self, load: Any) -> None:
        self._load = load

    def __getattr__(self, name: str) -> Any:
        return getattr(self._load(), name)


def refuse_unknown_classes(path: str, custom: dict[str, Any], layers_module: Any, unsafe: bool = False) -> None:
    """Before any Keras code runs: a Lambda layer (unless `unsafe`) or a class nobody defined is refused."""
    config = keras_config(path)
    if not unsafe and _has_lambda(config):
        raise Refused("unsafe", f"{path} holds a Lambda layer (Python code that runs when the model is loaded): "
                      "refused in safe mode", "load it only if you trust the file and who made it (unsafe load)")
    missing = unknown_classes(config, custom, layers_module)
    if missing:
        raise Refused("custom", f"{path} uses custom class(es) {', '.join(missing)} whose code is not known here",
                      "name the module and class that define it (custom objects, module:attr)")


def _has_lambda(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("class_name") == "Lambda":
            return True
        return any(_has_lambda(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_lambda(v) for v in node)
    return False


def hdf5_keras_version(path: str) -> str:
    try:
        import h5py

        with open(path, "rb") as f:
            if not f.read(8).startswith(b"\x89HDF"):
                return ""
        with h5py.File(path, "r") as f:
            v = f.attrs.get("keras_version")
    except Exception:
        return ""
    return (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) if v is not None else ""


def _keras_load_error(e: BaseException, path: str) -> Refused:
    text = " ".join(str(e).split())
    low = text.lower()
    if "lambda" in low and ("safe_mode" in low or "arbitrary code" in low):
        return Refused("unsafe", f"{path} holds a Lambda layer (Python code that runs when the model is loaded): "
                       "refused in safe mode", "load it only if you trust the file and who made it (unsafe load)")
    if "safe_mode" in low:
        return Refused("unsafe", f"{path} holds embedded code that safe mode does not load ({text[:160]})",
                       "load it only if you trust the file and who made it (unsafe load)")
    for marker in ("Unknown layer: '", "Could not locate class '", "Unknown object: '", "Unknown layer: "):
        if marker in text:
            name = text.split(marker, 1)[1].split("'")[0].split(".")[0].strip()
            return Refused("custom", f"{path} uses a custom class {name!r} that is not known here",
                           "name the module and class that define it (custom objects, module:attr)")
    return Refused("load", f"cannot load {path} ({type(e).__name__}: {text[:200]})", "check the file is a complete model")


def input_layout(dims: list[int | None], data_hwc: tuple[int, int, int], kind: str) -> tuple[str, tuple[int | None, int | None, int | None]]:
    """(layout, (h, w, c)) of a rank-4 image input from its dims (batch first). ONNX favours NCHW when
    the dims do not say; the others NHWC."""
    _, a, b, c = dims
    last_ch = c in CHANNEL_COUNTS
    first_ch = a in CHANNEL_COUNTS
    if kind == ONNX:
        nchw = first_ch or not last_ch
        if first_ch and last_ch:  # (1, 3, 8, 1)-like: whichever matches the data
            nchw = (a, b, c) == (data_hwc[2], data_hwc[0], data_hwc[1]) or (a, b, c) != tuple(data_hwc)
    else:
        nchw = first_ch and not last_ch and (a, b, c) == (data_hwc[2], data_hwc[0], data_hwc[1])
    return ("NCHW", (b, c, a)) if nchw else ("NHWC", (a, b, c))


def check_input(dims: list[Any], data_hwc: tuple[int, int, int], kind: str, what: str) -> tuple[str, int, int, int, list[str]]:
    """The model's layout and (h, w, c); a mismatch with the data is refused, never reshaped."""
    notes: list[str] = []
    dims = [None if (d is None or (isinstance(d, int) and d < 0)) else int(d) for d in dims]
    if len(dims) != 4:
        raise Refused("shape", f"{what} takes a rank-{len(dims)} input {dims}: edgepool imports image classifiers "
                      "with one (batch, height, width, channels) input", "export the model with an image input")
    layout, (h, w, c) = input_layout(dims, data_hwc, kind)
    dh, dw, dc = data_hwc
    if layout == "NCHW" and kind != ONNX:
        raise Refused("layout", f"{what} takes channels-first (NCHW) input {dims}; the TensorFlow path needs "
                      f"channels-last (NHWC) images like the data's {dh}x{dw}x{dc}",
                      "save the model with channels_last input (or export it to ONNX, whose NCHW input is converted)")
    if c is not None and c != dc:
        raise Refused("channels", f"{what} takes {c}-channel images ({layout} {dims}), the data has {dc} channel(s)",
                      f"load the data with {c} channel(s)", {"channels": c})
    if (h is not None and h != dh) or (w is not None and w != dw):
        raise Refused("size", f"{what} takes {h or '?'}x{w or '?'} images ({layout} {dims}), the data's are {dh}x{dw}",
                      f"load the data at the model's size, {h or dh}x{w or dw}", {"image_size": f"{h or dh}x{w or dw}"})
    if h is None or w is None or c is None:
        notes.append(f"the model's input {dims} leaves some sizes open: using the data's {dh}x{dw}x{dc}")
    return layout, dh, dw, dc, notes


def check_output(dims: list[Any], what: str) -> int:
    dims = [None if (d is None or (isinstance(d, int) and d < 0)) else int(d) for d in dims]
    if len(dims) != 2 or dims[1] is None:
        raise Refused("shape", f"{what} has output shape {dims}: edgepool imports classifiers with one "
                      "(batch, classes) output", "export the model with its class scores as the only output")
    return int(dims[1])


def predict_batches(fn: Any, x: np.ndarray, fixed_batch: bool, batch: int = 256) -> np.ndarray:
    step = 1 if fixed_batch else batch
    return np.concatenate([np.asarray(fn(x[i : i + step]), np.float32) for i in range(0, len(x), step)]) if len(x) else np.zeros((0, 0), np.float32)


# ------------------------------------------------------------------------------------------ Keras


def load_keras2(path: str, custom: dict[str, Any], unsafe: bool) -> Any:
    refuse_unknown_classes(path, custom, _LazyLayers(lambda: _tf_keras().layers), unsafe)
    K = _tf_keras()
    serialization_lib = importlib.import_module("tf_keras.src.saving.serialization_lib")  # after edgepool._tf set it up
    try:
        with serialization_lib.SafeModeScope(not unsafe):
            return K.models.load_model(path, custom_objects=custom or None, compile=False, safe_mode=not unsafe)
    except Refused:
        raise
    except Exception as e:
        raise _keras_load_error(e, path) from None


def load_keras3(path: str, custom: dict[str, Any], unsafe: bool) -> Any:
    def keras3_layers() -> Any:
        _tf()
        import keras

        return keras.layers

    refuse_unknown_classes(path, custom, _LazyLayers(keras3_layers), unsafe)
    _tf()
    import keras

    try:
        return keras.saving.load_model(path, custom_objects=custom or None, compile=False, safe_mode=not unsafe)
    except Exception as e:
        raise _keras_load_error(e, path) from None


def keras_model_io(model: Any, what: str) -> tuple[list[Any], list[Any]]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise Refused("shape", f"{what} has {len(model.inputs)} inputs and {len(model.outputs)} outputs: edgepool imports "
                      "classifiers with one image input and one output", "export a single-input, single-output model")
    return list(model.inputs[0].shape), list(model.outputs[0].shape)


# ------------------------------------------------------------------------------------------ SavedModel


def signature(loaded: Any, what: str) -> tuple[Any, str, Any, str, Any]:
    sigs = dict(loaded.signatures)
    if not sigs:
        raise Refused("shape", f"{what} has no serving signature", "save it with a serving signature (tf.saved_model.save with signatures)")
    name = "serving_default" if "serving_default" in sigs else sorted(sigs)[0]
    fn = sigs[name]
    inputs = fn.structured_input_signature[1]
    outputs = fn.structured_outputs
    if len(inputs) != 1 or not isinstance(outputs, dict) or len(outputs) != 1:
        raise Refused("shape", f"{what} signature {name!r} has {len(inputs)} inputs and "
                      f"{len(outputs) if isinstance(outputs, dict) else '?'} outputs: edgepool imports classifiers with "
                      "one image input and one output", "save a signature with one input and one output")
    (in_name, in_spec), = inputs.items()
    (out_name, out_spec), = outputs.items()
    return fn, in_name, in_spec, out_name, out_spec


def wrap_signature(loaded: Any, in_name: str, out_name: str, hwc: tuple[int, int, int], fixed_batch: bool, path: Path) -> None:
    """Save a tf_keras model calling the SavedModel's signature (tf_keras SavedModel format: it loads back
    without any of this code). A signature traced for batch 1 is mapped over the batch (vectorized)."""
    K, tf = _tf_keras(), _tf()

    class SignatureCall(K.layers.Layer):
        def __init__(self, obj: Any = None, **kw: Any) -> None:
            super().__init__(**kw)
            self.source = obj

        def call(self, x: Any) -> Any:
            fn = self.source.signatures[self.sig_name]
            if fixed_batch and x.shape[0] != 1:
                return tf.vectorized_map(lambda xi: fn(**{in_name: xi[None]})[out_name][0], x)
            return fn(**{in_name: x})[out_name]

    sig_name = "serving_default" if "serving_default" in loaded.signatures else sorted(loaded.signatures)[0]
    SignatureCall.sig_name = sig_name
    inp = K.Input(shape=hwc, name="input", dtype="float32")
    out = SignatureCall(loaded, name="imported")(inp)
    model = K.Model(inp, out, name="imported")
    model.save(str(path), save_format="tf")


def savedmodel_params(loaded: Any) -> int:
    try:
        return int(sum(int(np.prod(v.shape)) for v in loaded.variables))
    except Exception:
        return 0


# ------------------------------------------------------------------------------------------ ONNX


def onnx_check(path: str) -> tuple[Any, list[Any], list[Any], str, int]:
    import onnx

    try:
        model = onnx.load(path)
        onnx.checker.check_model(model)
    except Exception as e:
        raise Refused("load", f"{path} is not a valid ONNX model ({_one_line(e, 200)})", "re-export it from its framework") from None
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise Refused("shape", f"{path} has {len(inputs)} inputs and {len(g.output)} outputs: edgepool imports classifiers "
                      "with one image input and one output", "export a single-input, single-output model")
    spec = importlib.util.find_spec("onnx2tf")  # its folder, without importing it (that would load TensorFlow)
    ops_dir = Path(next(iter(spec.submodule_search_locations or []), "")) / "ops" if spec else None
    unsupported = sorted({n.op_type for n in g.node if n.domain in ("", "ai.onnx")
                          and ops_dir is not None and not (ops_dir / f"{n.op_type}.py").is_file()})
    if unsupported or any(n.domain not in ("", "ai.onnx") for n in g.node):
        custom = sorted({f"{n.domain}:{n.op_type}" for n in g.node if n.domain not in ("", "ai.onnx")})
        ops = ", ".join(unsupported + custom)
        raise Refused("op", f"{path} uses ONNX op(s) {ops} that onnx2tf {_version('onnx2tf')} cannot convert to TensorFlow",
                      "re-export the model without them (e.g. a different opset or a standard layer)")

    def dims(vi: Any) -> list[Any]:
        return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]

    params = int(sum(int(np.prod(i.dims)) for i in g.initializer))
    return model, dims(inputs[0]), dims(g.output[0]), inputs[0].name, params


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "?"


def onnx_to_savedmodel(path: str, layout: str, in_name: str, out_dir: Path) -> None:
    _tf()
    import onnx2tf

    kwargs: dict[str, Any] = {}
    if layout == "NHWC":
        kwargs["keep_nwc_or_nhwc_or_ndhwc_input_names"] = [in_name]
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            onnx2tf.convert(input_onnx_file_path=path, output_folder_path=str(out_dir), non_verbose=True,
                            output_signaturedefs=True, **kwargs)
    except BaseException as e:  # onnx2tf calls sys.exit on some failures
        text = log.getvalue()
        op = next((ln.split("onnx_op_type:", 1)[1].strip().split()[0] for ln in text.splitlines() if "onnx_op_type:" in ln), None)
        what = f"ONNX op {op}" if op else "the model"
        raise Refused("op", f"onnx2tf {_version('onnx2tf')} cannot convert {what} in {path} ({_one_line(e, 160)})",
                      "re-export the model with standard ops (another opset), or convert it to TensorFlow yourself") from None
    if not (out_dir / "saved_model.pb").is_file():
        raise Refused("op", f"onnx2tf {_version('onnx2tf')} wrote no SavedModel for {path}", "re-export the model with standard ops")


def open_batch_copy(path: str, out: Path) -> str:
    """A copy of the ONNX model whose input and output batch is open ("batch") instead of 1."""
    import onnx

    model = onnx.load(path)
    inits = {i.name for i in model.graph.initializer}
    for vi in [i for i in model.graph.input if i.name not in inits] + list(model.graph.output):
        dim = vi.type.tensor_type.shape.dim[0]
        dim.ClearField("dim_value")
        dim.dim_param = "batch"
    del model.graph.value_info[:]
    onnx.save(model, str(out))
    return str(out)


def _same_outputs(saved: Path, x: np.ndarray, ref: np.ndarray) -> bool:
    try:
        model = _tf_keras().models.load_model(str(saved), compile=False)
        out = predict_batches(lambda b: model.predict(b, verbose=0), x, False)
    except Exception:
        return False
    return out.shape == ref.shape and bool(np.allclose(out, ref, atol=PARITY_ATOL, rtol=PARITY_RTOL))


def onnx_run(path: str, x_nhwc: np.ndarray, layout: str) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    fixed = isinstance(inp.shape[0], int) and inp.shape[0] > 0
    x = np.transpose(x_nhwc, (0, 3, 1, 2)) if layout == "NCHW" else x_nhwc
    x = np.ascontiguousarray(x, dtype=np.float32)
    return predict_batches(lambda b: sess.run(None, {inp.name: b})[0], x, fixed)


# ------------------------------------------------------------------------------------------ TFLite


def tflite_io(path: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The input and output tensors of a .tflite (as export sidecars describe them) and the recipe it looks made with."""
    from ai_edge_litert.interpreter import Interpreter

    data = Path(path).read_bytes()
    try:
        it = Interpreter(model_content=data, num_threads=1)
        it.allocate_tensors()
    except Exception as e:
        raise Refused("load", f"the LiteRT interpreter refused {path} ({_one_line(e, 200)})", "check the file is a complete .tflite model") from None
    if len(it.get_input_details()) != 1 or len(it.get_output_details()) != 1:
        raise Refused("shape", f"{path} has {len(it.get_input_details())} inputs and {len(it.get_output_details())} outputs: "
                      "edgepool imports classifiers with one image input and one output", "convert a single-input, single-output model")
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    types = {np.dtype(t["dtype"]).name for t in it.get_tensor_details()}
    if np.dtype(i["dtype"]).kind in "iu":
        recipe = "int8"
    elif "float16" in types:
        recipe = "float16"
    elif "int8" in types:
        recipe = "dynamic-int8"
    else:
        recipe = "float32"

    def info(d: dict[str, Any]) -> dict[str, Any]:
        scale, zp = d.get("quantization", (0.0, 0))
        q = np.dtype(d["dtype"]).kind in "iu" and bool(scale)
        return {"name": d["name"], "shape": [int(v) for v in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                "scale": float(scale) if q else None, "zero_point": int(zp) if q else None}

    return info(i), info(o), recipe


def tflite_outputs(path: str, x: np.ndarray) -> np.ndarray:
    """Dequantized outputs of a .tflite over float inputs `x` (quantized on the way in for an integer input)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=Path(path).read_bytes(), num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    (in_scale, in_zp), (out_scale, out_zp) = i["quantization"], o["quantization"]
    outs = []
    for sample in x:
        v = sample[None]
        if np.dtype(i["dtype"]).kind in "iu":
            info = np.iinfo(i["dtype"])
            v = np.clip(np.round(v / in_scale + in_zp), info.min, info.max)
        it.set_tensor(i["index"], v.astype(i["dtype"]))
        it.invoke()
        y = it.get_tensor(o["index"]).astype(np.float32)
        if np.dtype(o["dtype"]).kind in "iu":
            y = (y - out_zp) * out_scale
        outs.append(y[0])
    return np.stack(outs) if outs else np.zeros((0, 0), np.float32)


# ------------------------------------------------------------------------------------------ the import


def do_import(req: dict[str, Any], work: Path) -> dict[str, Any]:
    kind, path = req["kind"], req["path"]
    data_hwc = tuple(int(v) for v in req["data_shape"])
    x = np.load(work / "x.npy")
    unsafe = bool(req.get("unsafe"))
    facts: dict[str, Any] = {"notes": [], "qat": None, "tool": None}
    what = f"model {Path(path).name}"
    custom = load_custom_objects(req.get("custom_objects") or []) if kind in (KERAS2, KERAS3) else {}
    if kind == KERAS2 and hdf5_keras_version(path).startswith("3"):  # an .h5 written by Keras 3
        kind = KERAS3
        facts["detected_kind"] = KERAS3

    if kind == TFLITE:
        i_info, o_info, recipe = tflite_io(path)
        layout, h, w, c, notes = check_input(i_info["shape"], data_hwc, kind, what)
        classes = check_output(o_info["shape"], what)
        src = tflite_outputs(path, x)
        facts.update(layout=layout, input_shape=i_info["shape"], classes=classes, notes=notes, tflite_input=i_info,
                     tflite_output=o_info, recipe=recipe, reference=f"ai-edge-litert {_version('ai-edge-litert')}",
                     run_model=None, params=None, qat="it is an already converted .tflite")
        np.save(work / "source_logits.npy", src)
        np.save(work / "run_logits.npy", src)
        return facts

    if kind == KERAS2:
        model = load_keras2(path, custom, unsafe)
        in_dims, out_dims = keras_model_io(model, what)
        layout, h, w, c, notes = check_input(in_dims, data_hwc, kind, what)
        classes = check_output(out_dims, what)
        src = predict_batches(lambda b: model.predict(b, verbose=0), x, False)
        plain = not custom and not unsafe
        if plain:
            model.save(str(work / RUN_KERAS))
            run_file = RUN_KERAS
        else:  # custom classes or Lambda code: a SavedModel reloads without them (the traced graph is kept)
            model.save(str(work / RUN_SAVEDMODEL), save_format="tf")
            run_file = RUN_SAVEDMODEL
            why = "holds custom layers" if custom else "was loaded with unsafe load"
            facts["qat"] = f"it {why} and is stored as a traced SavedModel, not as Keras layers TFMOT can wrap"
        facts.update(layout=layout, input_shape=in_dims, classes=classes, notes=notes, params=int(model.count_params()),
                     reference=f"tf_keras {_version('tf-keras')}", tool=None)
    elif kind == KERAS3:
        model = load_keras3(path, custom, unsafe)
        in_dims, out_dims = keras_model_io(model, what)
        layout, h, w, c, notes = check_input(in_dims, data_hwc, kind, what)
        classes = check_output(out_dims, what)
        src = predict_batches(lambda b: model.predict(b, verbose=0), x, False)
        exported = work / "keras3_export"
        with contextlib.redirect_stdout(io.StringIO()):
            model.export(str(exported), format="tf_saved_model", verbose=False)
        tf = _tf()
        loaded = tf.saved_model.load(str(exported))
        _, in_name, in_spec, out_name, _ = signature(loaded, what)
        wrap_signature(loaded, in_name, out_name, (h, w, c), in_spec.shape[0] == 1, work / RUN_SAVEDMODEL)
        run_file = RUN_SAVEDMODEL
        facts.update(layout=layout, input_shape=[None if d is None else int(d) for d in in_dims], classes=classes, notes=notes,
                     params=int(model.count_params()), reference=f"keras {_version('keras')}",
                     tool=f"keras {_version('keras')} export (tf_saved_model)",
                     qat="it is a Keras 3 model (TFMOT wraps tf_keras models only)")
    elif kind == SAVEDMODEL:
        tf = _tf()
        try:
            loaded = tf.saved_model.load(path)
        except Exception as e:
            raise Refused("load", f"cannot load SavedModel {path} ({_one_line(e, 200)})", "check the folder is a complete SavedModel") from None
        fn, in_name, in_spec, out_name, out_spec = signature(loaded, what)
        layout, h, w, c, notes = check_input(list(in_spec.shape), data_hwc, kind, what)
        classes = check_output(list(out_spec.shape), what)
        fixed = in_spec.shape[0] == 1
        src = predict_batches(lambda b: fn(**{in_name: tf.constant(b, in_spec.dtype)})[out_name].numpy(), x, fixed)
        wrap_signature(loaded, in_name, out_name, (h, w, c), fixed, work / RUN_SAVEDMODEL)
        run_file = RUN_SAVEDMODEL
        facts.update(layout=layout, input_shape=[None if d is None else int(d) for d in in_spec.shape], classes=classes,
                     notes=notes, params=savedmodel_params(loaded), reference="the SavedModel's serving signature (TensorFlow "
                     f"{_version('tensorflow')})", tool=None,
                     qat="it is a SavedModel (a traced graph, not Keras layers TFMOT can wrap)")
    elif kind == ONNX:
        _, in_dims, out_dims, in_name, params = onnx_check(path)
        layout, h, w, c, notes = check_input(in_dims, data_hwc, kind, what)
        classes = check_output(out_dims, what)
        src = onnx_run(path, x, layout)
        tf = _tf()
        # a batch fixed at 1 (torch.onnx.export's default): convert with an open batch first, so the graph takes
        # any batch without mapping over it; the original is the fallback when that does not give the same outputs
        candidates = ([open_batch_copy(path, work / "open_batch.onnx")] if in_dims[0] == 1 else []) + [path]
        for n, candidate in enumerate(candidates):
            converted = work / f"onnx2tf_{n}"
            onnx_to_savedmodel(candidate, layout, in_name, converted)
            loaded = tf.saved_model.load(str(converted))
            _, sig_in, sig_spec, sig_out, _ = signature(loaded, what)
            if list(sig_spec.shape)[1:] != [h, w, c]:
                raise Refused("layout", f"onnx2tf made a TensorFlow input {list(sig_spec.shape)} from {layout} {in_dims}, "
                              f"not the {h}x{w}x{c} channels-last input expected", "re-export the model with an NCHW image input")
            target = work / f"wrapped_{n}"
            wrap_signature(loaded, sig_in, sig_out, (h, w, c), sig_spec.shape[0] == 1, target)
            if n == len(candidates) - 1 or _same_outputs(target, x, src):
                target.rename(work / RUN_SAVEDMODEL)
                break
        run_file = RUN_SAVEDMODEL
        if layout == "NCHW":
            notes.append(f"the ONNX input is NCHW {in_dims}: onnx2tf made a channels-last (NHWC) TensorFlow graph; "
                         "exports take NHWC images")
        facts.update(layout=layout, input_shape=in_dims, classes=classes, notes=notes, params=params,
                     reference=f"onnxruntime {_version('onnxruntime')}", tool=f"onnx2tf {_version('onnx2tf')}",
                     qat="it came from ONNX (a converted TensorFlow graph, not Keras layers TFMOT can wrap)")
    else:
        raise Refused("input", f"unknown model kind {kind!r}", "pass a Keras, SavedModel, ONNX or TFLite model")

    # the run model, loaded back the way every later command loads it (no custom objects, no code)
    K = _tf_keras()
    reloaded = K.models.load_model(str(work / run_file), compile=False)
    out = predict_batches(lambda b: reloaded.predict(b, verbose=0), x, False)
    facts["run_model"] = run_file
    np.save(work / "source_logits.npy", np.asarray(src, np.float32))
    np.save(work / "run_logits.npy", np.asarray(out, np.float32))
    return facts


def do_reference(req: dict[str, Any], work: Path) -> dict[str, Any]:
    x = np.load(work / "x.npy")
    if req["kind"] == ONNX:
        y = onnx_run(req["path"], x, req.get("layout", "NCHW"))
    elif req["kind"] == TFLITE:
        y = tflite_outputs(req["path"], x)
    else:
        raise Refused("input", f"no reference runtime for {req['kind']}", "verify against the run model")
    np.save(work / "source_logits.npy", np.asarray(y, np.float32))
    return {}


def main() -> int:
    req_path = Path(sys.argv[1])
    req = json.loads(req_path.read_text())
    work = req_path.parent
    try:
        facts = do_reference(req, work) if req.get("op") == "reference" else do_import(req, work)
        result = {"ok": True, **facts}
        code = 0
    except Refused as e:
        result = {"ok": False, "code": e.code, "message": e.message, "hint": e.hint, "fix": e.fix}
        code = 2
    except Exception as e:
        result = {"ok": False, "code": "crash", "message": f"{type(e).__name__}: {_one_line(e)}", "hint": None,
                  "traceback": traceback.format_exc()[-4000:]}
        code = 1
    (work / "result.json").write_text(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main())

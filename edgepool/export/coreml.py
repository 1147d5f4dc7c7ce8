"""Core ML export: a tf_keras classifier -> `model.mlpackage` (ML Program) or `model.mlmodel` (iOS < 15).

The exported model is a Core ML *classifier* an app feeds raw pixels:

- the input normalization (`raw * scale + offset`) is baked in: a `Rescaling` layer in front of the
  model for a tensor input, or the ImageType's scale/bias for an image input (`image_input=True`,
  1- or 3-channel models);
- the zoo's final Dense outputs logits, so a softmax is appended (unless the model already ends in
  one) and `ClassifierConfig` adds `classLabel` + `classLabel_probs` (class probabilities);
- description, version, source run, edgepool version, recipe and the input/output spec go in the
  model's user-defined metadata.

Compute precision comes from the recipe (FP16 by default, FP32 on request); weight compression
(8-bit linear, palettization) uses `coremltools.optimize.coreml` and needs iOS16+. A deployment target
older than iOS15 produces a legacy neuralnetwork `.mlmodel` (no compression; FP16 stores half-precision
weights). Nothing half-written is left in `out_dir`: the model is saved under a temporary name and
renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from ..errors import ExportError

COMPUTE_PRECISIONS = ("float16", "float32")
WEIGHT_COMPRESSIONS = ("none", "linear-int8", "palettize")
COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
PALETTIZE_NBITS = (1, 2, 3, 4, 6, 8)
# weights with fewer elements stay FP16/FP32 (coremltools' default of 2048 would skip a small CNN)
WEIGHT_THRESHOLD = 64

# downsampling choices that convert (what the error hint points to)
CONVERTIBLE_DOWNSAMPLING = ("max", "avg", "l2", "strided", "none")

SOFTMAX_APPENDED_KEY = "edgepool.softmax_appended"


# --------------------------------------------------------------------------------------------------
# deployment targets


def _targets() -> dict[str, Any]:
    import coremltools as ct

    return {name.lower(): member for name, member in ct.target.__members__.items()}


def resolve_target(name: str) -> Any:
    """'iOS16' / 'ios16' / 'macOS13' -> coremltools AvailableTarget (ordered IntEnum)."""
    targets = _targets()
    key = str(name).strip().lower().replace(".", "_")
    if key not in targets:
        known = ", ".join(n for n in _targets_display() if n.lower().startswith(("ios", "macos")))
        raise ExportError(f"unknown Core ML deployment target {name!r}", f"use one of: {known}")
    return targets[key]


def _targets_display() -> list[str]:
    import coremltools as ct

    return list(ct.target.__members__)


def target_name(target: Any) -> str:
    """The canonical name of an AvailableTarget, preferring iOS names (iOS15 == macOS12)."""
    import coremltools as ct

    names = [n for n, m in ct.target.__members__.items() if m == target]
    ios = [n for n in names if n.startswith("iOS")]
    return (ios or names)[0]


# --------------------------------------------------------------------------------------------------
# recipe


def _recipe_fields(recipe: Any) -> tuple[str, str, str, int | None]:
    name = str(getattr(recipe, "name", "coreml"))
    fmt = getattr(recipe, "format", "coreml")
    if fmt not in (None, "coreml"):
        raise ExportError(
            f"recipe {name} is a {fmt} recipe, not a Core ML one",
            "use a coreml-* recipe (coreml-fp16, coreml-fp32, coreml-int8, coreml-palettize)",
        )
    precision = str(getattr(recipe, "compute_precision", None) or "float16")
    compression = str(getattr(recipe, "weight_compression", None) or "none")
    nbits = getattr(recipe, "palettize_nbits", None)
    if precision not in COMPUTE_PRECISIONS:
        raise ExportError(
            f"recipe {name}: compute_precision {precision!r} is not one of {COMPUTE_PRECISIONS}",
            "fix the recipe",
        )
    if compression not in WEIGHT_COMPRESSIONS:
        raise ExportError(
            f"recipe {name}: weight_compression {compression!r} is not one of {WEIGHT_COMPRESSIONS}",
            "fix the recipe",
        )
    if compression == "palettize":
        nbits = int(nbits if nbits is not None else 4)
        if nbits not in PALETTIZE_NBITS:
            raise ExportError(
                f"recipe {name}: palettize_nbits {nbits} is not one of {PALETTIZE_NBITS}", "fix the recipe"
            )
    return name, precision, compression, (int(nbits) if compression == "palettize" else None)


def _check_target(
    recipe_name: str, compression: str, nbits: int | None, target: Any, requested: str | None
) -> None:
    import coremltools as ct

    shown = requested or target_name(target)
    if compression != "none" and target < ct.target.iOS16:
        raise ExportError(
            f"recipe {recipe_name} compresses weights ({compression}), which needs iOS16/macOS13 or newer; "
            f"the deployment target is {shown}",
            "use recipe coreml-fp16 (or coreml-fp32) for this target, or a profile with minimum_deployment_target >= iOS16",
        )
    if compression == "palettize" and nbits == 3 and target < ct.target.iOS18:
        raise ExportError(
            f"recipe {recipe_name}: 3-bit palettization needs iOS18/macOS15 or newer; the deployment target is {shown}",
            "use palettize_nbits = 4 (or 2, 6, 8)",
        )


# --------------------------------------------------------------------------------------------------
# model preparation


def _ends_in_softmax(model: Any) -> bool:
    K = _keras()
    last = model.layers[-1]
    if isinstance(last, K.layers.Softmax):
        return True
    act = getattr(last, "activation", None)
    return getattr(act, "__name__", "") == "softmax"


def _keras() -> Any:
    from .._tf import keras

    return keras()


def _wrap(model: Any, input_spec: dict[str, Any], *, bake_rescaling: bool, add_softmax: bool) -> Any:
    """raw pixels (batch 1, float32) -> [Rescaling] -> model -> [Softmax]."""
    K = _keras()
    h, w, c = int(input_spec["height"]), int(input_spec["width"]), int(input_spec["channels"])
    inp = K.Input(shape=(h, w, c), batch_size=1, name="input", dtype="float32")
    x = inp
    if bake_rescaling:
        x = K.layers.Rescaling(input_spec["scale"], offset=input_spec["offset"], name="edgepool_normalize")(x)
    x = model(x)
    if add_softmax:
        x = K.layers.Softmax(name="edgepool_softmax")(x)
    return K.Model(inp, x, name="edgepool_coreml")


def _all_layers(model: Any) -> list[Any]:
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


def _downsampling_of(layer: Any) -> str:
    cfg = {}
    with contextlib.suppress(Exception):
        cfg = layer.get_config()
    return str(cfg.get("downsampling") or cfg.get("pooling") or type(layer).__name__)


def _conversion_error(e: BaseException, model: Any) -> ExportError:
    """Turn a coremltools failure into an ExportError naming the layer and what to use instead."""
    text = str(e)
    tf_op = None
    m = re.search(r"TF op '([^']+)'", text)
    if m:
        tf_op = m.group(1)
    node = None
    m = re.search(r'name:\s*"([^"]+)"', text)
    if m:
        node = m.group(1)
    layer = None
    by_name = {lay.name: lay for lay in _all_layers(model)}
    if node:
        for part in node.split("/"):
            if part in by_name and not hasattr(by_name[part], "layers"):
                layer = by_name[part]
    if layer is None:  # no node name: a layer whose type mentions the TF op, else the first custom layer
        K = _keras()
        for lay in _all_layers(model):
            mod = type(lay).__module__
            if tf_op and tf_op.lower() in type(lay).__name__.lower():
                layer = lay
                break
            if layer is None and not mod.startswith(("tf_keras", "keras")) and not isinstance(lay, K.Model):
                layer = lay
    what = f"layer {layer.name!r} ({type(layer).__name__})" if layer is not None else "the model"
    op = f" uses TF op {tf_op}, which" if tf_op else ""
    first = text.strip().splitlines()[0][:200] if text.strip() else type(e).__name__
    return ExportError(
        f"Core ML conversion failed: {what}{op} coremltools cannot convert ({first})",
        "rebuild the model with a downsampling choice that converts: "
        + ", ".join(CONVERTIBLE_DOWNSAMPLING)
        + " (pooling layers max/avg/l2, or a stride-2 conv)",
    )


# --------------------------------------------------------------------------------------------------
# export


def export_coreml(
    model: Any,
    recipe: Any,
    out_dir: Path,
    *,
    input_spec: dict[str, Any],
    labels: list[str],
    metadata: dict[str, Any],
    deployment_target: str | None = None,
    compute_units: str | None = None,
    image_input: bool = False,
) -> dict[str, Any]:
    """Convert `model` (a tf_keras classifier, float NHWC input) into `out_dir/model.mlpackage`.

    `input_spec`: height, width, channels, scale, offset (model input = raw * scale + offset).
    `deployment_target`: "iOS15", "iOS16", ... (None: iOS15, or iOS16 if the recipe compresses
    weights); older than iOS15 writes a neuralnetwork `model.mlmodel`. `compute_units`: "ALL",
    "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE" (recorded in the metadata; Core ML applies it at load).
    `image_input`: an ImageType input (1 or 3 channels) instead of a float MultiArray.
    Returns the sidecar fields this export knows. Raises ExportError.
    """
    import coremltools as ct

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ExportError(
            f"output directory {out_dir} does not exist", "create it first (the caller stages it)"
        )
    recipe_name, precision, compression, nbits = _recipe_fields(recipe)

    if deployment_target is None:
        target = ct.target.iOS16 if compression != "none" else ct.target.iOS15
    else:
        target = resolve_target(deployment_target)
    _check_target(recipe_name, compression, nbits, target, deployment_target)
    mlprogram = target >= ct.target.iOS15

    units_name = (compute_units or "ALL").upper()
    if units_name not in COMPUTE_UNITS:
        raise ExportError(
            f"unknown Core ML compute units {compute_units!r}", f"use one of: {', '.join(COMPUTE_UNITS)}"
        )

    for key in ("height", "width", "channels", "scale", "offset"):
        if key not in input_spec:
            raise ExportError(f"input spec lacks {key!r}", "pass height, width, channels, scale, offset")
    h, w, c = int(input_spec["height"]), int(input_spec["width"]), int(input_spec["channels"])
    scale, offset = input_spec["scale"], input_spec["offset"]
    if image_input:
        if c not in (1, 3):
            raise ExportError(
                f"an image input needs a 1- or 3-channel model; this one has {c} channels",
                "export without the image-input option (a MultiArray input)",
            )
        if isinstance(scale, list | tuple):
            if len(set(scale)) != 1:
                raise ExportError(
                    "an image input takes one scale for all channels", "export with a MultiArray input"
                )
            scale = scale[0]

    model_in = tuple(model.inputs[0].shape[1:])
    if model_in != (h, w, c):
        raise ExportError(
            f"model input {model_in} does not match the input spec {(h, w, c)}", "pass the run's input spec"
        )
    n_out = int(model.outputs[0].shape[-1])
    labels = [str(lab) for lab in labels]
    if len(labels) != n_out:
        raise ExportError(f"{len(labels)} labels for a model with {n_out} outputs", "pass the run's labels")

    add_softmax = not _ends_in_softmax(model)
    wrapped = _wrap(model, input_spec, bake_rescaling=not image_input, add_softmax=add_softmax)

    if image_input:
        bias = [float(o) for o in offset] if isinstance(offset, list | tuple) else [float(offset)] * c
        ct_input = ct.ImageType(
            name="input",
            shape=(1, h, w, c),
            scale=float(scale),
            bias=bias if c == 3 else bias[0],
            color_layout=ct.colorlayout.RGB if c == 3 else ct.colorlayout.GRAYSCALE,
        )
    else:
        import numpy as np

        ct_input = ct.TensorType(name="input", shape=(1, h, w, c), dtype=np.float32)

    kwargs: dict[str, Any] = dict(
        convert_to="mlprogram" if mlprogram else "neuralnetwork",
        minimum_deployment_target=target,
        inputs=[ct_input],
        classifier_config=ct.ClassifierConfig(labels),
        compute_units=getattr(ct.ComputeUnit, units_name),
        skip_model_load=True,
    )
    if mlprogram:
        kwargs["compute_precision"] = ct.precision.FLOAT16 if precision == "float16" else ct.precision.FLOAT32
    try:
        mlmodel = ct.convert(wrapped, **kwargs)
    except Exception as e:  # coremltools raises NotImplementedError, ValueError, KeyError, ...
        raise _conversion_error(e, model) from e

    try:
        mlmodel = _compress(mlmodel, compression, nbits, mlprogram, precision)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(
            f"Core ML weight compression ({compression}) failed: {str(e).splitlines()[0][:200]}",
            "use recipe coreml-fp16",
        ) from e

    probs_name = mlmodel.get_spec().description.predictedProbabilitiesName or "classLabel_probs"
    label_name = mlmodel.get_spec().description.predictedFeatureName or "classLabel"
    in_field = {
        "name": "input",
        "shape": [1, h, w, c],
        "dtype": "float32",
        "scale": None,
        "zero_point": None,
        "type": "image" if image_input else "multiarray",
        "color_layout": ("RGB" if c == 3 else "GRAYSCALE") if image_input else None,
        "layout": "NHWC",
        "raw_pixels": True,
    }
    out_field = {
        "name": probs_name,
        "shape": [1, n_out],
        "dtype": "float32",
        "scale": None,
        "zero_point": None,
        "kind": "probabilities",
        "class_label": label_name,
    }
    baked = {"scale": input_spec["scale"], "offset": input_spec["offset"]}
    tname = target_name(target)

    _set_metadata(
        mlmodel,
        metadata,
        recipe_name=recipe_name,
        in_field=in_field,
        out_field=out_field,
        baked=baked,
        add_softmax=add_softmax,
        units=units_name,
        target=tname,
        precision=precision,
    )

    fname = "model.mlpackage" if mlprogram else "model.mlmodel"
    final = out_dir / fname
    if final.exists():
        raise ExportError(f"{final} already exists", "export into an empty (staging) directory")
    tmp = out_dir / f".{fname}.tmp-{uuid.uuid4().hex[:8]}"
    if mlprogram:
        tmp = tmp.with_name(tmp.name + ".mlpackage")  # coremltools insists on the suffix
    else:
        tmp = tmp.with_name(tmp.name + ".mlmodel")
    try:
        mlmodel.save(str(tmp))
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise

    size, weights = _sizes(final)
    return {
        "format": "coreml",
        "file": fname,
        "recipe": recipe_name,
        "labels": labels,
        "input": in_field,
        "output": out_field,
        "normalization": {"scale": 1.0, "offset": 0.0},
        "baked_normalization": baked,
        "model_type": "mlprogram" if mlprogram else "neuralnetwork",
        "deployment_target": tname,
        "compute_precision": precision,
        "compute_units": units_name,
        "weight_compression": compression,
        "palettize_nbits": nbits,
        "softmax_appended": add_softmax,
        "size_bytes": size,
        "weights_bytes": weights,
    }


def _compress(mlmodel: Any, compression: str, nbits: int | None, mlprogram: bool, precision: str) -> Any:
    if not mlprogram:
        if precision == "float16":
            from coremltools.models.neural_network import quantization_utils

            return quantization_utils.quantize_weights(mlmodel, nbits=16)
        return mlmodel
    if compression == "none":
        return mlmodel
    import coremltools.optimize.coreml as cto

    if compression == "linear-int8":
        cfg = cto.OptimizationConfig(
            global_config=cto.OpLinearQuantizerConfig(
                mode="linear_symmetric",
                dtype="int8",
                granularity="per_channel",
                weight_threshold=WEIGHT_THRESHOLD,
            )
        )
        return cto.linear_quantize_weights(mlmodel, cfg)
    cfg = cto.OptimizationConfig(
        global_config=cto.OpPalettizerConfig(
            mode="kmeans", nbits=int(nbits or 4), granularity="per_tensor", weight_threshold=WEIGHT_THRESHOLD
        )
    )
    return cto.palettize_weights(mlmodel, cfg)


def _set_metadata(
    mlmodel: Any,
    metadata: dict[str, Any],
    *,
    recipe_name: str,
    in_field: dict[str, Any],
    out_field: dict[str, Any],
    baked: dict[str, Any],
    add_softmax: bool,
    units: str,
    target: str,
    precision: str,
) -> None:
    from .. import __version__

    desc = str(metadata.get("description") or "edgepool pooling-CNN classifier")
    mlmodel.short_description = desc
    mlmodel.author = str(metadata.get("author") or "edgepool")
    mlmodel.version = str(metadata.get("version") or metadata.get("edgepool_version") or __version__)
    if metadata.get("license"):
        mlmodel.license = str(metadata["license"])
    ud = mlmodel.user_defined_metadata
    for key, value in metadata.items():
        if value is None:
            continue
        ud[str(key)] = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    ud.setdefault("edgepool_version", __version__)
    ud["recipe"] = recipe_name
    ud["input"] = json.dumps(in_field, sort_keys=True)
    ud["output"] = json.dumps(out_field, sort_keys=True)
    ud["normalization"] = json.dumps(baked, sort_keys=True)
    ud["compute_units"] = units
    ud["compute_precision"] = precision
    ud["deployment_target"] = target
    ud[SOFTMAX_APPENDED_KEY] = "true" if add_softmax else "false"
    kind = "an image" if in_field["type"] == "image" else "a float32 MultiArray"
    mlmodel.input_description["input"] = (
        f"raw pixels (0-255), {kind} of shape {in_field['shape']} (NHWC); normalization "
        f"raw*{baked['scale']}+{baked['offset']} is applied inside the model"
    )
    mlmodel.output_description[out_field["name"]] = "class probabilities (softmax)"
    mlmodel.output_description[out_field["class_label"]] = "most likely class label"


def _sizes(path: Path) -> tuple[int, int]:
    """(total bytes, weight bytes) of a saved .mlpackage / .mlmodel."""
    if path.is_file():
        size = path.stat().st_size
        return size, size
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    weights = sum(f.stat().st_size for f in path.rglob("weights/*") if f.is_file())
    return total, weights


def read_package_metadata(path: Path) -> dict[str, Any]:
    """Description, version, user-defined metadata and class labels read back from a saved model."""
    import coremltools as ct

    try:
        m = ct.models.MLModel(str(path), skip_model_load=True)
        spec = m.get_spec()
    except Exception as e:
        raise ExportError(f"{path} is not a readable Core ML model ({e})", "re-export it") from None
    d = spec.description
    kind = spec.WhichOneof("Type")
    labels: list[str] = []
    for holder in ("neuralNetworkClassifier",):
        if kind == holder:
            labels = [str(s) for s in spec.neuralNetworkClassifier.stringClassLabels.vector]
    if kind == "mlProgram":
        from ..verify.mil import load_program

        prog = load_program(path)
        labels = prog.class_labels or []
    return {
        "type": kind,
        "specification_version": int(spec.specificationVersion),
        "description": d.metadata.shortDescription,
        "version": d.metadata.versionString,
        "author": d.metadata.author,
        "user_defined": dict(d.metadata.userDefined),
        "inputs": [i.name for i in d.input],
        "input_types": [i.type.WhichOneof("Type") for i in d.input],
        "outputs": [o.name for o in d.output],
        "predicted_feature": d.predictedFeatureName,
        "predicted_probabilities": d.predictedProbabilitiesName,
        "labels": labels,
    }


__all__ = ["export_coreml", "read_package_metadata", "resolve_target", "target_name"]

"""Core ML export: a tf_keras classifier -> `model.mlpackage` (ML Program) or `model.mlmodel` (iOS < 15).

`export(source, recipe, profile)` returns an `Artifact` holding the package coremltools saved into a
private temporary folder; `runs.save_export` moves it into the export folder. Nothing is written
anywhere else, and nothing is left behind when a step fails.

The exported model is a Core ML *classifier* an app feeds raw pixels:

- the input normalization (`raw * scale + offset`) is baked in: a `Rescaling` layer in front of the
  model for a tensor input, or the ImageType's scale/bias for an image input (`image_input=True`,
  1- or 3-channel models);
- the zoo's final Dense outputs logits, so a softmax is appended (unless the model already ends in
  one) and `ClassifierConfig` adds `classLabel` + `classLabel_probs` (class probabilities);
- description, version, source run, edgepool version, recipe and the input/output spec go in the
  model's user-defined metadata.

Compute precision comes from the recipe (FP16 by default, FP32 on request); weight compression
(8-bit linear, palettization) uses `coremltools.optimize.coreml` and needs iOS16+. The deployment
target and compute units come from the profile (default: the oldest target the recipe allows, iOS15
or iOS16, and "ALL"). A target older than iOS15 produces a legacy neuralnetwork `.mlmodel` (no
compression; FP16 stores half-precision weights).

Steps: `_settings` (recipe + profile -> what to build, checked), `_check_source`, `_wrap` (Keras
model with normalization and softmax), `_convert`, `_compress`, `_set_metadata`, `_save`.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExportError
from ..inspect.coreml import SOFTMAX_APPENDED_KEY
from ..models import HEAD_POOLS, POOLS
from ..recipes import PALETTIZE_NBITS, PRECISIONS
from ..types import COMPUTE_UNITS_MIN_TARGET, Artifact, Compression, DeploymentTarget, Format, RecipeFormat
from .source import ModelSource, base_sidecar

if TYPE_CHECKING:
    from ..profiles import DeviceProfile
    from ..recipes import QuantRecipe

# weights with fewer elements stay FP16/FP32 (coremltools' default of 2048 would skip a small CNN)
WEIGHT_THRESHOLD = 64


INPUT_NAME = "input"
_TMP_PREFIX = "edgepool-coreml-"
_INPUT_SPEC_KEYS = ("height", "width", "channels", "scale", "offset")


@dataclass(frozen=True)
class _Settings:
    """What to build, from the recipe and the profile, checked."""

    recipe_name: str
    precision: str  # "float16" | "float32"
    compression: Compression
    nbits: int | None  # palettization bits; None unless palettized
    target: DeploymentTarget
    compute_units: str  # a key of COMPUTE_UNITS_MIN_TARGET

    @property
    def ml_program(self) -> bool:
        return self.target.ml_program

    @property
    def model_file(self) -> str:
        return "model.mlpackage" if self.ml_program else "model.mlmodel"


@dataclass(frozen=True)
class _Shape:
    """The source model's input and output, checked against its input spec and labels."""

    height: int
    width: int
    channels: int
    classes: int
    image_scale: float | None  # an image input's one scale (None for a MultiArray input)


# --------------------------------------------------------------------------------------------------
# the entry point


def export(
    source: ModelSource,
    recipe: QuantRecipe,
    profile: DeviceProfile | None = None,
    *,
    image_input: bool = False,
) -> Artifact:
    """Convert `source.model` (a tf_keras classifier, float NHWC input) into a Core ML classifier.

    `profile`: its `deployment_target` and `compute_units` (None: the recipe's default target and
    "ALL"). `image_input`: an ImageType input (1 or 3 channels) instead of a float MultiArray.
    Returns an Artifact whose `files` maps `model.mlpackage` (or `model.mlmodel`) to the saved package
    in a temporary folder of its own. Raises ExportError.
    """
    from .._tf import quiet_stderr

    settings = _settings(recipe, profile)
    shape = _check_source(source, image_input)
    add_softmax = not _ends_in_softmax(source.model)
    wrapped = _wrap(source.model, source.input_spec, bake_rescaling=not image_input, add_softmax=add_softmax)
    with quiet_stderr():  # coremltools' per-pass progress bars
        mlmodel = _convert(wrapped, source, shape, settings, image_input)
        mlmodel = _compress(mlmodel, settings)
    in_field, out_field = _io_fields(mlmodel, shape, image_input)
    baked = {"scale": source.input_spec["scale"], "offset": source.input_spec["offset"]}
    meta = base_sidecar(source, recipe, profile)
    _set_metadata(mlmodel, meta, settings, in_field, out_field, baked, add_softmax)
    path = _save(mlmodel, settings.model_file)
    size, weights = _sizes(path)
    sidecar = {
        **meta,
        **source.facts,
        "output_kind": "probabilities",
        "format": Format.COREML.value,
        "file": settings.model_file,
        "recipe": settings.recipe_name,
        "labels": [str(lab) for lab in source.labels],
        "input": in_field,
        "output": out_field,
        "normalization": {"scale": 1.0, "offset": 0.0},
        "baked_normalization": baked,
        "model_type": "mlprogram" if settings.ml_program else "neuralnetwork",
        "deployment_target": settings.target.name,
        "compute_precision": settings.precision,
        "compute_units": settings.compute_units,
        "weight_compression": settings.compression.value,
        "palettize_nbits": settings.nbits,
        "softmax_appended": add_softmax,
        "size_bytes": size,
        "weights_bytes": weights,
    }
    return Artifact(Format.COREML, settings.model_file, {settings.model_file: path}, sidecar, notes=[])


# --------------------------------------------------------------------------------------------------
# checks


def _settings(recipe: QuantRecipe, profile: DeviceProfile | None) -> _Settings:
    """Recipe fields, deployment target and compute units, each checked (ExportError naming the fix)."""
    name = recipe.name
    if RecipeFormat(recipe.format) is not RecipeFormat.COREML:
        raise ExportError(
            f"recipe {name} is a {RecipeFormat(recipe.format).value} recipe, not a Core ML one",
            "use a coreml-* recipe (coreml-fp16, coreml-fp32, coreml-int8, coreml-palettize)",
        )
    if recipe.compute_precision not in PRECISIONS:
        raise ExportError(
            f"recipe {name}: compute_precision {recipe.compute_precision!r} is not one of {PRECISIONS}",
            "fix the recipe",
        )
    try:
        compression = Compression(recipe.weight_compression)
    except ValueError:
        known = tuple(c.value for c in Compression)
        raise ExportError(
            f"recipe {name}: weight_compression {recipe.weight_compression!r} is not one of {known}",
            "fix the recipe",
        ) from None
    nbits = None
    if compression is Compression.PALETTIZE:
        nbits = int(recipe.palettize_nbits)
        if nbits not in PALETTIZE_NBITS:
            raise ExportError(f"recipe {name}: palettize_nbits {nbits} is not one of {PALETTIZE_NBITS}", "fix the recipe")

    target = profile.deployment_target if profile is not None else None
    if target is None:
        target = recipe.default_coreml_target()
    problem = recipe.coreml_target_problem(target)
    if problem:
        if compression is Compression.PALETTIZE and nbits == 3 and target >= DeploymentTarget.iOS16:
            hint = "use palettize_nbits = 4 (or 2, 6, 8)"
        else:
            hint = "use recipe coreml-fp16 (or coreml-fp32) for this target, or a profile with a newer minimum_deployment_target"
        raise ExportError(problem, hint)

    units = (profile.compute_units if profile is not None else None) or "ALL"
    if units not in COMPUTE_UNITS_MIN_TARGET:
        raise ExportError(
            f"unknown Core ML compute units {units!r}", f"use one of: {', '.join(COMPUTE_UNITS_MIN_TARGET)}"
        )
    if target < COMPUTE_UNITS_MIN_TARGET[units]:
        raise ExportError(
            f"compute units {units} need {COMPUTE_UNITS_MIN_TARGET[units].name} or later; the deployment target is {target.name}",
            "use compute_units ALL, or a newer minimum_deployment_target",
        )
    return _Settings(name, recipe.compute_precision, compression, nbits, target, units)


def _check_source(source: ModelSource, image_input: bool) -> _Shape:
    spec = source.input_spec
    for key in _INPUT_SPEC_KEYS:
        if key not in spec:
            raise ExportError(f"input spec lacks {key!r}", "pass " + ", ".join(_INPUT_SPEC_KEYS))
    h, w, c = int(spec["height"]), int(spec["width"]), int(spec["channels"])
    image_scale = None
    if image_input:
        if c not in (1, 3):
            raise ExportError(
                f"an image input needs a 1- or 3-channel model; this one has {c} channels",
                "export without the image-input option (a MultiArray input)",
            )
        scale = spec["scale"]
        if isinstance(scale, list | tuple):
            if len(set(scale)) != 1:
                raise ExportError("an image input takes one scale for all channels", "export with a MultiArray input")
            scale = scale[0]
        image_scale = float(scale)
    model = source.model
    model_in = tuple(model.inputs[0].shape[1:])
    if model_in != (h, w, c):
        raise ExportError(f"model input {model_in} does not match the input spec {(h, w, c)}", "pass the run's input spec")
    n_out = int(model.outputs[0].shape[-1])
    if len(source.labels) != n_out:
        raise ExportError(f"{len(source.labels)} labels for a model with {n_out} outputs", "pass the run's labels")
    return _Shape(h, w, c, n_out, image_scale)


# --------------------------------------------------------------------------------------------------
# model preparation


def _keras() -> Any:
    from .._tf import keras

    return keras()


def _coremltools() -> Any:
    from .._tf import coremltools

    return coremltools()


def _ends_in_softmax(model: Any) -> bool:
    K = _keras()
    last = model.layers[-1]
    if isinstance(last, K.layers.Softmax):
        return True
    act = getattr(last, "activation", None)
    return getattr(act, "__name__", "") == "softmax"


def _wrap(model: Any, input_spec: dict[str, Any], *, bake_rescaling: bool, add_softmax: bool) -> Any:
    """raw pixels (batch 1, float32) -> [Rescaling] -> model -> [Softmax]."""
    K = _keras()
    h, w, c = int(input_spec["height"]), int(input_spec["width"]), int(input_spec["channels"])
    inp = K.Input(shape=(h, w, c), batch_size=1, name=INPUT_NAME, dtype="float32")
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


def _conversion_error(e: BaseException, model: Any) -> ExportError:
    """Turn a coremltools failure into an ExportError naming the layer and what to use instead."""
    text = str(e)
    m = re.search(r"TF op '([^']+)'", text)
    tf_op = m.group(1) if m else None
    m = re.search(r'name:\s*"([^"]+)"', text)
    node = m.group(1) if m else None
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
        "replace that layer with one built from standard ops, e.g. a pooling choice of edgepool's library "
        f"(all convert: {', '.join(POOLS + HEAD_POOLS)}; the pooling compatibility matrix lists each layer)",
    )


# --------------------------------------------------------------------------------------------------
# conversion


def _input_type(ct: Any, input_spec: dict[str, Any], shape: _Shape, image_input: bool) -> Any:
    h, w, c = shape.height, shape.width, shape.channels
    if not image_input:
        import numpy as np

        return ct.TensorType(name=INPUT_NAME, shape=(1, h, w, c), dtype=np.float32)
    offset = input_spec["offset"]
    bias = [float(o) for o in offset] if isinstance(offset, list | tuple) else [float(offset)] * c
    return ct.ImageType(
        name=INPUT_NAME,
        shape=(1, h, w, c),
        scale=shape.image_scale,
        bias=bias if c == 3 else bias[0],
        color_layout=ct.colorlayout.RGB if c == 3 else ct.colorlayout.GRAYSCALE,
    )


def _convert(wrapped: Any, source: ModelSource, shape: _Shape, settings: _Settings, image_input: bool) -> Any:
    """The wrapped Keras model -> an in-memory MLModel (ExportError naming the source layer that fails)."""
    ct = _coremltools()
    kwargs: dict[str, Any] = dict(
        convert_to="mlprogram" if settings.ml_program else "neuralnetwork",
        minimum_deployment_target=ct.target[settings.target.name],
        inputs=[_input_type(ct, source.input_spec, shape, image_input)],
        classifier_config=ct.ClassifierConfig([str(lab) for lab in source.labels]),
        compute_units=ct.ComputeUnit[settings.compute_units],
        skip_model_load=True,
    )
    if settings.ml_program:
        kwargs["compute_precision"] = (
            ct.precision.FLOAT16 if settings.precision == "float16" else ct.precision.FLOAT32
        )
    try:
        return ct.convert(wrapped, **kwargs)
    except Exception as e:  # coremltools raises NotImplementedError, ValueError, KeyError, ...
        raise _conversion_error(e, source.model) from e


def _compress(mlmodel: Any, settings: _Settings) -> Any:
    """Weight compression as the recipe says (ML Program), or FP16 weights (neuralnetwork)."""
    try:
        return _compress_weights(mlmodel, settings)
    except Exception as e:
        raise ExportError(
            f"Core ML weight compression ({settings.compression.value}) failed: {str(e).splitlines()[0][:200]}",
            "use recipe coreml-fp16",
        ) from e


def _compress_weights(mlmodel: Any, settings: _Settings) -> Any:
    if not settings.ml_program:
        if settings.precision == "float16":
            _coremltools()
            from coremltools.models.neural_network import quantization_utils

            with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per layer
                return quantization_utils.quantize_weights(mlmodel, nbits=16)
        return mlmodel
    if settings.compression is Compression.NONE:
        return mlmodel
    _coremltools()
    import coremltools.optimize.coreml as cto

    if settings.compression is Compression.LINEAR_INT8:
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
            mode="kmeans", nbits=int(settings.nbits or 4), granularity="per_tensor", weight_threshold=WEIGHT_THRESHOLD
        )
    )
    return cto.palettize_weights(mlmodel, cfg)


# --------------------------------------------------------------------------------------------------
# metadata


def _io_fields(mlmodel: Any, shape: _Shape, image_input: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sidecar's `input` and `output` entries."""
    desc = mlmodel.get_spec().description
    c = shape.channels
    in_field = {
        "name": INPUT_NAME,
        "shape": [1, shape.height, shape.width, c],
        "dtype": "float32",
        "scale": None,
        "zero_point": None,
        "type": "image" if image_input else "multiarray",
        "color_layout": ("RGB" if c == 3 else "GRAYSCALE") if image_input else None,
        "layout": "NHWC",
        "raw_pixels": True,
    }
    out_field = {
        "name": desc.predictedProbabilitiesName or "classLabel_probs",
        "shape": [1, shape.classes],
        "dtype": "float32",
        "scale": None,
        "zero_point": None,
        "kind": "probabilities",
        "class_label": desc.predictedFeatureName or "classLabel",
    }
    return in_field, out_field


def _set_metadata(
    mlmodel: Any,
    metadata: dict[str, Any],
    settings: _Settings,
    in_field: dict[str, Any],
    out_field: dict[str, Any],
    baked: dict[str, Any],
    add_softmax: bool,
) -> None:
    """Description, version and the sidecar facts as the model's (user-defined) metadata."""
    from .. import __version__

    mlmodel.short_description = str(metadata.get("description") or "edgepool pooling-CNN classifier")
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
    ud["recipe"] = settings.recipe_name
    ud["input"] = json.dumps(in_field, sort_keys=True)
    ud["output"] = json.dumps(out_field, sort_keys=True)
    ud["normalization"] = json.dumps(baked, sort_keys=True)
    ud["compute_units"] = settings.compute_units
    ud["compute_precision"] = settings.precision
    ud["deployment_target"] = settings.target.name
    ud[SOFTMAX_APPENDED_KEY] = "true" if add_softmax else "false"
    kind = "an image" if in_field["type"] == "image" else "a float32 MultiArray"
    mlmodel.input_description[INPUT_NAME] = (
        f"raw pixels (0-255), {kind} of shape {in_field['shape']} (NHWC); normalization "
        f"raw*{baked['scale']}+{baked['offset']} is applied inside the model"
    )
    mlmodel.output_description[out_field["name"]] = "class probabilities (softmax)"
    mlmodel.output_description[out_field["class_label"]] = "most likely class label"


# --------------------------------------------------------------------------------------------------
# saving


def _save(mlmodel: Any, model_file: str) -> Path:
    """Save into a new temporary folder of its own; on any failure the folder is removed."""
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX))
    path = tmp / model_file
    try:
        mlmodel.save(str(path))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _sizes(path: Path) -> tuple[int, int]:
    """(total bytes, weight bytes) of a saved .mlpackage / .mlmodel."""
    if path.is_file():
        size = path.stat().st_size
        return size, size
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    weights = sum(f.stat().st_size for f in path.rglob("weights/*") if f.is_file())
    return total, weights


def discard(artifact: Artifact) -> None:
    """Remove the temporary folder of an Artifact made here that is not going to be saved."""
    for data in artifact.files.values():
        if isinstance(data, Path) and data.parent.name.startswith(_TMP_PREFIX):
            shutil.rmtree(data.parent, ignore_errors=True)


__all__ = ["discard", "export"]

"""Quantization recipes (quantization/*.toml), post-training quantization and QAT (TFMOT).

A recipe is shipped data with a strict schema (unknown keys, wrong types or values are errors naming
the file and key), found by name among the shipped recipes or by path. `convert_tflite` turns a
tf_keras model into .tflite bytes as the recipe says; `qat_finetune` fine-tunes a quantization-aware
copy of the model. Calibration samples always come from the run's training split.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._paths import data_dir
from .errors import ExportError, RecipeError

SCHEMA_VERSION = 1
FORMATS = ("tflite", "coreml")
TFLITE_TYPES = ("float32", "float16", "int8")
IO_TYPES = ("float32", "int8", "uint8")
PRECISIONS = ("float16", "float32")
COMPRESSIONS = ("none", "linear-int8", "palettize")


@dataclass(frozen=True)
class QuantRecipe:
    name: str
    description: str
    format: str
    path: Path
    weights: str = "float32"
    activations: str = "float32"
    input_type: str = "float32"
    output_type: str = "float32"
    calibration_samples: int = 300
    # int8 weights: one scale per output channel (TFLite's default) or one per tensor (smaller
    # files, runs on every int8 backend; `benchmarks/per_channel.py` measures what it costs)
    per_channel: bool = True
    qat_epochs: int = 0
    qat_learning_rate: float = 5e-4
    compute_precision: str = "float16"
    weight_compression: str = "none"
    palettize_nbits: int = 4
    # verification acceptance for quantized exports (float32 is judged by atol/rtol instead)
    max_accuracy_drop_pp: float = 1.0
    min_agreement: float = 0.98

    @property
    def full_integer(self) -> bool:
        return self.format == "tflite" and self.activations == "int8"

    @property
    def is_float32(self) -> bool:
        return self.format == "tflite" and self.weights == "float32" and self.activations == "float32"

    @property
    def qat(self) -> bool:
        return self.qat_epochs > 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d

    def settings(self) -> dict[str, Any]:
        """The fields that mean something for this recipe's format (what `recipes show` prints)."""
        return {k: v for k, v in self.to_dict().items() if k not in _KEYS or self.format in _KEYS[k][2]}

    @property
    def weights_label(self) -> str:
        """`int8 per-tensor`, `float16`, `float16 (palettize 6-bit)` ... for tables."""
        if self.format != "tflite":
            w = self.weight_compression + (f" {self.palettize_nbits}-bit" if self.weight_compression == "palettize" else "")
            return f"{self.compute_precision} ({w})"
        return f"int8 per-{'channel' if self.per_channel else 'tensor'}" if self.weights == "int8" else self.weights


# key -> (type(s), allowed values or None, formats it applies to)
_KEYS: dict[str, tuple[tuple[type, ...], tuple[Any, ...] | None, tuple[str, ...]]] = {
    "schema_version": ((int,), (SCHEMA_VERSION,), FORMATS),
    "description": ((str,), None, FORMATS),
    "format": ((str,), FORMATS, FORMATS),
    "weights": ((str,), TFLITE_TYPES, ("tflite",)),
    "activations": ((str,), ("float32", "int8"), ("tflite",)),
    "input_type": ((str,), IO_TYPES, ("tflite",)),
    "output_type": ((str,), IO_TYPES, ("tflite",)),
    "calibration_samples": ((int,), None, ("tflite",)),
    "per_channel": ((bool,), None, ("tflite",)),
    "qat_epochs": ((int,), None, ("tflite",)),
    "qat_learning_rate": ((float, int), None, ("tflite",)),
    "compute_precision": ((str,), PRECISIONS, ("coreml",)),
    "weight_compression": ((str,), COMPRESSIONS, ("coreml",)),
    "palettize_nbits": ((int,), (1, 2, 3, 4, 6, 8), ("coreml",)),
    "max_accuracy_drop_pp": ((float, int), None, FORMATS),
    "min_agreement": ((float, int), None, FORMATS),
}
_REQUIRED = ("schema_version", "description", "format")


def recipes_dir() -> Path:
    return data_dir("quantization")


def list_recipes() -> list[QuantRecipe]:
    return [load_recipe(p) for p in sorted(recipes_dir().glob("*.toml"))]


def recipe_names() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.toml"))


def load_recipe(name_or_path: str | Path | QuantRecipe) -> QuantRecipe:
    """A recipe by shipped name (`int8`) or by path to a .toml file."""
    if isinstance(name_or_path, QuantRecipe):
        return name_or_path
    s = str(name_or_path)
    p = Path(s)
    if s.endswith(".toml") or p.is_file() or "/" in s:
        if not p.is_file():
            raise RecipeError(f"recipe file {p} does not exist", "check the path, or use a shipped name (`edgepool recipes list`)")
        return _parse(p)
    shipped = recipes_dir() / f"{s}.toml"
    if not shipped.is_file():
        raise RecipeError(f"unknown recipe {s!r}", f"choose one of: {', '.join(recipe_names())}, or pass a .toml path")
    return _parse(shipped)


def _parse(path: Path) -> QuantRecipe:
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML ({e})", "fix the syntax") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RecipeError(f"{path}: cannot read ({e})", "check the file") from None
    for key in _REQUIRED:
        if key not in raw:
            raise RecipeError(f"{path}: missing key {key!r}", f"a recipe needs {', '.join(_REQUIRED)}")
    fmt = raw["format"]
    for key, value in raw.items():
        if key not in _KEYS:
            raise RecipeError(f"{path}: unknown key {key!r}", f"allowed keys: {', '.join(_KEYS)}")
        types, allowed, formats = _KEYS[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise RecipeError(f"{path}: key {key!r} must be {' or '.join(t.__name__ for t in types)}, not {type(value).__name__}", "fix the value's type")
        if allowed is not None and value not in allowed:
            raise RecipeError(f"{path}: key {key!r} is {value!r}", f"allowed: {', '.join(map(str, allowed))}")
        if isinstance(fmt, str) and fmt in FORMATS and fmt not in formats:
            raise RecipeError(f"{path}: key {key!r} does not apply to format {fmt!r}", f"it is for {', '.join(formats)} recipes")
    r = QuantRecipe(name=path.stem, path=path, **{k: v for k, v in raw.items() if k != "schema_version"})
    _check_consistent(r)
    return r


def _check_consistent(r: QuantRecipe) -> None:
    where = str(r.path)
    if r.format != "tflite":
        return
    if r.activations == "int8" and r.weights != "int8":
        raise RecipeError(f"{where}: int8 activations need int8 weights", "set weights = \"int8\"")
    if r.activations == "float32" and (r.input_type != "float32" or r.output_type != "float32"):
        raise RecipeError(f"{where}: integer input/output needs activations = \"int8\"", "use float32 input/output, or full-integer activations")
    if r.calibration_samples < 1 or r.calibration_samples > 100_000:
        raise RecipeError(f"{where}: calibration_samples {r.calibration_samples} is out of range", "use 1..100000 (a few hundred is typical)")
    if r.qat_epochs < 0 or r.qat_epochs > 1000:
        raise RecipeError(f"{where}: qat_epochs {r.qat_epochs} is out of range", "use 0 (no QAT) up to a few epochs")
    if not r.per_channel and r.weights != "int8":
        raise RecipeError(f"{where}: per_channel applies to int8 weights only", "remove per_channel, or set weights = \"int8\"")
    if r.qat and not r.per_channel:
        raise RecipeError(f"{where}: QAT fake-quantizes conv weights per channel (TFMOT's default scheme)", "remove per_channel = false from a QAT recipe; per-tensor is for post-training recipes")
    if r.qat and r.activations != "int8":
        raise RecipeError(f"{where}: QAT (qat_epochs > 0) needs full-integer activations", "set activations = \"int8\"")
    if not 0 <= r.min_agreement <= 1:
        raise RecipeError(f"{where}: min_agreement must be in [0, 1]", "e.g. 0.98")


def representative_samples(x_norm: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x_norm), size=min(n, len(x_norm)), replace=False)
    return x_norm[np.sort(idx)]


def convert_tflite(model: Any, recipe: QuantRecipe, calib_x: np.ndarray | None = None) -> bytes:
    """Convert a tf_keras model (float, or a TFMOT QAT model) to .tflite bytes as `recipe` says."""
    from ._tf import quiet_stderr, tf

    if recipe.format != "tflite":
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
        with quiet_stderr():
            return bytes(conv.convert())
    except Exception as e:  # the converter raises ConverterError / RuntimeError with long MLIR text
        msg = str(e).strip().splitlines()
        detail = next((m for m in msg if "error" in m.lower()), msg[0] if msg else type(e).__name__)
        raise ExportError(
            f"TFLite conversion with recipe {recipe.name} failed: {detail[:300]}",
            "full-integer recipes need every op to have an int8 kernel; try `dynamic-int8` or another --pool choice",
        ) from None


def qat_model(model: Any, recipe_name: str = "int8-qat") -> Any:
    """Wrap a float tf_keras model for quantization-aware training; name the layer TFMOT cannot quantize."""
    from ._tf import quiet_stderr, tfmot

    q = tfmot().quantization.keras
    try:
        with quiet_stderr():
            return q.quantize_model(model)
    except (RuntimeError, ValueError, TypeError) as e:
        text = str(e)
        bad = next((layer for layer in model.layers if layer.__class__.__name__ in text or layer.name in text), None)
        what = f"layer {bad.name!r} ({bad.__class__.__name__})" if bad is not None else text.splitlines()[0][:200]
        raise ExportError(
            f"QAT (recipe {recipe_name}) cannot quantize {what}",
            "use the post-training recipe `int8` instead, or train with --pool max|avg|strided",
        ) from None


def qat_finetune(
    model: Any,
    recipe: QuantRecipe,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Fine-tune a QAT copy of `model` (the float model is left as it is). Returns (qat_model, history).

    The targets are the float model's own predictions (distillation), so validation "accuracy" in the
    history is agreement with the float model.
    """
    from ._tf import keras
    from .training import TrainConfig, fit

    k = keras()
    k.utils.set_random_seed(seed)
    qm = qat_model(model, recipe.name)
    n = epochs if epochs is not None else recipe.qat_epochs
    cfg = TrainConfig(epochs=n, learning_rate=recipe.qat_learning_rate, patience=max(n, 1), seed=seed)
    # distilled from the float model: QAT should recover the quantization loss, not keep training
    history = fit(qm, train, val, cfg, progress=progress, teacher=model)
    return qm, history

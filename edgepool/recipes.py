"""Quantization recipes: one TOML per recipe (`edgepool/data/quantization/*.toml`), found by name or by path.

A recipe is shipped data with a strict schema, read through `edgepool.config` (unknown keys, wrong
types, values or ranges are one-line errors naming the file and key). `QuantRecipe` also holds the
Core ML rules, once: which deployment target a recipe's weight compression needs
(`coreml_target_problem`, `default_coreml_target`).

No TensorFlow here: this module only reads TOML. Conversion lives in the exporters, QAT in `qat.py`.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import dataclass
from pathlib import Path

from . import config
from ._paths import data_dir
from .config import Field, Kind, Origin, Range
from .errors import RecipeError
from .types import (
    COMPRESSION_MIN_TARGET,
    PALETTIZE_3BIT_MIN_TARGET,
    Compression,
    DeploymentTarget,
    RecipeFormat,
)

SCHEMA_VERSION = config.SCHEMA_VERSION
WHAT = "quantization recipe"
TFLITE_WEIGHTS = ("float32", "float16", "int8")
ACTIVATIONS = ("float32", "int8")
IO_TYPES = ("float32", "int8", "uint8")
PRECISIONS = ("float16", "float32")
PALETTIZE_NBITS = (1, 2, 3, 4, 6, 8)

_TFLITE = (RecipeFormat.TFLITE.value,)
_COREML = (RecipeFormat.COREML.value,)

SCHEMA: dict[str, Field] = {
    "description": Field(Kind.STRING, required=True, meaning="what the recipe does, one or two sentences"),
    "format": Field(Kind.STRING, required=True, choices=RecipeFormat, meaning="what it converts to"),
    # tflite
    "weights": Field(Kind.STRING, choices=TFLITE_WEIGHTS, applies_to=_TFLITE, meaning="weight type"),
    "activations": Field(Kind.STRING, choices=ACTIVATIONS, applies_to=_TFLITE, meaning="int8 = full integer"),
    "input_type": Field(Kind.STRING, choices=IO_TYPES, applies_to=_TFLITE, meaning="model input type"),
    "output_type": Field(Kind.STRING, choices=IO_TYPES, applies_to=_TFLITE, meaning="model output type"),
    "calibration_samples": Field(
        Kind.INTEGER, range=Range(1, 100_000), applies_to=_TFLITE,
        meaning="samples from the training split", hint="use 1 to 100000 (a few hundred is typical)",
    ),
    "per_channel": Field(Kind.BOOLEAN, applies_to=_TFLITE, meaning="int8 weights: a scale per output channel"),
    "qat_epochs": Field(
        Kind.INTEGER, range=Range(0, 1000), applies_to=_TFLITE,
        meaning="quantization-aware fine-tune epochs", hint="use 0 (no QAT) up to a few epochs",
    ),
    "qat_learning_rate": Field(
        Kind.NUMBER, range=Range(0, 1, lo_inclusive=False), applies_to=_TFLITE, meaning="QAT learning rate"
    ),
    "float_layers": Field(
        Kind.STRINGS, applies_to=_TFLITE,
        meaning="layers kept in float inside a full-int8 model: Keras layer class names or layer-name patterns",
    ),
    "float_ops": Field(Kind.STRINGS, applies_to=_TFLITE, meaning="TFLite ops kept in float (e.g. SQRT) inside a full-int8 model"),
    # coreml
    "compute_precision": Field(Kind.STRING, choices=PRECISIONS, applies_to=_COREML, meaning="Core ML compute precision"),
    "weight_compression": Field(Kind.STRING, choices=Compression, applies_to=_COREML, meaning="Core ML weight compression"),
    "palettize_nbits": Field(Kind.INTEGER, choices=PALETTIZE_NBITS, applies_to=_COREML, meaning="bits per palettized weight"),
    # verification acceptance (both formats)
    "max_accuracy_drop_pp": Field(Kind.NUMBER, range=Range(0, 100), meaning="percentage points of test accuracy"),
    "min_agreement": Field(Kind.NUMBER, range=Range(0, 1), meaning="top-1 agreement with the float model, 0 to 1"),
}


@dataclass(frozen=True)
class QuantRecipe:
    name: str
    description: str
    format: RecipeFormat
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
    # selective quantization: an island kept in float inside a full-int8 model (QuantizationDebugger's
    # denylists); layers by class or layer name, shell patterns allowed (`L2Pooling*`, `b*_l2pool`), ops by TFLite name
    float_layers: tuple[str, ...] = ()
    float_ops: tuple[str, ...] = ()
    compute_precision: str = "float16"
    weight_compression: Compression = Compression.NONE
    palettize_nbits: int = 4
    # verification acceptance for quantized exports (float32 is judged by atol/rtol instead)
    max_accuracy_drop_pp: float = 1.0
    min_agreement: float = 0.98

    @property
    def full_integer(self) -> bool:
        return self.format is RecipeFormat.TFLITE and self.activations == "int8"

    @property
    def is_float32(self) -> bool:
        return self.format is RecipeFormat.TFLITE and self.weights == "float32" and self.activations == "float32"

    @property
    def qat(self) -> bool:
        return self.qat_epochs > 0

    @property
    def selective(self) -> bool:
        """Full int8 with an island of layers / ops kept in float."""
        return bool(self.float_layers or self.float_ops)

    @property
    def compressed(self) -> bool:
        """Core ML weights stored compressed (8-bit linear or palettized)."""
        return self.format is RecipeFormat.COREML and self.weight_compression is not Compression.NONE

    def to_dict(self) -> dict[str, object]:
        """Every field as plain JSON values (enums as their strings, the path as a string)."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, enum.Enum):
                d[k] = v.value
            elif isinstance(v, tuple):
                d[k] = list(v)
        d["path"] = str(self.path)
        return d

    def settings(self) -> dict[str, object]:
        """The fields that mean something for this recipe's format (what `recipes show` prints)."""
        return {k: v for k, v in self.to_dict().items() if k not in SCHEMA or applies(k, self.format)}

    @property
    def weights_label(self) -> str:
        """`int8 per-tensor`, `float16`, `float16 (palettize 6-bit)` ... for tables."""
        if self.format is not RecipeFormat.TFLITE:
            w = self.weight_compression.value
            if self.weight_compression is Compression.PALETTIZE:
                w += f" {self.palettize_nbits}-bit"
            return f"{self.compute_precision} ({w})"
        return f"int8 per-{'channel' if self.per_channel else 'tensor'}" if self.weights == "int8" else self.weights

    # ------------------------------------------------------------ Core ML rules (the one place)

    def coreml_min_target(self) -> DeploymentTarget:
        """The oldest Core ML deployment target that can hold this recipe's weights."""
        target = COMPRESSION_MIN_TARGET[self.weight_compression]
        if self.weight_compression is Compression.PALETTIZE and self.palettize_nbits == 3:
            target = max(target, PALETTIZE_3BIT_MIN_TARGET)
        return target

    def coreml_target_problem(self, target: DeploymentTarget) -> str | None:
        """Why a Core ML model for deployment `target` cannot be made with this recipe, or None."""
        if self.format is not RecipeFormat.COREML:
            return f"recipe {self.name} is a {self.format.value} recipe, not a Core ML one"
        comp = self.weight_compression
        if comp is not Compression.NONE and target < COMPRESSION_MIN_TARGET[comp]:
            return (
                f"recipe {self.name} compresses weights ({comp.value}), which needs "
                f"{COMPRESSION_MIN_TARGET[comp].name} or later; the deployment target is {target.name}"
            )
        if comp is Compression.PALETTIZE and self.palettize_nbits == 3 and target < PALETTIZE_3BIT_MIN_TARGET:
            return (
                f"recipe {self.name}: 3-bit palettization needs {PALETTIZE_3BIT_MIN_TARGET.name} or later; "
                f"the deployment target is {target.name}"
            )
        return None

    def default_coreml_target(self) -> DeploymentTarget:
        """The target to export for when none is given: iOS15 (the first ML Program), or the oldest
        target the compression needs (iOS16; iOS18 for 3-bit palettes)."""
        return max(DeploymentTarget.iOS15, self.coreml_min_target())


def applies(key: str, fmt: RecipeFormat | str) -> bool:
    """Whether recipe key `key` means something for format `fmt`."""
    f = SCHEMA.get(key)
    return f is None or f.applies_to is None or str(fmt) in f.applies_to


# ---------------------------------------------------------------- finding recipes


def recipes_dir() -> Path:
    return data_dir("quantization")


def recipe_names() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.toml"))


def list_recipes() -> list[QuantRecipe]:
    """Every shipped recipe, sorted by name."""
    return [load_recipe_file(p) for p in sorted(recipes_dir().glob("*.toml"))]


def _looks_like_path(text: str) -> bool:
    return text.endswith(".toml") or "/" in text or os.sep in text


def load_recipe(name_or_path: str | Path | QuantRecipe) -> QuantRecipe:
    """A recipe by shipped name (`int8`) or by path to a .toml file; a QuantRecipe is returned as it is."""
    if isinstance(name_or_path, QuantRecipe):
        return name_or_path
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or _looks_like_path(text) or Path(text).is_file():
        path = Path(text)
        if not path.exists():
            raise RecipeError(
                f"{WHAT} {path}: no such file", "check the path, or use a shipped name (`edgepool recipes list`)"
            )
        return load_recipe_file(path)
    shipped = recipes_dir() / f"{text}.toml"
    if not shipped.is_file():
        names = recipe_names()
        close = config.did_you_mean(text, names)
        hint = (f"did you mean {close!r}? " if close else "") + f"shipped: {', '.join(names)}; or pass a .toml path"
        raise RecipeError(f"unknown recipe {text!r}", hint)
    return load_recipe_file(shipped)


def load_recipe_file(path: str | Path) -> QuantRecipe:
    """Read and fully check one recipe file; raises RecipeError naming the file and key."""
    path = Path(path)
    values = config.load_table(path, SCHEMA, error=RecipeError, what=WHAT, variant="format")
    for key in ("float_layers", "float_ops"):
        if key in values:
            values[key] = tuple(values[key])
    recipe = QuantRecipe(name=path.stem, path=path, **values)
    _check_consistent(recipe, set(values), Origin(path, RecipeError, WHAT))
    return recipe


def _check_consistent(r: QuantRecipe, given: set[str], origin: Origin) -> None:
    """Rules between keys (each key alone was checked by the schema)."""
    if r.format is RecipeFormat.COREML:
        if "palettize_nbits" in given and r.weight_compression is not Compression.PALETTIZE:
            raise origin.fail(
                "palettize_nbits", 'applies to weight_compression = "palettize" only',
                'remove palettize_nbits, or set weight_compression = "palettize"',
            )
        return
    if r.activations == "int8" and r.weights != "int8":
        raise origin.fail("activations", "int8 activations need int8 weights", 'set weights = "int8"')
    if r.activations == "float32":
        for key in ("input_type", "output_type"):
            if getattr(r, key) != "float32":
                raise origin.fail(
                    key, 'integer input/output needs activations = "int8"',
                    'use float32 input/output, or full-integer activations (activations = "int8")',
                )
    if not r.per_channel and r.weights != "int8":
        raise origin.fail("per_channel", "per_channel applies to int8 weights only", 'remove per_channel, or set weights = "int8"')
    if r.qat and not r.per_channel:
        raise origin.fail(
            "per_channel", "QAT fake-quantizes conv weights per channel (TFMOT's default scheme)",
            "remove per_channel = false from a QAT recipe; per-tensor is for post-training recipes",
        )
    if r.selective and not r.full_integer:
        key = "float_layers" if r.float_layers else "float_ops"
        raise origin.fail(key, "keeps an island in float inside a full-int8 model, which needs int8 activations",
                          'set activations = "int8", or remove the key')
    if r.selective and r.qat:
        key = "float_layers" if r.float_layers else "float_ops"
        raise origin.fail(key, "selective float islands apply to post-training int8 only",
                          "remove qat_epochs, or the float island")
    if r.qat and r.activations != "int8":
        raise origin.fail("qat_epochs", "QAT (qat_epochs > 0) needs full-integer activations", 'set activations = "int8"')

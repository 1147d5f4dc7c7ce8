"""Predict: run an export on image files with the export's own input size, normalization and labels.

What an app does with an export, done on this machine, so an export can be checked by eye and the
example apps (`examples/`) have a reference to compare with:

1. the export's sidecar (`model.json`, or the copy embedded in a lone `.tflite`) gives the labels, the
   input size and channels, and the normalization `x = raw * scale + offset`;
2. each image is read the way `edgepool train` reads an image folder (`datasets._to_array`: 16-bit and
   float images scaled to 0..255, alpha composited on white, converted to grayscale or RGB, resized
   bilinearly to the input size);
3. the model runs where `verify` runs it: a `.tflite` in LiteRT in a child process (`verify.run_tflite_child`;
   an Edge TPU export's CPU model, as the Edge TPU is not here), a Core ML package in Core ML on macOS and
   in the NumPy MIL executor elsewhere (`verify.coreml`). So on the same images its predictions are
   `verify`'s predictions.

Scores are shown as probabilities: a softmax over logits (TFLite exports output logits), or the
classifier's own probabilities (Core ML). The order of the classes is the order of the raw outputs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import IMAGE_SUFFIXES, NAMED_FILES_LIMIT, _to_array, name_files
from .errors import DataError, InputError, ModelError
from .numeric import normalize, softmax
from .runs import SIDECAR, load_export
from .types import Format

EXECUTORS = ("auto", "coreml", "numpy-mil")


@dataclass
class ExportModel:
    """The model file to run and the sidecar that says how to feed it."""

    model_file: Path  # what runs here (an Edge TPU export: its CPU model)
    sidecar: dict[str, Any]
    source: str  # where the sidecar came from: "model.json" | "embedded metadata"

    @property
    def format(self) -> Format:
        return Format(self.sidecar["format"])

    @property
    def labels(self) -> list[str]:
        return [str(v) for v in self.sidecar["labels"]]

    def geometry(self) -> tuple[int, int, int]:
        """(height, width, channels) of the model's input."""
        inp = self.sidecar["input"]
        shape = [int(d) for d in inp["shape"]]
        if len(shape) == 3:
            shape = [1, *shape]
        if len(shape) != 4:
            raise ModelError(f"{self.model_file}: input shape {shape} is not an image batch",
                             "predict runs image classifiers (input N x H x W x C)")
        if inp.get("layout") == "NCHW":
            return shape[2], shape[3], shape[1]
        return shape[1], shape[2], shape[3]

    @property
    def normalization(self) -> tuple[float | list[float], float | list[float]]:
        """(scale, offset): numbers, or one per channel (e.g. imagenet's mean/std)."""
        n = self.sidecar["normalization"]

        def value(v: float | list[float]) -> float | list[float]:
            return [float(e) for e in v] if isinstance(v, list) else float(v)

        return value(n["scale"]), value(n["offset"])


def open_export(path: str | Path) -> ExportModel:
    """An export folder, the model file in one, or a lone `.tflite` carrying edgepool metadata."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist", "pass an export folder (written by export or convert) or its model file")
    folder = p if p.is_dir() and p.suffix != ".mlpackage" else p.parent
    if (folder / SIDECAR).is_file():
        export = load_export(folder)
        side = export.sidecar
        model = export.verify_file if Format(side["format"]) is Format.EDGETPU_TFLITE else export.model_file
        if p != folder and p.resolve() not in (export.model_file.resolve(), export.verify_file.resolve()):
            raise InputError(f"{p} is not the model {folder / SIDECAR} describes ({side['file']})",
                             "pass the export folder, or the model file it names")
        if not model.exists():
            raise ModelError(f"{model} is missing (named in {folder / SIDECAR})", "re-export the model")
        return ExportModel(model, side, SIDECAR)
    if p.is_file() and p.suffix == ".tflite":
        from .export import metadata

        try:
            side = metadata.read(p.read_bytes())
        except Exception:  # noqa: BLE001 - the flatbuffer reader raises many kinds on a broken file
            raise ModelError(f"{p} is not a readable .tflite model", "re-export it; the file is corrupt or not a .tflite") from None
        if side is not None:
            return ExportModel(p, side, "embedded metadata")
        raise ModelError(f"{p} carries no edgepool metadata (labels, input size, normalization)",
                         "import it into a run first, so its labels and normalization are recorded")
    raise ModelError(f"{p} is not an edgepool export (no {SIDECAR} beside it)",
                     "pass a folder written by export or convert, or its model file")


def image_files(inputs: list[str | Path]) -> list[tuple[Path, Path | None]]:
    """Every image to classify, in order: (file, the folder it was found in, or None when named directly).
    A folder gives its image files (by suffix), sorted, sub-folders included."""
    out: list[tuple[Path, Path | None]] = []
    if not inputs:
        raise InputError("no images given", "pass image files or a folder of images")
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise InputError(f"image {p} does not exist", "check the path")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise InputError(f"folder {p} holds no images", f"images are files named {', '.join(sorted(IMAGE_SUFFIXES))}")
            out += [(f, p) for f in found]
        else:
            out.append((p, None))
    return out


def load_images(files: list[Path], size: tuple[int, int], channels: int) -> np.ndarray:
    """Raw uint8 N x H x W x C pixels of `files`, prepared as `edgepool train` prepares an image folder."""
    from PIL import Image, UnidentifiedImageError

    x = np.empty((len(files), size[0], size[1], channels), np.uint8)
    bad: list[tuple[str, str]] = []
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im.load()
                x[i] = _to_array(im, channels, size)
        except UnidentifiedImageError:
            bad.append((str(f), "not an image format Pillow can read"))
        except (OSError, ValueError, SyntaxError) as e:
            bad.append((str(f), f"{type(e).__name__}: {str(e).replace(str(f), f.name)}"))
    if bad:
        first = "" if len(bad) > NAMED_FILES_LIMIT else f" ({'first: ' if len(bad) > 1 else ''}{bad[0][1]})"
        raise DataError(f"cannot read {len(bad)} image{'s' if len(bad) > 1 else ''}: {name_files([b[0] for b in bad])}{first}",
                        "pass image files Pillow can open (PNG, JPEG, BMP, ...)")
    return x


def scores(model: ExportModel, x_raw: np.ndarray, executor: str = "auto") -> tuple[np.ndarray, str, str]:
    """The model's outputs on raw pixels: (scores N x K, "logits" | "probabilities", what ran it)."""
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor {executor!r}", f"use one of {', '.join(EXECUTORS)}")
    if model.format.is_tflite:
        from .verify import run_tflite_child

        scale, offset = model.normalization
        out = run_tflite_child(model.model_file, normalize(x_raw, scale, offset))
        kind = str(model.sidecar.get("output_kind") or "logits")
        return out.reshape(len(x_raw), -1), kind, "litert-interpreter (child process)"
    from .verify.coreml import coreml_probabilities, mil_scores, unverified_hint
    from .verify.mil import UnsupportedOp

    if executor == "auto":
        executor = "coreml" if sys.platform == "darwin" else "numpy-mil"
    if executor == "coreml":
        if sys.platform != "darwin":
            raise InputError("Core ML itself runs only on macOS", "use the NumPy MIL executor here")
        return coreml_probabilities(model.model_file, x_raw, model.labels), "probabilities", "coreml"
    try:
        out, kind = mil_scores(model.model_file, x_raw)
    except UnsupportedOp as e:
        raise ModelError(f"{model.model_file} cannot run here: op {e.op_type}", unverified_hint(f"op {e.op_type}")) from None
    return out, kind, "numpy-mil"


@dataclass
class ImagePrediction:
    """One image: its top classes, best first, and the class its folder names (when it names one)."""

    path: str
    top: list[dict[str, Any]]  # {"label", "index", "score"}: score is a probability
    expected: str | None = None

    @property
    def label(self) -> str:
        return str(self.top[0]["label"])

    @property
    def correct(self) -> bool | None:
        return None if self.expected is None else self.expected == self.label

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "label": self.label, "score": self.top[0]["score"], "top": self.top,
                "expected": self.expected, "correct": self.correct}


@dataclass
class PredictResult:
    """Predictions of one export on a list of images."""

    export: str
    model_file: str
    format: str
    recipe: str | None
    executor: str
    scores_kind: str  # what the model outputs: "logits" (softmaxed for `score`) | "probabilities"
    input: dict[str, Any]  # height, width, channels, normalization
    labels: list[str]
    predictions: list[ImagePrediction]
    notes: list[str] = field(default_factory=list)
    scores: np.ndarray | None = field(default=None, repr=False)  # the raw outputs, N x K (not in to_dict)

    @property
    def indices(self) -> np.ndarray:
        """Top-1 class index per image (the argmax of the raw outputs)."""
        return np.array([p.top[0]["index"] for p in self.predictions], np.int64)

    @property
    def accuracy(self) -> float | None:
        """Share of images whose top-1 class is the one their folder names (None unless every image has one)."""
        if not self.predictions or any(p.expected is None for p in self.predictions):
            return None
        return float(np.mean([bool(p.correct) for p in self.predictions]))

    def to_dict(self) -> dict[str, Any]:
        return {"export": self.export, "model_file": self.model_file, "format": self.format, "recipe": self.recipe,
                "executor": self.executor, "scores": self.scores_kind, "input": self.input, "labels": self.labels,
                "images": len(self.predictions), "accuracy": self.accuracy, "notes": self.notes,
                "predictions": [p.to_dict() for p in self.predictions]}


def top_k(row: np.ndarray, probs: np.ndarray, labels: list[str], k: int) -> list[dict[str, Any]]:
    """The k best classes of one output row, best first (ties: the lower index first, as argmax)."""
    order = np.argsort(-row, kind="stable")[:k]
    return [{"label": labels[i] if i < len(labels) else str(int(i)), "index": int(i), "score": float(probs[i])} for i in order]


def predict(export: str | Path, images: list[str | Path], *, top_k_classes: int = 3, executor: str = "auto") -> PredictResult:
    """Classify `images` (files, or folders of them) with the export at `export`; see the module doc.

    An image inside a folder that was given, whose parent folder is named like a class (an image folder as
    `edgepool train` reads one), gets that class as `expected`, and the result its `accuracy`."""
    if top_k_classes < 1:
        raise InputError(f"the number of classes to show per image must be >= 1 (got {top_k_classes})", "ask for 1 or more")
    model = open_export(export)
    files = image_files(images)
    h, w, c = model.geometry()
    if c not in (1, 3):
        raise ModelError(f"{model.model_file}: the input has {c} channels", "predict feeds grayscale (1) or RGB (3) images")
    x = load_images([f for f, _ in files], (h, w), c)
    out, kind, ran = scores(model, x, executor)
    labels = model.labels
    if out.shape[1] != len(labels):
        raise ModelError(f"{model.model_file} outputs {out.shape[1]} scores for {len(labels)} labels",
                         "re-export the model: its model.json does not match it")
    probs = softmax(out) if kind == "logits" else np.asarray(out, np.float64)
    k = min(top_k_classes, len(labels))
    preds = []
    for (f, root), row, pr in zip(files, out, probs, strict=True):
        expected = f.parent.name if root is not None and f.parent != root and f.parent.name in labels else None
        preds.append(ImagePrediction(str(f), top_k(row, pr, labels, k), expected))
    notes = []
    if model.format is Format.EDGETPU_TFLITE:
        notes.append(f"ran the CPU model the Edge TPU model was compiled from ({model.model_file.name}): there is no Edge TPU here")
    if model.format is Format.COREML and ran == "numpy-mil":
        notes.append("Core ML runs only on macOS: the package ran in edgepool's NumPy MIL executor")
    scale, offset = model.normalization
    return PredictResult(
        export=str(export), model_file=str(model.model_file), format=model.format.value,
        recipe=model.sidecar.get("recipe"), executor=ran, scores_kind=kind,
        input={"height": h, "width": w, "channels": c, "dtype": model.sidecar["input"].get("dtype"),
               "normalization": {"scale": scale, "offset": offset}, "resize": "bilinear", "sidecar": model.source},
        labels=labels, predictions=preds, notes=notes, scores=np.asarray(out, np.float32))

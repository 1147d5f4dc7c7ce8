"""A user's model -> a run directory, recorded the way a trained run is, so every later command works on it.

    result = import_model("net.onnx", load_dataset("digits"), "runs/net", normalize="0..1")
    result.run                       # a Run: export / convert / verify / benchmark / evaluate take it

The model is parsed, converted and run in a child process (`_child.py`); this process reads only a few
bytes of it (`detect`). The run holds the same files as a trained run: `data/test.npz` (the held-out
split), `data/calib.npz` (from the training split), the labels, the input size and normalization, and
a model every command loads without the user's code: `model.keras` (a tf_keras model loaded in safe
mode, no custom classes) or `model.savedmodel` (a tf_keras SavedModel wrapping the traced graph: Keras 3,
SavedModel, ONNX via onnx2tf, or a Keras model with custom layers or code). An ONNX file is kept in
`source/` because verification compares exports with onnxruntime; a `.tflite` is not converted again:
it becomes the run's one export, `exports/imported/`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import runs, schemas
from ..errors import DataError, InputError, ModelError
from ..numeric import normalize as apply_normalization
from ..runs import Run
from ..types import ProgressEvent, ProgressFn
from .detect import KERAS2, KERAS3, ONNX, SAVEDMODEL, TFLITE, Detected, detect

if TYPE_CHECKING:
    from ..datasets import Dataset

SOURCE_DIR = "source"
IMPORTED_EXPORT = "imported"
ONNX_EXTRA_HINT = "pip install 'edgepool[onnx]'"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORMALIZATIONS = ("0..1", "-1..1", "imagenet", "SCALE,OFFSET")
CHILD_TIMEOUT_S = 1800


class UnsafeModelError(ModelError):
    """The model holds code that safe loading refuses (a Lambda layer, embedded functions)."""


class CustomObjectError(ModelError):
    """The model uses a class that is not known without the user's code."""


# ------------------------------------------------------------------------------------------ normalization


def parse_normalization(text: str, channels: int) -> dict[str, Any]:
    """`0..1` | `-1..1` | `imagenet` | `SCALE,OFFSET` -> {"name", "scale", "offset"} (model input = raw * scale + offset,
    raw pixels 0..255). `imagenet` is per channel (RGB), so its scale and offset are lists."""
    t = text.strip().lower().replace(" ", "")
    if t in ("0..1", "0-1", "0,1"):
        return {"name": "0..1", "scale": 1.0 / 255.0, "offset": 0.0}
    if t in ("-1..1", "-1-1"):
        return {"name": "-1..1", "scale": 2.0 / 255.0, "offset": -1.0}
    if t == "imagenet":
        if channels != 3:
            raise InputError(f"imagenet normalization is per RGB channel; the data has {channels} channel(s)",
                             "use 0..1, -1..1 or SCALE,OFFSET for non-RGB data, or load the data with 3 channels")
        return {"name": "imagenet", "scale": [1.0 / (255.0 * s) for s in IMAGENET_STD],
                "offset": [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]}
    parts = t.split(",")
    try:
        scale, offset = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"normalization {text!r} is not one of {', '.join(NORMALIZATIONS)}",
                         "e.g. 0..1 (raw / 255), -1..1, imagenet, or 0.00392,0 for raw * 0.00392 + 0") from None
    if not np.isfinite(scale) or not np.isfinite(offset) or scale == 0:
        raise InputError(f"normalization {text!r} needs a finite non-zero scale and a finite offset", "e.g. 0.00392,0")
    return {"name": f"{scale},{offset}", "scale": scale, "offset": offset}


def read_labels(path: str | Path) -> list[str]:
    p = Path(path)
    try:
        lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError:
        raise InputError(f"labels file {p} does not exist", "check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read labels file {p} ({e})", "pass a UTF-8 text file, one class name a line") from None
    labels = [ln for ln in lines if ln]
    if not labels:
        raise InputError(f"labels file {p} is empty", "write one class name a line, in the model's output order")
    if len(set(labels)) != len(labels):
        raise InputError(f"labels file {p} names a class twice", "one class name a line, each once")
    return labels


# ------------------------------------------------------------------------------------------ the child


@dataclass
class ChildResult:
    facts: dict[str, Any]
    work: Path


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # hidden (sys.modules entry None) or broken
        return False


def onnx_available() -> None:
    missing = [m for m in ("onnx", "onnx2tf", "onnxruntime") if not _installed(m)]
    if missing:
        raise InputError(f"importing ONNX models needs the onnx extra ({', '.join(missing)} not installed)", ONNX_EXTRA_HINT)


def run_child(request: dict[str, Any], x: np.ndarray, work: Path, what: str, timeout: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Run `_child.py` on `request` with inputs `x` in folder `work`; its facts, or the error it reports."""
    np.save(work / "x.npy", np.ascontiguousarray(x, np.float32))
    (work / "request.json").write_text(json.dumps(request))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
           "CUDA_VISIBLE_DEVICES": "-1", "PYTHONUNBUFFERED": "1"}
    try:
        p = subprocess.run([sys.executable, "-m", "edgepool.importers._child", str(work / "request.json")],
                           capture_output=True, text=True, timeout=timeout, env=env, cwd=os.getcwd())
    except subprocess.TimeoutExpired:
        raise ModelError(f"{what} did not finish within {timeout:.0f} s", "the model may be too large, or crafted to hang") from None
    result_file = work / "result.json"
    if not result_file.is_file():
        if p.returncode < 0:
            try:
                sig = signal.Signals(-p.returncode).name
            except ValueError:
                sig = f"signal {-p.returncode}"
            raise ModelError(f"{what} crashed the loader ({sig}); nothing was written",
                             "the file may be corrupt or crafted; re-export it from its framework")
        tail = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1][:240]
        raise ModelError(f"{what} failed in the loader process: {tail}", "the file may be corrupt; re-export it")
    res = json.loads(result_file.read_text())
    if res.get("ok"):
        return res
    code, message, hint = res.get("code"), res.get("message", "failed"), res.get("hint")
    if code == "unsafe":
        raise UnsafeModelError(message, hint)
    if code == "custom":
        raise CustomObjectError(message, hint)
    if code in ("shape", "size", "channels", "layout"):
        err = DataError(message, hint)
        err.fix = dict(res.get("fix") or {})  # type: ignore[attr-defined]  # the data option that fixes it
        raise err
    if code == "crash":
        if os.environ.get("EDGEPOOL_DEBUG_IMPORT"):
            sys.stderr.write(res.get("traceback", ""))
        raise ModelError(f"{what} could not be imported ({message})", "the model may use something the converter does not handle")
    raise ModelError(message, hint)


def reference_outputs(kind: str, model_file: Path, x: np.ndarray, layout: str = "NCHW") -> np.ndarray:
    """The source runtime's outputs over `x` (normalized NHWC), in a child: onnxruntime for ONNX, LiteRT for .tflite."""
    if kind == ONNX:
        onnx_available()
    with tempfile.TemporaryDirectory(prefix="edgepool-reference-") as tmp:
        run_child({"op": "reference", "kind": kind, "path": str(Path(model_file).absolute()), "layout": layout}, x,
                  Path(tmp), f"model {Path(model_file).name}")
        return np.load(Path(tmp) / "source_logits.npy")


# ------------------------------------------------------------------------------------------ import


@dataclass
class ImportResult:
    run: Run
    detected: Detected
    notes: list[str] = field(default_factory=list)

    @property
    def source(self) -> dict[str, Any]:
        return dict(self.run.manifest["source"])


def _remap_labels(ds: Dataset, labels: list[str] | None, classes: int) -> tuple[list[str], np.ndarray]:
    if labels is None:
        if len(ds.labels) != classes:
            raise DataError(f"the model has {classes} outputs, data {ds.name} has {len(ds.labels)} classes",
                            "pass the model's labels file (one class a line, in output order) or data with the model's classes")
        return list(ds.labels), ds.y
    if len(labels) != classes:
        raise DataError(f"the labels file names {len(labels)} classes, the model has {classes} outputs",
                        "one class name a line, in the model's output order")
    index = {name: i for i, name in enumerate(labels)}
    missing = [name for name in ds.labels if name not in index]
    if missing:
        raise DataError(f"data class(es) {', '.join(missing[:5])} of {ds.name} are not among the model's labels",
                        "name the data's class folders as in the labels file")
    table = np.array([index[name] for name in ds.labels], np.int64)
    return list(labels), table[ds.y]


def import_model(
    model: str | Path,
    dataset: Dataset,
    out: str | Path,
    *,
    labels: list[str] | None = None,
    normalization: str = "0..1",
    custom_objects: list[str] | None = None,
    unsafe_load: bool = False,
    force: bool = False,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    calibration_samples: int = 500,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Make the run `out` from an existing model file and data set (refused before any work if `out` exists,
    unless `force`; a folder that is not a run is never replaced).

    The data is split as `train` splits it (seed, fractions); the test split and calibration samples
    (from the training split) are stored, and the model's input size, channels and layout are checked
    against the data (a mismatch is an error, never a reshape).
    """
    from ..datasets import split
    from ..training import evaluate_logits, package_versions

    t0 = time.perf_counter()
    found = detect(model)
    if found.kind == ONNX:
        onnx_available()
    if custom_objects and found.kind not in (KERAS2, KERAS3):
        raise InputError(f"custom objects apply to Keras models; {found.path.name} is {found.description}",
                         "drop the custom objects for this model")
    out = Path(out)
    runs.plan_replace(out)  # a folder that is not a run: refused now
    runs.refuse_existing(out, force, "run")
    norm = parse_normalization(normalization, dataset.input_shape[2])
    sp = split(dataset, seed, val_fraction, test_fraction)
    rng = np.random.default_rng(seed + 1)
    calib = np.sort(rng.choice(sp.train, size=min(calibration_samples, len(sp.train)), replace=False))
    x_test = apply_normalization(dataset.x[sp.test], norm["scale"], norm["offset"])

    def step(i: int, message: str) -> None:
        if progress:
            progress(ProgressEvent("import", i, 3, message))

    step(0, f"loading {found.description} in a child process")
    with tempfile.TemporaryDirectory(prefix="edgepool-import-") as tmp:
        work = Path(tmp)
        request = {"op": "import", "kind": found.kind, "path": str(found.path.absolute()),
                   "data_shape": list(dataset.input_shape), "custom_objects": list(custom_objects or []), "unsafe": unsafe_load}
        facts = run_child(request, x_test, work, f"model {found.path.name}")
        step(1, "checking the run model against the source")
        src, conv = np.load(work / "source_logits.npy"), np.load(work / "run_logits.npy")
        classes = int(facts["classes"])
        run_labels, y_all = _remap_labels(dataset, labels, classes)
        y_test = y_all[sp.test]
        parity = {
            "samples": int(len(y_test)),
            "max_abs_diff": float(np.max(np.abs(src - conv))) if src.size else 0.0,
            "agreement": float(np.mean(src.argmax(1) == conv.argmax(1))) if src.size else 1.0,
        }
        if not np.allclose(conv, src, atol=1e-4, rtol=1e-5):
            raise ModelError(f"the converted model differs from {found.path.name} by up to {parity['max_abs_diff']:.3g} "
                             f"on the test split (top-1 agreement {parity['agreement']:.1%})",
                             "the converter changed the model's numerics; report the model to the converter's authors")
        metrics = evaluate_logits(src, y_test, classes)
        notes = list(facts.get("notes") or [])
        probs = bool(src.size) and bool(np.all(src >= 0)) and bool(np.allclose(src.sum(1), 1, atol=1e-3))
        chance = 1.0 / max(classes, 1)
        if metrics["accuracy"] is not None and metrics["accuracy"] < min(1.0, 2 * chance):
            notes.append(f"test accuracy {metrics['accuracy']:.1%} is near chance ({chance:.0%}): check the normalization "
                         "and the labels' order")
        step(2, "writing the run")
        if facts.get("detected_kind"):  # the child read what the file's own metadata says (a Keras 3 .h5)
            found = Detected(found.path, facts["detected_kind"], found.keras_version)
        source = {
            "kind": found.kind,
            "description": found.description,
            "file": str(found.path.absolute()),
            "name": found.path.name,
            "sha256": runs.tree_sha256(found.path),
            "size_bytes": runs.tree_size(found.path),
            "keras_version": found.keras_version,
            "layout": facts["layout"],
            "input_shape": facts["input_shape"],
            "output_kind": "probabilities" if probs else "logits",
            "reference": facts["reference"],
            "converted_with": facts.get("tool"),
            "loaded_with": {"safe_mode": not unsafe_load, "custom_objects": list(custom_objects or [])},
            "qat": facts.get("qat") is None,
            "qat_unavailable": facts.get("qat"),
            "parity": parity,
            "stored": None,
        }
        if unsafe_load:
            notes.append("loaded with unsafe load: Python code stored in the model (Lambda layers, functions) was allowed to run")
        if found.kind == ONNX:
            source["stored"] = f"{SOURCE_DIR}/{found.path.name}"
        data = {**dataset.describe(), "labels": run_labels, "split": sp.describe(), "calibration_samples": int(len(calib))}
        if labels is not None:
            data["class_counts"] = np.bincount(y_all, minlength=classes).tolist()
        input_spec = {
            "height": dataset.input_shape[0], "width": dataset.input_shape[1], "channels": dataset.input_shape[2],
            "dtype": "float32", "scale": norm["scale"], "offset": norm["offset"],
            "formula": "x = raw * scale + offset, raw in 0..255", "normalization": norm["name"], "layout": "NHWC",
            "augment_max_shift_px": 0,
        }
        run_file = facts.get("run_model")
        files = {"model": run_file, "test_data": runs.TEST_DATA, "calibration_data": runs.CALIB_DATA}
        if found.kind == TFLITE:
            files["export"] = f"{runs.EXPORTS}/{IMPORTED_EXPORT}"
        manifest = {
            "schema_version": 1,
            "kind": "edgepool-run",
            "name": out.name,
            "created": _now(),
            "edgepool_version": _version(),
            "model": {"file": run_file, "spec": None, "params": facts.get("params"), "macs": None, "imported": True},
            "source": source,
            "data": data,
            "input": input_spec,
            "training": {"imported": True, "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
                         "calibration_samples": calibration_samples, "epochs_run": 0, "best_epoch": 0, "interrupted": False},
            "metrics": {"test_accuracy": metrics["accuracy"], "val_accuracy": None,
                        "per_class_accuracy": metrics["per_class_accuracy"], "confusion_matrix": metrics["confusion_matrix"],
                        "measured_with": facts["reference"]},
            "timings": {"import_s": time.perf_counter() - t0, "train_s": 0.0, "total_s": time.perf_counter() - t0},
            "versions": package_versions(),
            "notes": notes,
            "files": files,
        }

        def save_model(path: Path) -> None:
            d = path.parent  # the staging folder of the run
            if run_file:
                shutil.move(str(work / run_file), str(d / run_file))
            if found.kind == ONNX:
                (d / SOURCE_DIR).mkdir()
                shutil.copy2(found.path, d / SOURCE_DIR / found.path.name)
            if found.kind == TFLITE:
                _write_tflite_export(d, found, facts, run_labels, input_spec, metrics["accuracy"], manifest)

        run = runs.write_run(
            out, manifest=manifest, save_model=save_model,
            arrays={runs.TEST_DATA: {"x": dataset.x[sp.test], "y": y_test},
                    runs.CALIB_DATA: {"x": dataset.x[calib], "y": y_all[calib]}},
            files={}, records={}, force=force,
        )
    step(3, "done")
    return ImportResult(run, found, notes)


def _write_tflite_export(run_dir: Path, found: Detected, facts: dict[str, Any], labels: list[str], input_spec: dict[str, Any],
                         accuracy: float | None, manifest: dict[str, Any]) -> None:
    """An imported .tflite is the run's one export, as `runs.save_export` lays exports out (not converted again)."""
    d = run_dir / runs.EXPORTS / IMPORTED_EXPORT
    d.mkdir(parents=True)
    runs.atomic_write_bytes(d / "model.tflite", found.path.read_bytes())
    sidecar = {
        "schema_version": 1,
        "recipe": facts["recipe"],
        "recipe_description": f"imported as is from {found.path.name} (the recipe its tensors look made with)",
        "profile": None,
        "labels": list(labels),
        "normalization": {"scale": input_spec["scale"], "offset": input_spec["offset"], "formula": "x = raw * scale + offset"},
        "source_run": runs.stored_path(run_dir, d),
        "source_data_fingerprint": manifest["data"]["fingerprint"],
        "source_model": {"kind": TFLITE, "name": found.path.name, "sha256": manifest["source"]["sha256"]},
        "model_spec": None,
        "keras_test_accuracy": accuracy,
        "edgepool_version": _version(),
        "created": _now(),
        "format": "tflite",
        "file": "model.tflite",
        "input": facts["tflite_input"],
        "output": facts["tflite_output"],
        "output_kind": manifest["source"]["output_kind"],
        "imported": True,
        "size_bytes": found.path.stat().st_size,
    }
    schemas.check_model_json(sidecar, f"{d / runs.SIDECAR}")  # breaking it is a bug in edgepool
    runs.atomic_write_json(d / runs.SIDECAR, sidecar)
    runs.atomic_write_text(d / runs.LABELS, "\n".join(labels) + "\n")


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _version() -> str:
    from .. import __version__

    return __version__


# ------------------------------------------------------------------------------------------ what later steps ask


def source_record(run: Run) -> dict[str, Any] | None:
    """The manifest's record of the imported model, or None for a trained run."""
    s = run.manifest.get("source")
    return s if isinstance(s, dict) and s.get("kind") else None


def qat_refusal(run: Run) -> str | None:
    """Why quantization-aware training cannot fine-tune this run's model (None: it can)."""
    s = source_record(run)
    if s is None or s.get("qat", True):
        return None
    return f"QAT needs a tf_keras model; run {run.path} was imported from {s.get('name')}, and {s.get('qat_unavailable')}"


def reference_logits(run: Run, x: np.ndarray) -> np.ndarray | None:
    """The source runtime's outputs over `x` for an imported ONNX or .tflite run (None: the run model is the reference)."""
    s = source_record(run)
    if s is None:
        return None
    if s["kind"] == ONNX and s.get("stored"):
        f = run.path / s["stored"]
        if not f.is_file():
            raise ModelError(f"run {run.path} lacks {s['stored']}, the ONNX model exports are verified against",
                             "import the model again")
        return reference_outputs(ONNX, f, x, s.get("layout", "NCHW"))
    if s["kind"] == TFLITE:
        f = run.path / runs.EXPORTS / IMPORTED_EXPORT / "model.tflite"
        if not f.is_file():
            raise ModelError(f"run {run.path} lacks its imported model.tflite", "import the model again")
        return reference_outputs(TFLITE, f, x)
    return None


def reference_name(run: Run) -> str | None:
    """What the reference outputs come from, for the verification record (None: a trained run's Keras model)."""
    s = source_record(run)
    if s is None:
        return None
    if s["kind"] == TFLITE:
        return f"the imported {s['name']} itself ({s['reference']}): accuracy only, no other source to compare with"
    if s["kind"] == ONNX:
        return f"{s['reference']} on {s['name']}"
    return f"the imported {s['description']} {s['name']} (run model, checked against {s['reference']} at import)"


__all__ = [
    "IMPORTED_EXPORT", "KERAS2", "KERAS3", "NORMALIZATIONS", "ONNX", "SAVEDMODEL", "TFLITE", "CustomObjectError",
    "ImportResult", "UnsafeModelError", "import_model", "parse_normalization", "qat_refusal", "read_labels",
    "reference_logits", "reference_name", "source_record",
]

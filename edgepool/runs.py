"""Run-directory layout and manifest. The only module that writes run artifacts.

A run directory::

    RUN/
      manifest.json          the one record of what happened (spec, data, split, metrics, versions, timings)
      model.keras            the trained tf_keras model
      history.json           per-epoch training history
      training_curve.png     loss / accuracy per epoch
      confusion_matrix.png   on the test split
      data/test.npz          raw test split (x uint8 NHWC, y int64) for verification and device accuracy
      data/calib.npz         raw samples from the *training* split, for PTQ calibration
      exports/<name>/        model.tflite | model.mlpackage, model.json sidecar, labels.txt, verify.json
      benchmarks/<stamp>.json

Every write is atomic (temp file + rename); a whole directory is built in a hidden staging folder
beside its target and renamed into place only when complete, so nothing half-written is left behind
and nothing is overwritten without `force`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExistsError, ModelError

MANIFEST = "manifest.json"
MODEL_FILE = "model.keras"
HISTORY = "history.json"
TEST_DATA = "data/test.npz"
CALIB_DATA = "data/calib.npz"
EXPORTS = "exports"
BENCHMARKS = "benchmarks"
SIDECAR = "model.json"
LABELS = "labels.txt"
VERIFY = "verify.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n"


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, to_json(obj))


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ModelError(f"{path} does not exist", "check the path") from None
    except json.JSONDecodeError as e:
        raise ModelError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})", "the file is corrupt; recreate it") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{path} is not valid JSON ({e})", "the file is corrupt or unreadable; recreate it") from None


@contextlib.contextmanager
def staged_dir(target: Path, force: bool = False, what: str = "directory") -> Iterator[Path]:
    """Yield a hidden staging folder; on success it replaces `target` atomically.

    Refuses (ExistsError) when `target` exists and `force` is false, before any work is done.
    On any exception the staging folder is removed and `target` is untouched.
    """
    target = Path(target)
    if target.exists() and not force:
        raise ExistsError(f"{what} {target} already exists", "pass --force to overwrite it, or choose another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.parent / f".{target.name}.staging-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        yield stage
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            os.replace(stage, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


@dataclass
class Run:
    """A finished training run on disk."""

    path: Path
    manifest: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["data"]["labels"])

    @property
    def input_spec(self) -> dict[str, Any]:
        return dict(self.manifest["input"])

    def exports_dir(self) -> Path:
        return self.path / EXPORTS

    def load_model(self) -> Any:
        from .models import load_model

        if not self.model_path.is_file():
            raise ModelError(f"run {self.path} has no {MODEL_FILE}", "train one with `edgepool train --out RUN`")
        return load_model(self.model_path)

    def _npz(self, rel: str) -> tuple[np.ndarray, np.ndarray]:
        p = self.path / rel
        if not p.is_file():
            raise ModelError(f"run {self.path} has no {rel}", "re-run `edgepool train`; the run is incomplete")
        with np.load(p) as z:
            return z["x"], z["y"]

    def test_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Raw test split: x uint8 NHWC, y int64."""
        return self._npz(TEST_DATA)

    def calib_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Raw calibration samples drawn from the training split (never the test split)."""
        return self._npz(CALIB_DATA)

    def normalize(self, x_raw: np.ndarray) -> np.ndarray:
        """Apply the run's recorded normalization: x = raw * scale + offset (float32)."""
        from .datasets import normalize

        return normalize(x_raw, self.input_spec["scale"], self.input_spec["offset"])


def load_run(path: str | Path) -> Run:
    """Open a run directory (or fail with a clear error)."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"run {p} does not exist", "train one with `edgepool train --out RUN`")
    if not p.is_dir():
        raise ModelError(f"{p} is not a run directory", "pass the folder `edgepool train` wrote")
    if not (p / MANIFEST).is_file():
        raise ModelError(f"{p} has no {MANIFEST}: not an edgepool run", "pass the folder `edgepool train` wrote")
    return Run(path=p, manifest=read_json(p / MANIFEST))


def save_run(result: Any, out: str | Path, force: bool = False) -> Run:
    """Write a TrainResult as a complete run directory (atomically; refuses to overwrite without force)."""
    import datetime

    from . import __version__
    from .report.plots import confusion_matrix_png, training_curve_png
    from .training import package_versions

    out = Path(out)
    ds, sp, cfg = result.dataset, result.split, result.config
    with staged_dir(out, force, what="run") as d:
        from ._tf import quiet_stderr

        with quiet_stderr():
            result.model.save(d / MODEL_FILE)
        write_npz(d / TEST_DATA, x=ds.x[sp.test], y=ds.y[sp.test])
        rng = np.random.default_rng(cfg.seed + 1)
        calib = np.sort(rng.choice(sp.train, size=min(cfg.calibration_samples, len(sp.train)), replace=False))
        write_npz(d / CALIB_DATA, x=ds.x[calib], y=ds.y[calib])
        atomic_write_json(d / HISTORY, result.history)
        atomic_write_bytes(d / "training_curve.png", training_curve_png(result.history, f"{result.spec.name} on {ds.name}"))
        atomic_write_bytes(d / "confusion_matrix.png", confusion_matrix_png(result.metrics["test"]["confusion_matrix"], ds.labels))
        manifest = {
            "schema_version": 1,
            "kind": "edgepool-run",
            "name": out.name,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "edgepool_version": __version__,
            "model": {"file": MODEL_FILE, "spec": result.spec.to_dict(), "params": result.metrics["params"], "macs": result.metrics["macs"]},
            "data": {**ds.describe(), "split": sp.describe(), "calibration_samples": int(len(calib))},
            "input": result.input_spec,
            "training": {**vars(cfg), "best_epoch": result.best_epoch, "epochs_run": result.metrics["epochs_run"]},
            "metrics": {
                "test_accuracy": result.metrics["test"]["accuracy"],
                "val_accuracy": result.metrics["val_accuracy"],
                "per_class_accuracy": result.metrics["test"]["per_class_accuracy"],
                "confusion_matrix": result.metrics["test"]["confusion_matrix"],
            },
            "timings": result.timings,
            "versions": package_versions(),
            "files": {
                "model": MODEL_FILE,
                "history": HISTORY,
                "test_data": TEST_DATA,
                "calibration_data": CALIB_DATA,
                "training_curve": "training_curve.png",
                "confusion_matrix": "confusion_matrix.png",
            },
        }
        atomic_write_json(d / MANIFEST, manifest)
    return load_run(out)

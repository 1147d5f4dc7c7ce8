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
      qat/<recipe>/          a quantization-aware fine-tune (`edgepool quantize`)
      exports/<name>/        model.tflite | model_edgetpu.tflite | model.mlpackage | model.mlmodel,
                             model.json sidecar, labels.txt, verify.json
      benchmarks/<stamp>.json

This module owns that layout (`Run`, `Export`) and imports nothing above the storage layer: callers
hand it finished bytes, arrays and records. Paths stored in a manifest or sidecar are relative to
the folder that holds the file, so a run can be moved and used from any working directory.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import schemas
from .errors import ExistsError, ModelError
from .numeric import normalize

MANIFEST = "manifest.json"
QAT = "qat"
MODEL_FILE = "model.keras"
HISTORY = "history.json"
TEST_DATA = "data/test.npz"
CALIB_DATA = "data/calib.npz"
EXPORTS = "exports"
BENCHMARKS = "benchmarks"
SIDECAR = "model.json"
LABELS = "labels.txt"
VERIFY = "verify.json"
EXISTS_HINT = "overwrite it on purpose (force), or choose another output"
# the model file of an export, in the order one is looked for when model.json does not name it
MODEL_FILES = ("model.tflite", "model_edgetpu.tflite", "model.mlpackage", "model.mlmodel")
TRAINING_CURVE = "training_curve.png"
CONFUSION_MATRIX = "confusion_matrix.png"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a saved file gets the mode open() would give it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
        raise ExistsError(f"{what} {target} already exists", EXISTS_HINT)
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




def stored_path(target: Path, base: Path) -> str:
    """How a path is stored in a file that lives in `base`: relative to `base` (works from any cwd)."""
    return os.path.relpath(Path(target).absolute(), Path(base).absolute())


def resolve_stored(text: str, base: Path) -> Path:
    """The inverse of `stored_path`: an absolute path stays, a relative one is taken from `base`."""
    p = Path(text)
    return p if p.is_absolute() else Path(os.path.normpath(Path(base).absolute() / p))


def file_sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def refuse_existing(target: Path, force: bool, what: str) -> None:
    """Fail before any work when `target` exists and `force` is not given."""
    if Path(target).exists() and not force:
        raise ExistsError(f"{what} {target} already exists", EXISTS_HINT)


def tree_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, in name order)."""
    import hashlib

    p = Path(path)
    if not p.is_dir():
        return file_sha256(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(f.relative_to(p).as_posix().encode() + b"\0" + file_sha256(f).encode())
    return h.hexdigest()


def tree_size(path: Path) -> int:
    """Bytes of a file, or of every file under a directory (a .mlpackage)."""
    p = Path(path)
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return p.stat().st_size


@dataclass
class Run:
    """A finished training run on disk."""

    path: Path
    manifest: dict[str, Any]

    @property
    def model_path(self) -> Path:
        """The run's model: model.keras, or the file the manifest names (an imported run's model.savedmodel)."""
        return self.path / ((self.manifest.get("model") or {}).get("file") or MODEL_FILE)

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["data"]["labels"])

    @property
    def input_spec(self) -> dict[str, Any]:
        return dict(self.manifest["input"])

    def exports_dir(self) -> Path:
        return self.path / EXPORTS

    def export_dir(self, name: str) -> Path:
        return self.path / EXPORTS / name

    def exports(self) -> list[Export]:
        """Every finished export of the run (staging folders are skipped), sorted by name."""
        d = self.exports_dir()
        if not d.is_dir():
            return []
        return [load_export(p) for p in sorted(d.iterdir()) if p.is_dir() and not p.name.startswith(".") and (p / SIDECAR).is_file()]

    def benchmarks_dir(self) -> Path:
        return self.path / BENCHMARKS

    def benchmarks(self) -> list[Path]:
        """Saved benchmark result files, oldest first."""
        d = self.benchmarks_dir()
        return sorted(d.glob("*.json"), key=lambda p: p.stat().st_mtime) if d.is_dir() else []

    def qat_dir(self, recipe_name: str) -> Path:
        return self.path / QAT / recipe_name

    def model_sha256(self) -> str:
        self.require_model()
        return tree_sha256(self.model_path)

    @property
    def data_fingerprint(self) -> str | None:
        return self.manifest.get("data", {}).get("fingerprint")

    def require_model(self) -> None:
        if not self.model_path.exists():
            source = self.manifest.get("source") or {}
            if source.get("kind") == "tflite":
                raise ModelError(f"run {self.path} holds an imported .tflite ({source.get('name')}), already converted: "
                                 "there is no model to export again", f"verify, inspect or benchmark {self.path / EXPORTS / 'imported'}")
            raise ModelError(f"run {self.path} has no {self.model_path.name}", "train a model into it first")

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
        return normalize(x_raw, self.input_spec["scale"], self.input_spec["offset"])


def load_run(path: str | Path) -> Run:
    """Open a run directory (or fail with a clear error)."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"run {p} does not exist", "check the path, or train a model into it first")
    if not p.is_dir():
        raise ModelError(f"{p} is not a run directory", "pass the folder `edgepool train` wrote")
    if not (p / MANIFEST).is_file():
        raise ModelError(f"{p} has no {MANIFEST}: not an edgepool run", "pass the folder `edgepool train` wrote")
    return Run(path=p, manifest=read_json(p / MANIFEST))


# the files training writes into a run (replaced with the model)
RUN_FILES = (MANIFEST, MODEL_FILE, HISTORY, TRAINING_CURVE, CONFUSION_MATRIX, TEST_DATA, CALIB_DATA)
RUN_DIRS = ("model.savedmodel", "source")  # what `edgepool import` writes besides RUN_FILES (replaced with the model)


@dataclass
class ReplacePlan:
    """What replacing the run at `path` with a new model removes and what it keeps.

    Removed: the model and everything training wrote with it, and what was derived from the model
    (`exports`, `qat` models: stale once the model changes). Kept, carried into the new run:
    `benchmarks` (the run's history) and `other` files, which edgepool does not know and so never deletes.
    Paths are relative to the run; `exports` and `qat` are folder names.
    """

    path: Path
    exists: bool = False
    exports: list[str] = field(default_factory=list)
    qat: list[str] = field(default_factory=list)
    benchmarks: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    previous_created: str | None = None

    @property
    def kept(self) -> list[str]:
        """Every path carried into the new run."""
        return sorted(self.benchmarks + self.other)

    def summary(self) -> str:
        """One line for people ("" when there is no run to replace)."""
        if not self.exists:
            return ""
        removed = ["the model"]
        if self.exports:
            removed.append(_count(len(self.exports), "export") + f" ({_names(self.exports)})")
        if self.qat:
            removed.append(_count(len(self.qat), "QAT model") + f" ({_names(self.qat)})")
        kept = []
        if self.benchmarks:
            kept.append(_count(len(self.benchmarks), "benchmark result"))
        if self.other:
            kept.append(_count(len(self.other), "other file") + f" ({_names(self.other)})")
        return (f"replacing run {self.path}: removing {_and(removed)}; "
                + (f"keeping {_and(kept)}" if kept else "nothing else is in it"))

    def to_dict(self) -> dict[str, Any]:
        """The manifest's record of the replacement."""
        return {
            "previous_created": self.previous_created,
            "removed": {"exports": list(self.exports), "qat": list(self.qat)},
            "kept": {"benchmarks": list(self.benchmarks), "other": list(self.other)},
        }


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _names(names: list[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def plan_replace(out: str | Path) -> ReplacePlan:
    """What writing a new run over `out` would remove and keep (see ReplacePlan); reads, never writes.

    Refuses (InputError) a path that is not an edgepool run: a file, or a folder holding anything
    but no run manifest. A missing or empty folder gives an empty plan.
    """
    from .errors import InputError

    path = Path(out)
    hint = "choose another output folder: only a run directory edgepool wrote is replaced"
    if not path.exists():
        return ReplacePlan(path)
    if not path.is_dir():
        raise InputError(f"{path} is a file, not a run directory", hint)
    entries = sorted(path.iterdir())
    if not entries:
        return ReplacePlan(path)
    if not (path / MANIFEST).is_file():
        n_dirs = sum(e.is_dir() for e in entries)
        held = _and([x for x in (_count(len(entries) - n_dirs, "file") if len(entries) > n_dirs else "",
                                 _count(n_dirs, "folder") if n_dirs else "") if x])
        raise InputError(f"{path} is not an edgepool run (no {MANIFEST}): replacing it would delete the {held} in it", hint)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("kind") != "edgepool-run":
        raise InputError(f"{path} is not an edgepool run (its {MANIFEST} is not a run manifest)", hint)
    plan = ReplacePlan(path, exists=True, previous_created=manifest.get("created"))
    for f in sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink() or (p.is_dir() and not any(p.iterdir()))):
        rel = f.relative_to(path)
        parts = rel.parts
        if rel.as_posix() in RUN_FILES or parts[0] in RUN_DIRS:
            continue
        if parts[0] == EXPORTS and len(parts) > 2 and not parts[1].startswith(".") and (path / EXPORTS / parts[1] / SIDECAR).is_file():
            if parts[1] not in plan.exports:
                plan.exports.append(parts[1])
        elif parts[0] == QAT and len(parts) > 2 and not parts[1].startswith("."):
            if parts[1] not in plan.qat:
                plan.qat.append(parts[1])
        elif parts[0] == BENCHMARKS and len(parts) > 1 and f.suffix == ".json":
            plan.benchmarks.append(rel.as_posix())
        else:
            plan.other.append(rel.as_posix())
    return plan


def _carry(src: Path, dst: Path) -> None:
    """Put `src` at `dst` as a hard link (a copy where links are not possible): the original stays until
    the old run is removed, so a failure before the swap loses nothing."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        return
    if src.is_dir():  # an empty folder
        dst.mkdir(exist_ok=True)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_run(
    out: Path,
    *,
    manifest: dict[str, Any],
    save_model: Any,
    arrays: dict[str, dict[str, np.ndarray]],
    files: dict[str, bytes],
    records: dict[str, Any],
    force: bool = False,
) -> Run:
    """Write a complete run directory atomically (refuses to overwrite without `force`).

    `save_model(path)` writes the model file; `arrays` are .npz files, `files` raw bytes and `records`
    JSON documents, each keyed by its path inside the run. The manifest is written last.

    Replacing a run (`force`) follows `plan_replace`: a folder that is not a run is refused; the old
    model, exports and QAT models go, benchmark results and files edgepool does not know are carried
    into the new run, and the manifest records both under "replaced". Until the new run is renamed into
    place, the old one is whole.
    """
    out = Path(out)
    plan = plan_replace(out) if force else None  # refuses a folder that is not a run before anything is written
    with staged_dir(out, force, what="run") as d:
        save_model(d / MODEL_FILE)
        for rel, arr in arrays.items():
            write_npz(d / rel, **arr)
        for rel, data in files.items():
            atomic_write_bytes(d / rel, data)
        for rel, obj in records.items():
            atomic_write_json(d / rel, obj)
        if plan is not None and plan.exists:
            plan = plan_replace(out)  # what is there now: a benchmark may have been saved while training
            for rel in plan.kept:
                _carry(out / rel, d / rel)
            manifest = {**manifest, "replaced": plan.to_dict()}
        atomic_write_json(d / MANIFEST, manifest)
    return load_run(out)


@dataclass
class Export:
    """An export folder on disk: model file(s), model.json sidecar, labels.txt, verify.json."""

    path: Path
    sidecar: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def format(self) -> str:
        return str(self.sidecar["format"])

    @property
    def model_file(self) -> Path:
        return self.path / self.sidecar["file"]

    @property
    def verify_file(self) -> Path:
        """The file verification runs: the CPU int8 model of an Edge TPU-compiled export, else the model."""
        return self.path / self.sidecar.get("cpu_file", self.sidecar["file"])

    @property
    def size_bytes(self) -> int:
        return tree_size(self.model_file)

    @property
    def source_run_path(self) -> Path | None:
        src = self.sidecar.get("source_run")
        return resolve_stored(src, self.path) if src else None

    def verification(self) -> dict[str, Any] | None:
        p = self.path / VERIFY
        return read_json(p) if p.is_file() else None


def find_model_file(path: Path, *, tflite_only: bool = False) -> Path:
    """An export folder (or a model file) -> its model file; model.json names it, else MODEL_FILES order."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model {p} does not exist", "check the path")
    if not p.is_dir() or p.suffix == ".mlpackage":
        return p
    names = MODEL_FILES[:2] if tflite_only else MODEL_FILES
    if (p / SIDECAR).is_file():
        side = read_json(p / SIDECAR)
        if isinstance(side, dict) and side.get("file") and (not tflite_only or str(side["file"]).endswith(".tflite")):
            f = p / str(side["file"])
            if not f.exists():
                raise ModelError(f"{f} is missing (named in {p / SIDECAR})", "re-export the model")
            return f
    for name in names:
        if (p / name).exists():
            return p / name
    kind = "TFLite model" if tflite_only else "exported model"
    raise ModelError(f"{p} holds no {kind} ({', '.join(names)})", "pass an export folder or a model file")


def load_export(path: str | Path) -> Export:
    """An export folder (or its model file) -> Export."""
    p = Path(path)
    d = p if p.is_dir() and p.suffix != ".mlpackage" else p.parent
    if not (d / SIDECAR).is_file():
        if not p.exists():
            raise ModelError(f"{p} does not exist", "pass a folder written by `edgepool export` or `edgepool convert`")
        raise ModelError(f"{p} is not an edgepool export (no {SIDECAR})", "pass a folder written by `edgepool export` or `edgepool convert`")
    side = read_json(d / SIDECAR)
    if not isinstance(side, dict) or "file" not in side or "format" not in side:
        raise ModelError(f"{d / SIDECAR} is not an edgepool model.json", "re-export the model")
    return Export(d, side)


def save_export(artifact: Any, target: Path, *, labels: list[str], force: bool = False) -> Export:
    """Write an exporter's `Artifact` (edgepool.types) into `target` atomically: its files, model.json, labels.txt."""
    target = Path(target)
    with staged_dir(target, force=force, what="export") as stage:
        for name, data in artifact.files.items():
            if isinstance(data, bytes):
                atomic_write_bytes(stage / name, data)
            else:  # a directory or file built elsewhere (a .mlpackage): move it in, then drop its temp folder
                src = Path(data)
                shutil.move(str(src), str(stage / name))
                with contextlib.suppress(OSError):
                    src.parent.rmdir()
        sidecar = dict(artifact.sidecar)
        src_run = sidecar.get("source_run")
        if src_run:
            sidecar["source_run"] = stored_path(Path(src_run), target)
        schemas.check_model_json(sidecar, f"{target / SIDECAR}")  # breaking it is a bug in edgepool
        atomic_write_json(stage / SIDECAR, sidecar)
        atomic_write_text(stage / LABELS, "\n".join(labels) + "\n")
    return load_export(target)


def save_verification(export: Export, record: dict[str, Any]) -> None:
    atomic_write_json(export.path / VERIFY, record)


def save_qat(target: Path, savers: dict[str, Any], records: dict[str, Any], *, force: bool = False) -> None:
    """Write a QAT model folder atomically: `savers` map file names to `save(path)` callables."""
    with staged_dir(target, force=force, what="QAT model") as d:
        for name, save in savers.items():
            save(d / name)
        for name, obj in records.items():
            atomic_write_json(d / name, obj)

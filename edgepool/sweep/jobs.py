"""The three jobs of a sweep, as functions of paths and plain data (they run in worker processes or Ray tasks):

- `train_job`: train one configuration into its run directory (or go on with an interrupted one);
- `convert_job`: export + verify the run for one profile, and estimate its latency when no device measures it;
- `bench_job`: measure one export on its device.

Each returns a plain dict (picklable, JSON-ready). EdgepoolErrors come back as {"error": {...}}: a configuration
that cannot be trained or exported is a result of the sweep, not the end of it.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import traceback
from pathlib import Path
from typing import Any

from .. import runs
from ..errors import EdgepoolError

_DATA: dict[str, Any] = {}  # data sets loaded in this worker process, by name


def limit_threads(threads: int) -> None:
    """Set TensorFlow's (and BLAS') thread counts in a fresh worker process, before TensorFlow is imported."""
    n = str(max(1, int(threads)))
    for var in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = n
    os.environ["TF_NUM_INTEROP_THREADS"] = "1" if threads <= 2 else "2"
    os.environ["EDGEPOOL_SWEEP_THREADS"] = n


def _apply_tf_threads() -> None:
    n = os.environ.get("EDGEPOOL_SWEEP_THREADS")
    if not n:
        return
    from .._tf import tf

    t = tf()
    try:
        t.config.threading.set_intra_op_parallelism_threads(int(n))
        t.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("TF_NUM_INTEROP_THREADS", "1")))
    except RuntimeError:
        pass  # already initialized in this process: the environment variables set it


def error_record(e: BaseException) -> dict[str, Any]:
    """An error as data. `retry`: the next run of the sweep tries again (a device that failed, an unexpected
    error); an EdgepoolError about the configuration itself (it cannot be built, trained or exported) is final."""
    from ..errors import DeviceError

    if isinstance(e, EdgepoolError):
        return {"kind": type(e).__name__, "message": e.message, "hint": e.hint, "retry": isinstance(e, DeviceError)}
    tb = traceback.format_exception_only(type(e), e)[-1].strip()
    return {"kind": type(e).__name__, "message": f"unexpected error: {tb}", "hint": "run the sweep again to retry it",
            "retry": True}


def _dataset(name: str) -> Any:
    if name not in _DATA:
        from ..datasets import load_dataset

        _DATA[name] = load_dataset(name)
    return _DATA[name]


def run_summary(run_dir: Path) -> dict[str, Any]:
    run = runs.load_run(run_dir)
    m = run.manifest
    return {"accuracy": m["metrics"]["test_accuracy"], "params": m["model"]["params"], "macs": m["model"]["macs"],
            "epochs_run": m["training"]["epochs_run"], "train_s": round(m["timings"]["train_s"], 2)}


def trained(run_dir: Path) -> bool:
    """A complete, not interrupted run is there (runs are written atomically: a folder is complete or absent)."""
    try:
        run = runs.load_run(run_dir)
    except EdgepoolError:
        return False
    return run.model_path.is_file() and not run.manifest.get("training", {}).get("interrupted")


def train_job(spec: dict[str, Any], config: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """Train `config` of the sweep `spec` (SweepSpec.to_dict) into `run_dir`; an interrupted run there goes on."""
    from .. import pipeline
    from ..training import load_resume
    from .spec import Config, SweepSpec

    out = Path(run_dir)
    try:
        if trained(out):
            return {"trained": False, **run_summary(out)}
        _apply_tf_threads()
        sw = sweep_spec(spec, SweepSpec)
        cfg = Config(**{k: config[k] for k in ("pool", "model", "window", "width", "seed")})
        if (out / runs.MANIFEST).is_file():  # interrupted: go on from its best epoch
            state = load_resume(out)
            pipeline.train_run(state.spec, state.dataset, state.config, out, resume=state)
        else:
            pipeline.train_run(sw.model_spec(cfg), _dataset(sw.data), sw.train_config(cfg), out)
        _clear_session()
        return {"trained": True, **run_summary(out), "trained_on": {"host": socket.gethostname(), "pid": os.getpid()}}
    except Exception as e:  # noqa: BLE001 - every failure is recorded in the sweep
        return {"error": error_record(e)}


def _clear_session() -> None:
    from .._tf import keras

    keras().backend.clear_session()


def sweep_spec(d: dict[str, Any], cls: Any) -> Any:
    from .spec import BenchSettings

    d = dict(d)
    d["bench"] = BenchSettings(**d.get("bench", {}))
    return cls(**d)


def export_record(export_dir: Path) -> dict[str, Any]:
    """What the sweep keeps of an export: recipe, size, accuracy on the test split and verification status."""
    ex = runs.load_export(export_dir)
    v = ex.verification() or {}
    return {"recipe": ex.sidecar.get("recipe"), "format": ex.format, "size_bytes": ex.size_bytes,
            "accuracy": v.get("accuracy"), "status": v.get("status", "unverified"), "reason": v.get("reason"),
            "export_dir": f"{runs.EXPORTS}/{export_dir.name}"}


def convert_job(run_dir: str, profile: str, estimate: bool) -> dict[str, Any]:
    """Export + verify `run_dir` for `profile` into RUN/exports/<profile> (kept when already verified there);
    with `estimate`, add the profile's latency estimate (`edgepool.inspect.estimate_model`)."""
    from .. import pipeline
    from ..profiles import resolve
    from ..recipes import load_recipe

    try:
        run = runs.load_run(run_dir)
        target = run.export_dir(profile)
        if not (target / runs.VERIFY).is_file():
            _apply_tf_threads()
            prof = resolve(profile)
            outcome = pipeline.export(run, load_recipe(prof.recipe), profile=prof, force=target.exists())
            _clear_session()
            if outcome.error is not None:
                return {"error": error_record(outcome.error)}
        rec = export_record(target)
        if estimate:
            rec.update(estimate_record(target, profile))
        return rec
    except Exception as e:  # noqa: BLE001
        return {"error": error_record(e)}


def estimate_record(export_dir: Path, profile: str) -> dict[str, Any]:
    from ..inspect import estimate_model

    try:
        est = estimate_model(export_dir, profile)
    except EdgepoolError as e:
        return {"latency_ms": None, "latency_kind": None, "latency_note": e.message}
    return {"latency_ms": est.latency_ms, "latency_kind": "estimated", "memory_bytes": est.memory_bytes,
            "energy_mj": est.energy_mj, "latency_note": "; ".join(est.notes) or None}


def bench_job(export_dir: str, profile: str, device: str, bench: dict[str, Any]) -> dict[str, Any]:
    """Measure one export on `device` with the sweep's protocol; returns the result document (not saved)."""
    from ..bench.protocol import BenchOptions
    from ..bench.runner import benchmark, results_document

    try:
        options = BenchOptions(devices=[device], profile=profile, runs=int(bench["runs"]), windows=int(bench["windows"]),
                               min_seconds=float(bench["min_seconds"]), max_samples=bench.get("max_samples"))
        results = benchmark([Path(export_dir)], options)
        return {"document": results_document(results, options)}
    except Exception as e:  # noqa: BLE001
        return {"error": error_record(e)}


def latency_record(document: dict[str, Any]) -> dict[str, Any]:
    """The sweep's numbers from a benchmark result document (one result)."""
    r = document["results"][0]
    if r.get("error"):
        err = r["error"]
        return {"latency_ms": None, "latency_kind": None, "bench_error": err.get("message")}
    lat = r.get("latency_ms") or {}
    median = lat.get("median") if lat.get("median") is not None else lat.get("mean")
    return {"latency_ms": median, "latency_kind": "measured" if median is not None else None,
            "latency_p90_ms": lat.get("p90"), "window_spread": r.get("window_spread"), "device": r.get("device"),
            "device_accuracy": r.get("accuracy"), "peak_rss_bytes": r.get("peak_rss_bytes")}


# ---------------------------------------------------------------- moving folders between nodes (Ray)


def pack(folder: Path, only: list[str] | None = None) -> bytes:
    """A folder (or the named entries in it) as tar.gz bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in only if only is not None else sorted(os.listdir(folder)):
            if (folder / name).exists():
                tar.add(folder / name, arcname=name)
    return buf.getvalue()


def unpack(data: bytes, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(folder, filter="data")

"""Benchmark exports on a device: resolve what to run, drive the agent, turn its events into results.

    results = benchmark([Path("runs/demo")], BenchOptions(threads=1))
    save_results(results, options)            # RUN/benchmarks/<stamp>.json for each run involved

A run directory means all its exports; an export directory means its model file (from model.json);
a .tflite file is run as is (with its sibling model.json when there is one).
"""

from __future__ import annotations

import datetime as _dt
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import runs
from ..errors import DeviceError, EdgepoolError, InputError, ModelError
from .protocol import BenchmarkResult, BenchOptions, build_request

Progress = Callable[[dict[str, Any]], None]

TFLITE_FORMATS = ("tflite", "edgetpu-tflite")
MODEL_FILES = ("model.tflite", "model_edgetpu.tflite", "model.mlpackage", "model.mlmodel")


@dataclass
class Target:
    """One model to benchmark."""

    name: str
    model_path: Path
    sidecar: dict[str, Any] | None
    run_dir: Path | None

    @property
    def format(self) -> str:
        if self.sidecar and self.sidecar.get("format"):
            return str(self.sidecar["format"])
        suffix = self.model_path.suffix.lower()
        if suffix in (".mlpackage", ".mlmodel"):
            return "coreml"
        return "edgetpu-tflite" if self.model_path.name.endswith("_edgetpu.tflite") else "tflite"

    @property
    def recipe(self) -> str | None:
        return (self.sidecar or {}).get("recipe")


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = runs.read_json(path)
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a model.json sidecar", "re-export the model")
    return data


def _run_of(export_dir: Path) -> Path | None:
    parent = export_dir.parent
    if parent.name == runs.EXPORTS and (parent.parent / runs.MANIFEST).is_file():
        return parent.parent
    return None


def _export_target(export_dir: Path) -> Target:
    sidecar = _read_sidecar(export_dir / runs.SIDECAR)
    if sidecar is not None and sidecar.get("file"):
        model = export_dir / str(sidecar["file"])
    else:
        found = [export_dir / f for f in MODEL_FILES if (export_dir / f).exists()]
        if not found:
            raise ModelError(f"{export_dir} holds no model file", "pass an export folder, a run or a .tflite file")
        model = found[0]
    if not model.exists():
        raise ModelError(f"{model} is missing (named in {export_dir / runs.SIDECAR})", "re-export the model")
    return Target(export_dir.name, model, sidecar, _run_of(export_dir))


def resolve_targets(paths: list[Path]) -> list[Target]:
    """Expand run dirs / export dirs / model files into targets; names are made unique."""
    if not paths:
        raise InputError("nothing to benchmark", "pass exports, a run directory or .tflite files")
    targets: list[Target] = []
    # absolute: the agent runs in its own working directory, so relative run paths would not resolve there
    for p in (Path(x).absolute() for x in paths):
        if not p.exists():
            raise InputError(f"{p} does not exist", "pass an export folder, a run directory or a .tflite file")
        if p.is_dir() and p.suffix != ".mlpackage":
            if (p / runs.SIDECAR).is_file() or any((p / f).exists() for f in MODEL_FILES):
                targets.append(_export_target(p))
            elif (p / runs.EXPORTS).is_dir():
                dirs = sorted(d for d in (p / runs.EXPORTS).iterdir() if d.is_dir() and not d.name.startswith("."))
                if not dirs:
                    raise ModelError(f"run {p} has no exports", "create one with `edgepool export`")
                targets.extend(_export_target(d) for d in dirs)
            else:
                raise InputError(f"{p} is neither a run, an export nor a model", "pass RUN, RUN/exports/NAME or a .tflite")
        else:
            sidecar = _read_sidecar(p.parent / runs.SIDECAR) if p.suffix == ".tflite" else None
            run_dir = _run_of(p.parent) if sidecar else None
            name = p.parent.name if sidecar else p.stem
            targets.append(Target(name, p, sidecar, run_dir))
    seen: dict[str, int] = {}
    for t in targets:
        seen[t.name] = seen.get(t.name, 0) + 1
    for t in targets:
        if seen[t.name] > 1:
            t.name = f"{t.run_dir.name if t.run_dir else t.model_path.parent.name}/{t.name}"
    return targets


def _profile_defaults(options: BenchOptions) -> tuple[str, int | None, list[str] | None, str | None]:
    """(device, threads, delegates, profile name) after applying --profile."""
    if not options.profile:
        return options.device, None, None, None
    from .. import profiles

    prof = profiles.resolve(options.profile)
    transport = str(getattr(prof, "transport", "local") or "local")
    if transport != "local":
        raise DeviceError(
            f"profile {prof.name} uses the {transport} transport: transport {transport} lands in a later issue",
            "benchmark on this machine with --device local (no --profile), or with a local profile",
        )
    runtime = str(getattr(getattr(prof, "runtime", None), "value", getattr(prof, "runtime", "tflite")))
    if runtime == "coreml":
        raise DeviceError(f"profile {prof.name} runs Core ML, which runs only on macOS/iOS",
                          "Core ML benchmarks need the ios transport (a later issue)")
    return options.device, getattr(prof, "threads", None), list(getattr(prof, "delegates", ()) or ()), prof.name


def _inputs(target: Target, mode: str, options: BenchOptions) -> dict[str, Any]:
    side = target.sidecar or {}
    norm = side.get("normalization")
    test = target.run_dir / runs.TEST_DATA if target.run_dir else None
    have_samples = bool(norm) and test is not None and test.is_file()
    if mode == "samples" and not have_samples:
        raise InputError(
            f"{target.name}: real samples need the run's {runs.TEST_DATA} and the normalization in model.json",
            "use --inputs random, or benchmark an export inside its run directory",
        )
    use = "samples" if (mode == "samples" or (mode == "auto" and have_samples)) else "random"
    req: dict[str, Any] = {"mode": use, "seed": options.seed, "normalization": norm}
    if use == "samples":
        req["samples_path"] = str(test)
        req["max_samples"] = options.max_samples
    return req


def _error_from(target: Target, err: dict[str, Any]) -> EdgepoolError:
    msg = f"{target.name}: {err.get('message', 'the agent failed')}"
    hint = err.get("hint") or None
    if err.get("kind") == "input":
        return ModelError(msg, hint)
    return DeviceError(msg, hint)


def _signal_name(code: int | None) -> str:
    if code is None or code >= 0:
        return f"exit code {code}"
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def benchmark_one(target: Target, options: BenchOptions, transport: Any, device: str, profile: str | None,
                  threads: int | None, delegates: list[str], progress: Progress | None = None) -> BenchmarkResult:
    """Run one model through the agent. Raises an EdgepoolError when nothing could be measured."""
    fmt = target.format
    if fmt == "coreml":
        raise DeviceError(f"{target.name}: Core ML models run only under Core ML on macOS/iOS, not on {device}",
                          "benchmark the .tflite exports here; Core ML needs the ios transport (a later issue)")
    if fmt == "edgetpu-tflite" and not delegates:
        delegates = ["edgetpu"]  # an Edge TPU model cannot run without its delegate
    inputs = _inputs(target, options.inputs, options)
    request = build_request(target.model_path.resolve(), options, threads, delegates, inputs)
    try:
        size = target.model_path.stat().st_size
    except OSError:
        size = 0
    result = BenchmarkResult(
        name=target.name, model_path=str(target.model_path), format=fmt, recipe=target.recipe, device=device,
        profile=profile, model_size_bytes=size, threads=threads, delegates=list(delegates),
        input_mode=inputs["mode"], run_dir=str(target.run_dir) if target.run_dir else None,
    )

    def on_event(ev: dict[str, Any]) -> None:
        if progress is not None:
            progress({**ev, "model": target.name, "windows_total": options.windows})

    if progress is not None:
        progress({"event": "start", "model": target.name, "windows_total": options.windows})
    run = transport.run(request, on_event)
    for w in run.windows:
        result.add_window(w)
    if run.result is not None:
        result.apply_result(run.result)
    elif run.error is not None and run.error.get("kind") != "interrupted":
        raise _error_from(target, run.error)
    else:
        # crashed or interrupted before its result: keep what it streamed
        for ev in run.events:
            if ev.get("event") == "hello":
                result.runtime, result.runtime_version = ev.get("runtime"), ev.get("runtime_version")
            elif ev.get("event") == "init":
                result.init_ms, result.first_inference_ms = ev.get("init_ms"), ev.get("first_inference_ms")
        result.stopped = "interrupted" if run.interrupted else f"crashed: {_signal_name(run.returncode)}"
        result.complete = False
        if not result.windows and not run.interrupted:
            tail = run.stderr_tail.splitlines()[-1] if run.stderr_tail else ""
            raise DeviceError(
                f"{target.name}: the agent died ({_signal_name(run.returncode)}) before finishing a timed window",
                tail or "run with --debug; the runtime crashed on this model",
            )
    if run.interrupted:
        result.stopped = "interrupted"
        result.complete = False
    if progress is not None:
        progress({"event": "done", "model": target.name, "result": result})
    return result


def benchmark(exports: list[Path], options: BenchOptions, progress: Progress | None = None,
              keep_going: bool = False) -> list[BenchmarkResult]:
    """Benchmark every export (a run directory means all its exports) with one protocol.

    Returns one BenchmarkResult per model. A Ctrl-C stops the current model (its finished windows are
    kept, `stopped="interrupted"`) and skips the rest. A model that fails raises its EdgepoolError,
    or with `keep_going` comes back with `.error` set and the others still run.
    """
    options.validate()
    device, p_threads, p_delegates, profile = _profile_defaults(options)
    threads = options.threads if options.threads is not None else (p_threads or 1)
    delegates = options.delegates if options.delegates is not None else (p_delegates or [])
    for d in delegates:  # fail on an unknown name before any work
        from .protocol import delegate_library

        delegate_library(d)
    from .transports import get_transport

    transport = get_transport(device, python=options.python, timeout_s=options.timeout_s)
    targets = resolve_targets(exports)
    results: list[BenchmarkResult] = []
    for i, target in enumerate(targets):
        if i and options.cooldown_s > 0:
            try:
                time.sleep(options.cooldown_s)
            except KeyboardInterrupt:
                break
        try:
            res = benchmark_one(target, options, transport, device, profile, threads, delegates, progress)
        except EdgepoolError as e:
            if not keep_going:
                raise
            res = BenchmarkResult(
                name=target.name, model_path=str(target.model_path), format=target.format, recipe=target.recipe,
                device=device, profile=profile, model_size_bytes=_size(target.model_path), threads=threads,
                delegates=list(delegates), input_mode="-", run_dir=str(target.run_dir) if target.run_dir else None,
                error={"kind": type(e).__name__, "message": e.message, "hint": e.hint, "exit_code": e.exit_code},
            )
        results.append(res)
        if res.interrupted:
            break
    return results


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def stamp(now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ")


def results_document(results: list[BenchmarkResult], options: BenchOptions) -> dict[str, Any]:
    """The JSON saved in RUN/benchmarks/<stamp>.json (and printed by --json)."""
    from .. import __version__

    opts = {k: v for k, v in vars(options).items() if k not in ("python",)}
    return {
        "schema_version": 1,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "edgepool_version": __version__,
        "options": opts,
        "interrupted": any(r.interrupted for r in results),
        "results": [r.to_dict() for r in results],
    }


def save_results(results: list[BenchmarkResult], options: BenchOptions, out: Path | None = None) -> list[Path]:
    """Write the results: to `out` if given, else RUN/benchmarks/<stamp>.json for each run involved
    (each file holds that run's models). Models outside any run are saved only with `out`."""
    written: list[Path] = []
    if out is not None:
        runs.atomic_write_json(Path(out), results_document(results, options))
        return [Path(out)]
    by_run: dict[str, list[BenchmarkResult]] = {}
    for r in results:
        if r.run_dir:
            by_run.setdefault(r.run_dir, []).append(r)
    name = stamp()
    for run_dir, rs in by_run.items():
        folder = Path(run_dir) / runs.BENCHMARKS
        path = folder / f"{name}.json"
        n = 2
        while path.exists():
            path = folder / f"{name}-{n}.json"
            n += 1
        runs.atomic_write_json(path, results_document(rs, options))
        written.append(path)
    return written


def with_overrides(options: BenchOptions, **kw: Any) -> BenchOptions:
    """A copy of `options` with the non-None keyword values applied (CLI helper)."""
    return replace(options, **{k: v for k, v in kw.items() if v is not None})

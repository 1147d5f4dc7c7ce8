"""Benchmark exports on a device: resolve what to run, drive the agent, turn its events into results.

    results = benchmark([Path("runs/demo")], BenchOptions(threads=1))
    save_results(results, options)            # RUN/benchmarks/<stamp>.json for each run involved

A run directory means all its exports; an export directory means its model file
(`runs.find_model_file`); a .tflite file is run as is (with its sibling model.json when there is one).
An export inside a run that this device cannot run (Core ML here) comes back as a result with
`skipped` set to the reason, and the others are measured; an export named on its own is an error.
Models that are the same (their bytes without the embedded edgepool metadata, `export.metadata.content_hash`)
measured with the same settings (threads, delegates, inputs, protocol) are measured once: each further
export gets a copy of that result with `measured_as` naming the row that was measured.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import signal
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import runs
from ..errors import DeviceError, EdgepoolError, InputError, ModelError
from ..types import Format, ProgressEvent, ProgressFn, Runtime, Transport
from .protocol import BenchmarkResult, BenchOptions, build_request, delegate_library

if TYPE_CHECKING:
    from ..profiles import DeviceProfile

STAGE = "benchmark"  # ProgressEvent.stage of every event benchmark() reports
CORE_ML_HINT = "benchmark the .tflite exports here; measure a Core ML model on the Apple device (Xcode's Core ML performance report)"


@dataclass
class Target:
    """One model to benchmark. `in_run`: found inside a run directory rather than named on its own."""

    name: str
    model_path: Path
    sidecar: dict[str, Any] | None
    run_dir: Path | None
    format: Format
    in_run: bool = False

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


def _format_of(model: Path, sidecar: dict[str, Any] | None) -> Format:
    named = (sidecar or {}).get("format")
    if named:
        try:
            return Format(str(named))
        except ValueError:
            raise ModelError(f"{model.parent / runs.SIDECAR} names an unknown format {named!r}",
                             f"re-export the model (formats: {', '.join(Format)})") from None
    if model.suffix.lower() in (".mlpackage", ".mlmodel"):
        return Format.COREML
    return Format.EDGETPU_TFLITE if model.name.endswith("_edgetpu.tflite") else Format.TFLITE


def _run_of(export_dir: Path) -> Path | None:
    parent = export_dir.parent
    if parent.name == runs.EXPORTS and (parent.parent / runs.MANIFEST).is_file():
        return parent.parent
    return None


def _export_target(export_dir: Path, in_run: bool = False) -> Target:
    sidecar = _read_sidecar(export_dir / runs.SIDECAR)
    model = runs.find_model_file(export_dir)
    return Target(export_dir.name, model, sidecar, _run_of(export_dir), _format_of(model, sidecar), in_run)


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
            if (p / runs.SIDECAR).is_file() or any((p / f).exists() for f in runs.MODEL_FILES):
                targets.append(_export_target(p))
            elif (p / runs.EXPORTS).is_dir():
                dirs = sorted(d for d in (p / runs.EXPORTS).iterdir() if d.is_dir() and not d.name.startswith("."))
                if not dirs:
                    raise ModelError(f"run {p} has no exports", "create one with `edgepool export`")
                targets.extend(_export_target(d, in_run=True) for d in dirs)
            else:
                raise InputError(f"{p} is neither a run, an export nor a model", "pass RUN, RUN/exports/NAME or a .tflite")
        else:
            sidecar = _read_sidecar(p.parent / runs.SIDECAR) if p.suffix == ".tflite" else None
            run_dir = _run_of(p.parent) if sidecar else None
            name = p.parent.name if sidecar else p.stem
            targets.append(Target(name, p, sidecar, run_dir, _format_of(p, sidecar)))
    seen: dict[str, int] = {}
    for t in targets:
        seen[t.name] = seen.get(t.name, 0) + 1
    for t in targets:
        if seen[t.name] > 1:
            t.name = f"{t.run_dir.name if t.run_dir else t.model_path.parent.name}/{t.name}"
    return targets


def cannot_run(fmt: Format) -> str | None:
    """Why this machine cannot benchmark a model of format `fmt`, or None when it can."""
    if fmt is not Format.COREML:
        return None
    if sys.platform == "darwin":
        return "a Core ML model: the benchmark agent runs TFLite models only"
    return f"a Core ML model: Core ML runs only on macOS/iOS, not on {platform.system() or 'this system'}"


def _device_profile(options: BenchOptions) -> DeviceProfile | None:
    """The profile named in `options` (None without one), if this machine can benchmark for it."""
    if not options.profile:
        return None
    from .. import profiles
    from .transports import no_remote_transport

    prof = profiles.resolve(options.profile)
    if prof.runtime == Runtime.COREML:
        raise DeviceError(f"profile {prof.name} runs Core ML models, and the benchmark agent runs TFLite models only",
                          CORE_ML_HINT)
    if prof.transport != Transport.LOCAL:
        raise no_remote_transport(prof.transport, f"profile {prof.name}", "benchmark on this machine without a profile")
    return prof


def _inputs(target: Target, mode: str, options: BenchOptions) -> dict[str, Any]:
    side = target.sidecar or {}
    norm = side.get("normalization")
    test = target.run_dir / runs.TEST_DATA if target.run_dir else None
    have_samples = bool(norm) and test is not None and test.is_file()
    if mode == "samples" and not have_samples:
        raise InputError(
            f"{target.name}: real samples need the run's {runs.TEST_DATA} and the normalization in model.json",
            "benchmark with random inputs, or benchmark an export inside its run directory",
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


def model_size_bytes(path: Path) -> int:
    """Bytes on disk: a file's size, or the sum of the files in a model directory (.mlpackage); 0 if unreadable."""
    try:
        if path.is_dir():
            return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        return path.stat().st_size
    except OSError:
        return 0


def _unmeasured(target: Target, device: str, profile: str | None, threads: int | None, delegates: list[str],
                **why: Any) -> BenchmarkResult:
    """The result row of a model that was not measured: `error=` or `skipped=` says why."""
    return BenchmarkResult(
        name=target.name, model_path=str(target.model_path), format=target.format.value, recipe=target.recipe,
        device=device, profile=profile, model_size_bytes=model_size_bytes(target.model_path), threads=threads,
        delegates=list(delegates), input_mode="-", run_dir=str(target.run_dir) if target.run_dir else None, **why,
    )


def _delegates_for(target: Target, delegates: list[str]) -> list[str]:
    if target.format is Format.EDGETPU_TFLITE and not delegates:
        return ["edgetpu"]  # an Edge TPU model cannot run without its delegate
    return delegates


def measurement_key(target: Target, options: BenchOptions, threads: int | None, delegates: list[str]) -> str | None:
    """What makes two measurements the same: the model's bytes without the edgepool metadata plus the agent
    request apart from the model path (threads, delegates, inputs, protocol). None when it cannot be told
    (a model folder, an unreadable file, inputs that are an error): such a model is always measured."""
    if cannot_run(target.format) or not target.model_path.is_file():
        return None
    try:
        inputs = _inputs(target, options.inputs, options)
        data = target.model_path.read_bytes()
    except (EdgepoolError, OSError):
        return None
    from ..export.metadata import content_hash

    request = build_request(Path(), options, threads, _delegates_for(target, delegates), inputs)
    request.pop("model_path")
    settings = json.dumps(request, sort_keys=True, default=str)
    return hashlib.sha256(f"{content_hash(data)}\n{settings}".encode()).hexdigest()


def shared_result(measured: BenchmarkResult, target: Target) -> BenchmarkResult:
    """`target`'s row holding the measurement of the same model made as `measured`."""
    return replace(measured, name=target.name, model_path=str(target.model_path), format=target.format.value,
                   recipe=target.recipe, model_size_bytes=model_size_bytes(target.model_path),
                   run_dir=str(target.run_dir) if target.run_dir else None, windows=list(measured.windows),
                   measured_as=measured.name)


def benchmark_one(target: Target, options: BenchOptions, transport: Any, device: str, profile: str | None,
                  threads: int | None, delegates: list[str], progress: ProgressFn | None = None) -> BenchmarkResult:
    """Run one model through the agent. Raises an EdgepoolError when nothing could be measured.

    `progress` gets ProgressEvent(stage="benchmark", message=<model name>, done=<windows finished>,
    total=<windows requested>, data=<the agent's event with "model" and "windows_total" added>), bracketed
    by data events "start" and "done" (the latter with the BenchmarkResult as data["result"]).
    """
    fmt = target.format
    reason = cannot_run(fmt)
    if reason:
        raise DeviceError(f"{target.name}: {reason}", CORE_ML_HINT)
    delegates = _delegates_for(target, delegates)
    inputs = _inputs(target, options.inputs, options)
    request = build_request(target.model_path.resolve(), options, threads, delegates, inputs)
    result = BenchmarkResult(
        name=target.name, model_path=str(target.model_path), format=fmt.value, recipe=target.recipe, device=device,
        profile=profile, model_size_bytes=model_size_bytes(target.model_path), threads=threads,
        delegates=list(delegates), input_mode=inputs["mode"], run_dir=str(target.run_dir) if target.run_dir else None,
    )
    total = options.windows
    finished = [0]

    def report(data: dict[str, Any]) -> None:
        if progress is not None:
            progress(ProgressEvent(stage=STAGE, done=finished[0], total=total, message=target.name, data=data))

    def on_event(ev: dict[str, Any]) -> None:
        if ev.get("event") == "window":
            finished[0] += 1
        report({**ev, "model": target.name, "windows_total": total})

    report({"event": "start", "model": target.name, "windows_total": total})
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
        lost = getattr(run, "stopped", None)  # the transport's account (ssh: connection lost, timeout)
        result.stopped = "interrupted" if run.interrupted else (lost or f"crashed: {_signal_name(run.returncode)}")
        result.complete = False
        if not result.windows and not run.interrupted:
            tail = run.stderr_tail.splitlines()[-1] if run.stderr_tail else ""
            raise DeviceError(
                f"{target.name}: the agent died ({_signal_name(run.returncode)}) before finishing a timed window",
                tail or "the runtime crashed on this model without a message; try another TFLite runtime or export",
            )
    if run.interrupted:
        result.stopped = "interrupted"
        result.complete = False
    finished[0] = len(result.windows)
    report({"event": "done", "model": target.name, "result": result})
    return result


def benchmark(exports: list[Path], options: BenchOptions, progress: ProgressFn | None = None,
              keep_going: bool = False) -> list[BenchmarkResult]:
    """Benchmark every export (a run directory means all its exports) with one protocol.

    Returns one BenchmarkResult per model. A Ctrl-C stops the current model (its finished windows are
    kept, `stopped="interrupted"`) and skips the rest. A model that fails raises its EdgepoolError,
    or with `keep_going` comes back with `.error` set and the others still run. An export found in a
    run directory that this machine cannot run (Core ML) comes back with `.skipped` set to the reason.
    `progress`: see `benchmark_one`; a skipped export reports data event "skipped" (with "reason").
    An export that is the same model with the same settings as one measured before (`measurement_key`)
    is not run again: its row is a copy of that result with `measured_as` set, reported as data event
    "shared" (with "measured_as" and "result").
    """
    options.validate()
    prof = _device_profile(options)
    device = options.device
    threads = options.threads if options.threads is not None else ((prof.threads if prof else None) or 1)
    delegates = options.delegates if options.delegates is not None else (list(prof.delegates) if prof else [])
    profile = prof.name if prof else None
    for d in delegates:  # fail on an unknown name before any work
        delegate_library(d)
    from .transports import get_transport

    transport = get_transport(device, python=options.python, timeout_s=options.timeout_s)
    targets = resolve_targets(exports)
    results: list[BenchmarkResult] = []
    measured = 0
    by_key: dict[str, BenchmarkResult] = {}  # measurement_key -> the result measured for it
    for target in targets:
        reason = cannot_run(target.format) if target.in_run else None
        if reason:
            results.append(_unmeasured(target, device, profile, threads, delegates, skipped=reason))
            if progress is not None:
                progress(ProgressEvent(stage=STAGE, message=target.name, total=options.windows,
                                       data={"event": "skipped", "model": target.name, "reason": reason}))
            continue
        key = measurement_key(target, options, threads, delegates) if len(targets) > 1 else None
        if key is not None and key in by_key:
            res = shared_result(by_key[key], target)
            results.append(res)
            if progress is not None:
                progress(ProgressEvent(stage=STAGE, message=target.name, done=len(res.windows), total=options.windows,
                                       data={"event": "shared", "model": target.name,
                                             "measured_as": res.measured_as, "result": res}))
            continue
        if measured and options.cooldown_s > 0:
            try:
                time.sleep(options.cooldown_s)
            except KeyboardInterrupt:
                break
        measured += 1
        try:
            res = benchmark_one(target, options, transport, device, profile, threads, delegates, progress)
        except EdgepoolError as e:
            if not keep_going:
                raise
            res = _unmeasured(target, device, profile, threads, delegates,
                              error={"kind": type(e).__name__, "message": e.message, "hint": e.hint,
                                     "exit_code": e.exit_code})
        results.append(res)
        if res.interrupted:
            break
        if key is not None and res.error is None:
            by_key[key] = res
    return results


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
    """A copy of `options` with the non-None keyword values applied."""
    return replace(options, **{k: v for k, v in kw.items() if v is not None})

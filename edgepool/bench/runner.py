"""Benchmark exports on a device: resolve what to run, drive the agent, turn its events into results.

    results = benchmark([Path("runs/demo")], BenchOptions(threads=1))
    results = benchmark([Path("runs/demo")], BenchOptions(devices=["pi5", "local"]))   # both at once
    save_results(results, options)            # RUN/benchmarks/<stamp>.json for each run involved

Devices (`options.devices`: local, URIs, registered names) are all parsed and checked first (`plan_devices`:
a device named twice is refused; each gets the profile given, else its registered one). One device runs in
the calling thread; several run concurrently, one worker thread each, every device measuring its models one
after another, with progress events handed to the caller in the main thread (`_run_devices`). Every row
names its device, transport and runtime.

A run directory means all its exports; an export directory means its model file
(`runs.find_model_file`); a .tflite file is run as is (with its sibling model.json when there is one).
An export inside a run that a device cannot run (`cannot_run`: Core ML off an iPhone) comes back as a result with
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
import queue
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import runs
from ..errors import DeviceError, EdgepoolError, InputError, ModelError
from ..types import Format, ProgressEvent, ProgressFn, Runtime, Transport
from .protocol import BenchmarkResult, BenchOptions, build_request, delegate_library

if TYPE_CHECKING:
    from ..devices import DeviceRef
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


def cannot_run(fmt: Format, transport: Transport = Transport.LOCAL, binary: bool = False) -> str | None:
    """Why a device reached over `transport` cannot benchmark a model of format `fmt`, or None when it can.
    Core ML runs on an iPhone only (the example app); an Edge TPU model needs the edgetpu delegate, which the
    agent loads (local, ssh) and neither benchmark_model on Android nor the iPhone app can."""
    if fmt is Format.COREML:
        if transport is Transport.IOS:
            return None
        if transport is Transport.LOCAL:
            if sys.platform == "darwin":
                return "a Core ML model: the benchmark agent runs TFLite models only"
            return f"a Core ML model: Core ML runs only on macOS/iOS, not on {platform.system() or 'this system'}"
        return f"a Core ML model: it is measured on an iPhone (ios://), not over {transport.value}"
    if fmt is Format.EDGETPU_TFLITE and (binary or transport in (Transport.ADB, Transport.IOS)):
        tool = ("benchmark_model on Android" if transport is Transport.ADB else "benchmark_model" if binary
                else "the iPhone app")
        return f"an Edge TPU model: it needs the edgetpu delegate, which {tool} cannot load"
    return None


def _skip_hint(fmt: Format) -> str:
    if fmt is Format.COREML:
        return CORE_ML_HINT
    return "measure an Edge TPU model on a board with the Edge TPU (local with a Coral USB, or over ssh)"


# how a device of each kind is named, for the profile that needs one
DEVICE_FORMS = {Transport.SSH: "ssh://[user@]host[:port]", Transport.ADB: "adb://[serial]",
                Transport.IOS: "ios://[udid]", Transport.LOCAL: "local"}


def _device_profile(name: str | None, ref: DeviceRef) -> DeviceProfile | None:
    """The profile `name` (None without one) if the device `ref` can benchmark for it."""
    if not name:
        return None
    from .. import profiles

    prof = profiles.resolve(name)
    kind = ref.kind
    if prof.runtime == Runtime.COREML and kind is not Transport.IOS:
        if kind is Transport.LOCAL:
            raise DeviceError(f"profile {prof.name} runs Core ML models, which are measured on an iPhone: name it "
                              f"as {DEVICE_FORMS[Transport.IOS]} or a registered device", CORE_ML_HINT)
        raise InputError(f"profile {prof.name} runs Core ML models, and device {ref.label} is reached over "
                         f"{kind.value}", "name an iPhone (ios://) for this profile, or another profile")
    if prof.transport != kind:
        if kind is Transport.LOCAL:
            raise DeviceError(f"profile {prof.name} needs the {prof.transport.value} transport: name its device as "
                              f"{DEVICE_FORMS[prof.transport]} or a registered device name",
                              "or benchmark this machine without a profile")
        raise InputError(f"profile {prof.name} is for devices reached over {prof.transport.value}, and device "
                         f"{ref.label} is reached over {kind.value}", "name a profile for that device, or none")
    return prof


class DeviceUnavailable(DeviceError):
    """The transport failed before a model was measured (unreachable device, missing tool, no disk): the
    device's later models are not tried; their rows carry the same error."""


@dataclass
class DevicePlan:
    """One device of a benchmark: where (`ref`), with which profile, threads and delegates, through what."""

    ref: DeviceRef
    profile: DeviceProfile | None
    threads: int
    delegates: list[str]
    transport: Any

    @property
    def label(self) -> str:
        return self.ref.label

    @property
    def kind(self) -> Transport:
        return self.ref.kind

    @property
    def binary(self) -> bool:
        """Measured with LiteRT's benchmark_model (adb, or ssh given a benchmark binary), not the agent."""
        return _uses_binary(self.kind, self.transport)


def _uses_binary(kind: Transport, transport: Any) -> bool:
    return kind is Transport.ADB or (kind is Transport.SSH and getattr(transport, "benchmark_binary", None) is not None)


def _identity(ref: DeviceRef) -> tuple[Any, ...]:
    """What makes two device names the same physical device (as far as the names tell)."""
    if ref.kind is Transport.SSH:
        return (ref.kind, (ref.host or "").lower(), ref.port or 22)
    return (ref.kind, ref.serial, ref.udid)


def _check_delegates(kind: Transport, delegates: list[str], binary: bool = False) -> None:
    if kind is Transport.ADB or binary:
        from . import benchmark_model as bm

        try:
            bm.delegate_flags(delegates)
        except ValueError as e:
            if kind is Transport.ADB:
                raise InputError(f"delegate {e.args[0]!r} cannot be applied by benchmark_model on Android",
                                 "use xnnpack, gpu or nnapi (the Edge TPU runs on Coral boards, over ssh)") from None
            raise InputError(f"delegate {e.args[0]!r} cannot be applied by benchmark_model",
                             "use xnnpack, gpu or nnapi with a benchmark binary, or measure with the agent (no "
                             "benchmark binary) for the Edge TPU") from None
        return
    for d in delegates:
        delegate_library(d)


def plan_devices(options: BenchOptions) -> list[DevicePlan]:
    """Parse every device first (bad input before any work), refuse one device named twice, then pick each
    device's profile (the one given, else a registered device's own), threads, delegates and transport."""
    from .. import devices
    from .transports import get_transport

    refs = [devices.parse_device(d) for d in (options.devices or [options.device])]
    seen: dict[tuple[Any, ...], DeviceRef] = {}
    for ref in refs:
        key = _identity(ref)
        if key in seen:
            other = seen[key]
            also = "" if other.label == ref.label else f" (as {other.label} and {ref.label})"
            raise InputError(f"device {ref.label} is named twice{also}",
                             "name each device once: a device measures one model at a time")
        seen[key] = ref
    plans = []
    for ref in refs:
        prof = _device_profile(options.profile or ref.profile, ref)
        threads = options.threads if options.threads is not None else ((prof.threads if prof else None) or 1)
        delegates = options.delegates if options.delegates is not None else (list(prof.delegates) if prof else [])
        transport = get_transport(ref, python=options.python, timeout_s=options.timeout_s,
                                  benchmark_binary=options.benchmark_binary, profile=prof)
        # fail on an unknown name before any work (benchmark_model's names with a binary: adb, or ssh given one)
        _check_delegates(ref.kind, delegates, _uses_binary(ref.kind, transport))
        ready = getattr(transport, "check_ready", None)  # what can be told without the device (the binary)
        if callable(ready):
            ready()
        plans.append(DevicePlan(ref, prof, threads, list(delegates), transport))
    return plans


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
                transport: Transport = Transport.LOCAL, **why: Any) -> BenchmarkResult:
    """The result row of a model that was not measured: `error=` or `skipped=` says why."""
    return BenchmarkResult(
        name=target.name, model_path=str(target.model_path), format=target.format.value, recipe=target.recipe,
        device=device, profile=profile, transport=transport.value, model_size_bytes=model_size_bytes(target.model_path), threads=threads,
        delegates=list(delegates), input_mode="-", run_dir=str(target.run_dir) if target.run_dir else None, **why,
    )


def _delegates_for(target: Target, delegates: list[str]) -> list[str]:
    if target.format is Format.EDGETPU_TFLITE and not delegates:
        return ["edgetpu"]  # an Edge TPU model cannot run without its delegate
    return delegates


def _request(target: Target, options: BenchOptions, kind: Transport, threads: int | None,
             delegates: list[str], binary: bool = False) -> dict[str, Any]:
    """The agent request for `target` on a device reached over `kind`. benchmark_model (adb, or ssh with a
    benchmark binary: `binary`) and the iPhone app feed random inputs (no accuracy); benchmark_model takes
    delegate names (xnnpack, gpu, nnapi), not libraries."""
    delegates = _delegates_for(target, delegates)
    binary = binary or kind is Transport.ADB
    if kind in (Transport.ADB, Transport.IOS) or binary:
        if options.inputs == "samples":
            what = "benchmark_model" if binary else f"a {kind.value} device"
            raise InputError(f"{target.name}: real samples need the benchmark agent, and {what} "
                             "measures with random inputs", "benchmark with random inputs (or auto) there")
        inputs: dict[str, Any] = {"mode": "random", "seed": options.seed,
                                  "normalization": (target.sidecar or {}).get("normalization")}
        request = build_request(target.model_path.resolve(), options, threads, [] if binary else delegates, inputs)
        if binary:
            request["delegate_names"] = list(delegates)
        return request
    inputs = _inputs(target, options.inputs, options)
    return build_request(target.model_path.resolve(), options, threads, delegates, inputs)


def measurement_key(target: Target, options: BenchOptions, threads: int | None, delegates: list[str],
                    kind: Transport = Transport.LOCAL, binary: bool = False) -> str | None:
    """What makes two measurements the same: the model's bytes without the edgepool metadata plus the agent
    request apart from the model path (threads, delegates, inputs, protocol). None when it cannot be told
    (a model folder, an unreadable file, inputs that are an error): such a model is always measured."""
    if cannot_run(target.format, kind, binary) or not target.model_path.is_file():
        return None
    try:
        request = _request(target, options, kind, threads, delegates, binary)
        data = target.model_path.read_bytes()
    except (EdgepoolError, OSError):
        return None
    from ..export.metadata import content_hash

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
                  threads: int | None, delegates: list[str], progress: ProgressFn | None = None,
                  kind: Transport = Transport.LOCAL, binary: bool = False) -> BenchmarkResult:
    """Run one model on one device (`device`: its label, reached over `kind` through `transport`).
    Raises an EdgepoolError when nothing could be measured.

    `progress` gets ProgressEvent(stage="benchmark", message=<model name>, done=<windows finished>,
    total=<windows requested>, data=<the agent's event with "model", "device", "windows_total" and "host_t"
    (time.monotonic() when this host got it) added>), bracketed by data events "start" and "done" (the latter
    with the BenchmarkResult as data["result"]).
    """
    fmt = target.format
    reason = cannot_run(fmt, kind, binary)
    if reason:
        raise DeviceError(f"{target.name}: {reason}", _skip_hint(fmt))
    request = _request(target, options, kind, threads, delegates, binary)
    used = list(request.get("delegate_names") or _delegates_for(target, delegates))
    result = BenchmarkResult(
        name=target.name, model_path=str(target.model_path), format=fmt.value, recipe=target.recipe, device=device,
        profile=profile, model_size_bytes=model_size_bytes(target.model_path), threads=threads,
        delegates=used, input_mode=request["inputs"]["mode"], transport=kind.value,
        run_dir=str(target.run_dir) if target.run_dir else None,
    )
    total = options.windows
    finished = [0]

    def report(data: dict[str, Any]) -> None:
        if progress is not None:
            data = {**data, "model": target.name, "device": device, "host_t": time.monotonic()}
            progress(ProgressEvent(stage=STAGE, done=finished[0], total=total, message=target.name, data=data))

    def on_event(ev: dict[str, Any]) -> None:
        if ev.get("event") == "window":
            finished[0] += 1
        report({**ev, "windows_total": total})

    report({"event": "start", "windows_total": total})
    try:
        run = transport.run(request, on_event)
    except DeviceUnavailable:
        raise
    except DeviceError as e:
        raise DeviceUnavailable(e.message, e.hint) from None
    for w in run.windows:
        result.add_window(w)
    if run.result is not None:
        result.apply_result(run.result)
        result.transport = kind.value
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
    report({"event": "done", "result": result})
    return result


def _run_device(plan: DevicePlan, targets: list[Target], options: BenchOptions, progress: ProgressFn | None,
                keep_going: bool, stop: threading.Event | None = None) -> list[BenchmarkResult]:
    """Every target on one device, one after another (cooldown between): a device never runs two models at
    once. `stop` (set by the multi-device runner on Ctrl-C or a failure elsewhere) ends it before the next model."""
    device, kind, threads, delegates = plan.label, plan.kind, plan.threads, plan.delegates
    profile = plan.profile.name if plan.profile else None
    results: list[BenchmarkResult] = []
    measured = 0
    by_key: dict[str, BenchmarkResult] = {}  # measurement_key -> the result measured for it
    broken: dict[str, Any] | None = None  # the error that made this device unavailable

    def note(target: Target, done: int, data: dict[str, Any]) -> None:
        if progress is not None:
            progress(ProgressEvent(stage=STAGE, message=target.name, done=done, total=options.windows,
                                   data={**data, "model": target.name, "device": device, "host_t": time.monotonic()}))

    for target in targets:
        if stop is not None and stop.is_set():
            break
        reason = cannot_run(target.format, kind, plan.binary) if target.in_run else None
        if reason:
            results.append(_unmeasured(target, device, profile, threads, delegates, kind, skipped=reason))
            note(target, 0, {"event": "skipped", "reason": reason})
            continue
        if broken is not None:
            results.append(_unmeasured(target, device, profile, threads, delegates, kind, error=dict(broken)))
            continue
        key = measurement_key(target, options, threads, delegates, kind, plan.binary) if len(targets) > 1 else None
        if key is not None and key in by_key:
            res = shared_result(by_key[key], target)
            results.append(res)
            note(target, len(res.windows), {"event": "shared", "measured_as": res.measured_as, "result": res})
            continue
        if measured and options.cooldown_s > 0:
            if stop is not None:
                if stop.wait(options.cooldown_s):
                    break
            else:
                try:
                    time.sleep(options.cooldown_s)
                except KeyboardInterrupt:
                    break
        measured += 1
        try:
            res = benchmark_one(target, options, plan.transport, device, profile, threads, delegates, progress, kind,
                                plan.binary)
            attach_energy(res, plan.profile, options)
        except EdgepoolError as e:
            if not keep_going:
                raise
            error = {"kind": "DeviceError" if isinstance(e, DeviceError) else type(e).__name__, "message": e.message,
                     "hint": e.hint, "exit_code": e.exit_code}
            res = _unmeasured(target, device, profile, threads, delegates, kind, error=error)
            if isinstance(e, DeviceUnavailable):
                broken = error
        results.append(res)
        if res.interrupted:
            break
        if key is not None and res.error is None:
            by_key[key] = res
    return results


def _energy_profile(profile: DeviceProfile | None, transport: str | None) -> DeviceProfile | None:
    """The power model for an estimate: the device's profile, else this machine's (host-cpu) for a local run."""
    if profile is not None or transport != Transport.LOCAL.value:
        return profile
    from .. import profiles

    try:
        return profiles.resolve("host-cpu")
    except EdgepoolError:
        return None


def attach_energy(result: BenchmarkResult, profile: DeviceProfile | None, options: BenchOptions) -> None:
    """Fill `energy`, `battery` and `soak` of a measured result (edgepool.bench.energy): measured from the device's
    power record where it has a sensor, else estimated from the profile's power model (labelled); a battery
    projection for a profile with battery_wh; a soak's drain summary."""
    from . import energy

    if result.error or result.skipped or not (options.energy or options.battery_soak_s):
        return
    if result.soak is not None and "record" in result.soak:
        record = result.soak["record"]
        summary = energy.soak_summary(record)
        result.soak = {**(summary or {"notes": ["the fuel gauge gave no usable readings"]}),
                       "readings": record.get("readings"), "thermal": record.get("thermal"),
                       "gauge_notes": (record.get("gauge") or {}).get("notes")}
        result.battery = energy.soak_battery(summary, profile.battery_wh if profile else None) if summary else None
        return
    prof = _energy_profile(profile, result.transport)
    measured = energy.measured_energy(result.power)
    if measured is not None:
        result.energy = measured
    elif prof is not None and result.headline_ms is not None:
        spread = (result.window_spread or 0.0) * result.headline_ms / 2.0  # how repeatable the median is
        keys = ("active_power_w", "idle_power_w")
        is_estimate = any(str(prof.sources.get(k, "estimate")).startswith("estimate") for k in keys)
        why = ("no power sensor was found on the device" if result.power is not None
               else "power is not read while benchmark_model measures" if result.runtime == "benchmark_model"
               else f"power is not read over {result.transport}")
        result.energy = energy.estimated_energy(prof.active_power_w, prof.idle_power_w, result.headline_ms, spread,
                                                is_estimate, source=f"profile {prof.name} power model", why=why)
    if result.energy is not None and prof is not None and prof.battery_wh:
        result.battery = energy.battery_projection(result.energy, prof.battery_wh, result.headline_ms, options.fps)


def _interrupt_all(plans: list[DevicePlan], stop: threading.Event) -> None:
    stop.set()
    for plan in plans:
        interrupt = getattr(plan.transport, "interrupt", None)
        if interrupt is not None:
            interrupt()


def _run_devices(plans: list[DevicePlan], targets: list[Target], options: BenchOptions, progress: ProgressFn | None,
                 keep_going: bool) -> list[BenchmarkResult]:
    """One worker thread per device; progress events are handed to `progress` in this (the main) thread, so a
    Ctrl-C (a KeyboardInterrupt here, in a progress callback or while waiting) interrupts every device's
    current model (finished windows are kept) and starts no further one. A failure (without `keep_going`)
    stops the other devices the same way, then is raised."""
    events: queue.Queue[ProgressEvent] = queue.Queue()
    stop = threading.Event()
    emit = events.put if progress is not None else None
    with ThreadPoolExecutor(max_workers=len(plans), thread_name_prefix="edgepool-device") as pool:
        futures: list[Future[list[BenchmarkResult]]] = [
            pool.submit(_run_device, plan, targets, options, emit, keep_going, stop) for plan in plans]
        while True:
            try:
                _pump(futures, events, progress, plans, stop)
                break
            except KeyboardInterrupt:
                _interrupt_all(plans, stop)
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]
    return [r for f in futures for r in f.result()]


def _pump(futures: list[Future[list[BenchmarkResult]]], events: queue.Queue[ProgressEvent],
          progress: ProgressFn | None, plans: list[DevicePlan], stop: threading.Event) -> None:
    """Deliver progress events until every device is done; a failed device stops the others."""
    while True:
        try:
            ev = events.get(timeout=0.05)
        except queue.Empty:
            if not stop.is_set() and any(f.done() and f.exception() is not None for f in futures):
                _interrupt_all(plans, stop)
            if all(f.done() for f in futures) and events.empty():
                return
            continue
        if progress is not None:
            progress(ev)


def benchmark(exports: list[Path], options: BenchOptions, progress: ProgressFn | None = None,
              keep_going: bool = False) -> list[BenchmarkResult]:
    """Benchmark every export (a run directory means all its exports) with one protocol on every device of
    `options.devices` (each with its own profile, threads and delegates), into one list of results.

    Returns one BenchmarkResult per model and device. A Ctrl-C stops the current model (its finished windows
    are kept, `stopped="interrupted"`) and skips the rest. A model that fails raises its EdgepoolError,
    or with `keep_going` comes back with `.error` set and the others still run. An export found in a
    run directory that a device cannot run (Core ML off an iPhone) comes back with `.skipped` set to the reason.
    `progress`: see `benchmark_one`; a skipped export reports data event "skipped" (with "reason").
    An export that is the same model with the same settings as one measured before on the same device
    (`measurement_key`) is not run again: its row is a copy of that result with `measured_as` set, reported
    as data event "shared" (with "measured_as" and "result").
    Several devices run concurrently, one thread each, each measuring its models one after another
    (`_run_devices`); every device is parsed and checked before any work.
    """
    options.validate()
    plans = plan_devices(options)
    targets = resolve_targets(exports)
    if len(plans) == 1:
        return _run_device(plans[0], targets, options, progress, keep_going)
    return _run_devices(plans, targets, options, progress, keep_going)


def stamp(now: _dt.datetime | None = None) -> str:
    now = now or _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ")


def results_document(results: list[BenchmarkResult], options: BenchOptions,
                     session: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON saved in RUN/benchmarks/<stamp>.json (and printed by --json). `session` ({"id", "runs"}) is the
    same in every file one benchmark saves: results measured together (what `edgepool gate` compares)."""
    from .. import __version__

    opts = {k: v for k, v in vars(options).items() if k not in ("python",)}
    return {
        "schema_version": 1,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "edgepool_version": __version__,
        "options": opts,
        "interrupted": any(r.interrupted for r in results),
        **({"session": session} if session is not None else {}),
        "results": [r.to_dict() for r in results],
    }


def new_session(results: list[BenchmarkResult]) -> dict[str, Any]:
    """The record shared by every file one benchmark saves: an id and the runs it measured."""
    import uuid

    return {"id": uuid.uuid4().hex, "runs": sorted({r.run_dir for r in results if r.run_dir})}


def save_results(results: list[BenchmarkResult], options: BenchOptions, out: Path | None = None) -> list[Path]:
    """Write the results: to `out` if given, else RUN/benchmarks/<stamp>.json for each run involved
    (each file holds that run's models). Models outside any run are saved only with `out`."""
    written: list[Path] = []
    session = new_session(results)
    if out is not None:
        runs.atomic_write_json(Path(out), _checked(results_document(results, options, session), Path(out)))
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
        runs.atomic_write_json(path, _checked(results_document(rs, options, session), path))
        written.append(path)
    return written


def _checked(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """`doc`, after checking it against benchmark-result.schema.json (a mismatch is a bug in edgepool)."""
    from .. import schemas

    schemas.check_benchmark_document(doc, str(path))
    return doc


def with_overrides(options: BenchOptions, **kw: Any) -> BenchOptions:
    """A copy of `options` with the non-None keyword values applied."""
    return replace(options, **{k: v for k, v in kw.items() if v is not None})

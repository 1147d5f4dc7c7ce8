"""`edgepool benchmark`: measure exports on a device (latency, throughput, memory, accuracy) into one table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError
from . import _common
from ._options import JsonOpt
from .gate import JsonlOpt, PrometheusOpt

# BenchOptions field -> the flag that sets it (the library names fields, the CLI names flags)
FLAGS = {
    "runs": "--runs", "min_seconds": "--min-seconds", "windows": "--windows", "warmup_runs": "--warmup-runs",
    "warmup_min_seconds": "--warmup-seconds", "max_seconds": "--max-seconds", "threads": "--threads",
    "run_delay_s": "--run-delay", "cooldown_s": "--cooldown", "inputs": "--inputs", "max_samples": "--max-samples",
    "timeout_s": "--timeout", "sample_rate_hz": "--sample-rate", "energy_window_s": "--energy-window",
    "idle_seconds": "--idle-seconds", "fps": "--fps", "battery_soak_s": "--battery-soak",
}


def _duration(text: str | None) -> float | None:
    """`10m`, `90s`, `1h`, `1h30m` or plain seconds -> seconds."""
    if not text:
        return None
    import re

    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not parts or not any(parts.groups()):
        raise InputError(f"--battery-soak {text!r} is not a duration", "write it like 10m, 90s, 1h or 600 (seconds)")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    return h * 3600 + m * 60 + s


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark)


def _cores(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        cores: list[int] = []
        for part in text.split(","):
            if "-" in part:
                a, b = part.split("-", 1)
                cores.extend(range(int(a), int(b) + 1))
            elif part.strip():
                cores.append(int(part))
        return cores
    except ValueError:
        raise InputError(f"--affinity {text!r} is not a core list", "write cores like 0,1 or 2-3") from None


def benchmark(
    exports: Annotated[list[Path], typer.Argument(help="Exports (RUN/exports/NAME), .tflite files, or run directories (all their exports)", show_default=False)],
    device: Annotated[list[str] | None, typer.Option("--device", "-d", help="Where to run: local (this machine), ssh://[user@]host[:port][?python=/path], adb://[serial], ios://[udid] or a registered device name; repeat to measure on several devices at once (default: local)")] = None,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help="Device profile (name or .toml): threads and delegates defaults")] = None,
    runs: Annotated[int, typer.Option("--runs", "-n", help="Minimum runs per timed window")] = 50,
    min_seconds: Annotated[float, typer.Option("--min-seconds", help="Minimum seconds per timed window")] = 1.0,
    windows: Annotated[int, typer.Option("--windows", help="Number of timed windows")] = 5,
    threads: Annotated[int | None, typer.Option("--threads", "-t", help="Interpreter threads (default: profile, else 1)")] = None,
    affinity: Annotated[str | None, typer.Option("--affinity", help="Pin the agent to these CPU cores, e.g. 0 or 2-3")] = None,
    delegate: Annotated[list[str] | None, typer.Option("--delegate", help="Delegate to load (edgetpu or a library path); repeatable")] = None,
    inputs: Annotated[str, typer.Option("--inputs", help="auto (test samples when the run has them) | random | samples")] = "auto",
    max_samples: Annotated[int | None, typer.Option("--max-samples", help="Use at most this many test samples for accuracy")] = None,
    warmup_runs: Annotated[int, typer.Option("--warmup-runs", help="Minimum warmup runs")] = 1,
    warmup_seconds: Annotated[float, typer.Option("--warmup-seconds", help="Minimum warmup seconds")] = 0.5,
    max_seconds: Annotated[float, typer.Option("--max-seconds", help="Cap on one model's timed phase")] = 150.0,
    run_delay: Annotated[float, typer.Option("--run-delay", help="Seconds to sleep between runs")] = 0.0,
    cooldown: Annotated[float, typer.Option("--cooldown", help="Seconds to sleep between models")] = 0.0,
    stable: Annotated[bool, typer.Option("--stable", help="Numbers worth publishing: wait for a steady temperature, pin the last core (unless --affinity), at least 10 windows of 2 s")] = False,
    runtime: Annotated[str, typer.Option("--runtime", help="auto | ai_edge_litert | tflite_runtime | tensorflow")] = "auto",
    python: Annotated[str | None, typer.Option("--python", help="Python that runs the agent (local device; ssh: instead of the URI's ?python=)")] = None,
    benchmark_binary: Annotated[Path | None, typer.Option("--benchmark-binary", help="LiteRT's benchmark_model binary: for adb devices, or for ssh devices to measure with it instead of the agent (no Python needed there; default: the registered device's)")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop a model's run on the device after this many seconds")] = None,
    energy: Annotated[bool, typer.Option("--energy", help="Measure energy per inference with the device's power sensors (idle baseline, loaded windows of >= --energy-window s); without a sensor: the profile's power model, labelled estimated")] = False,
    sample_rate: Annotated[float, typer.Option("--sample-rate", help="Power samples per second (sysfs sensors; vcgencmd at a fifth of it, at most 10)")] = 50.0,
    energy_window: Annotated[float, typer.Option("--energy-window", help="Shortest loaded window with --energy, seconds (MLPerf Tiny: 10)")] = 10.0,
    idle_seconds: Annotated[float, typer.Option("--idle-seconds", help="Length of each idle baseline window with --energy, seconds")] = 5.0,
    fps: Annotated[float | None, typer.Option("--fps", help="Frame rate for the battery projection (hours at this rate) and the battery soak")] = None,
    battery_soak: Annotated[str | None, typer.Option("--battery-soak", help="Run the model at --fps for this long (e.g. 10m) and record the battery's fuel gauge: drain per hour and per 1000 inferences", show_default=False)] = None,
    allow_charging: Annotated[bool, typer.Option("--allow-charging", help="Let a battery soak run on a device that is charging")] = False,
    sysfs_root: Annotated[str | None, typer.Option("--sysfs-root", help="Where the device's sysfs tree is, for --energy and --battery-soak (default /sys; e.g. a copy of a board's tree)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the results JSON here instead of RUN/benchmarks/")] = None,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Save results into each run's benchmarks/")] = True,
    json_out: JsonOpt = False,
    prometheus: PrometheusOpt = None,
    jsonl: JsonlOpt = None,
) -> None:
    """Benchmark exports on a device and print one leaderboard table.

    Protocol: init, first inference, warmup (>= 1 run and >= 0.5 s), then --windows timed windows of
    >= --runs runs and >= --min-seconds each; only invoke() is timed. Ctrl-C keeps finished windows.
    Several --device options measure concurrently (one model at a time per device) into one table.
    Exports in a run that a device cannot run (Core ML off an iPhone) are skipped with a note.
    """
    from ..bench.protocol import BenchOptions
    from ..bench.runner import benchmark as run_benchmark
    from ..bench.runner import results_document, save_results
    from ._bench_view import benchmark_progress, benchmark_table, finish_benchmark

    options = BenchOptions(
        devices=list(device) if device else ["local"], profile=profile,
        benchmark_binary=str(benchmark_binary) if benchmark_binary else None, timeout_s=timeout, runs=runs, min_seconds=min_seconds, windows=windows, threads=threads,
        affinity=_cores(affinity), delegates=list(delegate) if delegate else None, inputs=inputs,
        max_samples=max_samples, warmup_runs=warmup_runs, warmup_min_seconds=warmup_seconds,
        max_seconds=max_seconds, run_delay_s=run_delay, cooldown_s=cooldown, runtime=runtime, python=python, stable=stable,
        energy=energy, sample_rate_hz=sample_rate, energy_window_s=energy_window, idle_seconds=idle_seconds, fps=fps,
        battery_soak_s=_duration(battery_soak), allow_charging=allow_charging, sysfs_root=sysfs_root,
    )
    problems = options.problems()
    if problems:
        name, problem = problems[0]
        raise InputError(f"{FLAGS[name]} {problem}", "see `edgepool benchmark --help`")
    from .. import metrics

    metrics.check_targets(prometheus, jsonl)  # before measuring: a file that is not ours is refused now
    several = len(exports) > 1 or len(options.devices or []) > 1 or any((Path(p) / "exports").is_dir() for p in exports)
    with benchmark_progress(enabled=not json_out) as progress:
        results = run_benchmark(list(exports), options, progress=progress, keep_going=several)
    saved = save_results(results, options, out) if (save or out) else []
    saved_metrics = metrics.export_benchmark(results, prometheus, jsonl, saved)
    if json_out:
        doc = results_document(results, options)
        doc["saved"] = [str(p) for p in saved]
        _common.print_json(doc)
    else:
        benchmark_table(results)
        err = _common.err_console()
        for p in saved + saved_metrics:
            err.print(f"[dim]saved {p}[/]")
    finish_benchmark(results)

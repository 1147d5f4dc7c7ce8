"""`edgepool benchmark`: measure exports on a device (latency, throughput, memory, accuracy) into one table."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import EdgepoolError, InputError
from . import _common
from ._options import JsonOpt


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
    device: Annotated[str, typer.Option("--device", help="Where to run: local (ssh, adb, ios land later)")] = "local",
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
    runtime: Annotated[str, typer.Option("--runtime", help="auto | ai_edge_litert | tflite_runtime | tensorflow")] = "auto",
    python: Annotated[str | None, typer.Option("--python", help="Python that runs the agent (local device)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the results JSON here instead of RUN/benchmarks/")] = None,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Save results into each run's benchmarks/")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Benchmark exports on a device and print one leaderboard table.

    Protocol: init, first inference, warmup (>= 1 run and >= 0.5 s), then --windows timed windows of
    >= --runs runs and >= --min-seconds each; only invoke() is timed. Ctrl-C keeps finished windows.
    """
    from ..bench.protocol import BenchOptions
    from ..bench.runner import benchmark as run_benchmark
    from ..bench.runner import results_document, save_results

    options = BenchOptions(
        device=device, profile=profile, runs=runs, min_seconds=min_seconds, windows=windows, threads=threads,
        affinity=_cores(affinity), delegates=list(delegate) if delegate else None, inputs=inputs,
        max_samples=max_samples, warmup_runs=warmup_runs, warmup_min_seconds=warmup_seconds,
        max_seconds=max_seconds, run_delay_s=run_delay, cooldown_s=cooldown, runtime=runtime, python=python,
    )
    several = len(exports) > 1 or any((Path(p) / "exports").is_dir() for p in exports)
    with _progress(enabled=not json_out) as progress:
        results = run_benchmark(list(exports), options, progress=progress, keep_going=several)
    saved = save_results(results, options, out) if (save or out) else []
    if json_out:
        doc = results_document(results, options)
        doc["saved"] = [str(p) for p in saved]
        _common.print_json(doc)
    else:
        _table(results)
        err = _common.err_console()
        for p in saved:
            err.print(f"[dim]saved {p}[/]")
    finish(results)


def finish(results: list[Any]) -> None:
    """One error line per failed model; exit 130 if interrupted, else the failures' exit code."""
    from .main import render_error

    failed = [r for r in results if r.error]
    for r in failed:
        render_error(EdgepoolError(r.error["message"], r.error.get("hint")))
    if any(r.interrupted for r in results):
        _common.err_console().print("[yellow]interrupted: finished windows were kept[/]")
        raise typer.Exit(130)
    if failed:
        raise typer.Exit(max(int(r.error.get("exit_code", 2)) for r in failed))


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[phase]}"),
                    TimeElapsedColumn(), console=_common.err_console(), transient=True)
    tasks: dict[str, Any] = {}

    def on_event(ev: dict[str, Any]) -> None:
        name = ev.get("model", "?")
        kind = ev.get("event")
        if kind == "start":
            tasks[name] = prog.add_task(name, total=ev.get("windows_total") or 1, phase="starting")
            return
        task = tasks.get(name)
        if task is None:
            return
        if kind == "init":
            prog.update(task, phase=f"init {ev.get('init_ms', 0):.1f} ms")
        elif kind == "progress":
            phase = ev.get("phase")
            if phase == "window":
                prog.update(task, completed=ev["done"], phase=f"window {ev['done']}/{ev['total']}")
            else:
                prog.update(task, phase=f"{phase} {ev.get('done')}/{ev.get('total')}")
        elif kind == "done":
            prog.update(task, phase="done")

    with prog:
        yield on_event


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1000:.1f} µs" if x < 0.1 else f"{x:.3f} ms" if x < 10 else f"{x:.1f} ms"


def _table(results: list[Any]) -> None:
    from rich.table import Table

    ok = sorted((r for r in results if r.latency_ms), key=lambda r: r.latency_ms["median"])
    rest = [r for r in results if not r.latency_ms]
    any_prof = next((r for r in results if r.environment), None)
    title = "benchmark"
    if any_prof is not None:
        env = any_prof.environment
        title = (f"benchmark on {results[0].device}: {env.get('cpu_model')} x{env.get('cpu_count')}, "
                 f"{env.get('runtime')} {env.get('runtime_version')}, {results[0].threads} thread(s)")
    t = Table(title=title, title_justify="left")
    for col, just in (("#", "right"), ("model", "left"), ("format", "left"), ("recipe", "left"), ("size", "right"),
                      ("accuracy", "right"), ("median", "right"), ("p95", "right"), ("FPS", "right"),
                      ("peak mem", "right"), ("spread", "right"), ("status", "left")):
        t.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for i, r in enumerate(ok + rest, 1):
        status = "ok" if r.complete else (r.stopped or "incomplete")
        if r.error:
            status = f"[red]{r.error['kind']}[/]"
        elif r.nonfinite_outputs:
            status = f"[red]NaN/Inf in {r.nonfinite_outputs} outputs[/]"
        elif not r.complete:
            status = f"[yellow]{status} ({len(r.windows)} windows)[/]"
        lat = r.latency_ms or {}
        t.add_row(
            str(i) if r.latency_ms else "-", r.name, r.format, r.recipe or "-", _common.fmt_bytes(r.model_size_bytes),
            _common.fmt_pct(r.accuracy), _ms(lat.get("median")), _ms(lat.get("p95")),
            f"{r.fps:,.0f}" if r.fps else "-", _common.fmt_bytes(r.peak_rss_bytes),
            _common.fmt_pct(r.window_spread), status,
        )
    con = _common.console()
    if not con.is_terminal:  # piped or captured: do not squeeze the leaderboard into 80 columns
        con.width = max(con.width, 150)
    con.print(t)

"""How benchmark results look on a terminal: progress bars, the leaderboard, the closing lines and exit code.

Shared by `edgepool benchmark` and `edgepool demo`, so neither imports the other's helpers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import typer

from ..errors import EdgepoolError
from . import _common

if TYPE_CHECKING:
    from ..bench.protocol import BenchmarkResult
    from ..types import ProgressEvent, ProgressFn


@contextlib.contextmanager
def benchmark_progress(enabled: bool = True) -> Iterator[ProgressFn | None]:
    """Yield the `progress` callback for `bench.runner.benchmark`: one bar per (device, model), on stderr, in
    finished windows (None when disabled, e.g. with --json)."""
    if not enabled:
        yield None
        return
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[phase]}"),
                    TimeElapsedColumn(), console=_common.err_console(), transient=True)
    tasks: dict[tuple[str | None, str], Any] = {}

    def on_event(ev: ProgressEvent) -> None:
        name, data = ev.message, ev.data
        kind = data.get("event")
        device = data.get("device")
        key = (device, name)
        if kind == "start":
            label = name if device in (None, "local") else f"{name} on {device}"
            tasks[key] = prog.add_task(escape(label), total=ev.total or 1, phase="starting")
            return
        task = tasks.get(key)
        if task is None:
            return
        if kind == "init":
            prog.update(task, phase=f"init {data.get('init_ms', 0):.1f} ms")
        elif kind == "progress":
            phase = data.get("phase")
            if phase == "window":
                prog.update(task, completed=ev.done, phase=f"window {ev.done}/{ev.total}")
            else:
                prog.update(task, phase=f"{phase} {data.get('done')}/{data.get('total')}")
        elif kind == "done":
            prog.update(task, completed=ev.done, phase="done")

    with prog:
        yield on_event


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1000:.1f} µs" if x < 0.1 else f"{x:.3f} ms" if x < 10 else f"{x:.1f} ms"


def _runtime(r: BenchmarkResult) -> str:
    if not r.runtime:
        return "-"
    return f"{r.runtime} {r.runtime_version}" if r.runtime_version else r.runtime


def benchmark_table(results: list[BenchmarkResult]) -> None:
    """The leaderboard on stdout: measured models by median latency (every device in one table), then the
    failed ones. Each row says its device, transport and runtime. Skipped models are not rows;
    `finish_benchmark` notes them. A row measured as another (the same model and settings) says "same model as
    <name>"; the FPS column is 1000 / median, like the headline (the mean where a tool gave no median:
    benchmark_model over adb prints its mean only on older releases; such a row says "mean")."""
    from rich.markup import escape
    from rich.table import Table

    shown = [r for r in results if not r.skipped]
    if not shown:
        return
    ok = sorted((r for r in shown if r.headline_ms is not None), key=lambda r: r.headline_ms)
    rest = [r for r in shown if r.headline_ms is None]
    devices = list(dict.fromkeys(r.device for r in shown))
    measured = next((r for r in shown if r.environment), None)
    title = "benchmark"
    if len(devices) > 1:
        title = f"benchmark on {len(devices)} devices: {', '.join(devices)}"
    elif measured is not None:
        env = measured.environment
        title = (f"benchmark on {measured.device}: {env.get('cpu_model')} x{env.get('cpu_count')}, "
                 f"{env.get('runtime')} {env.get('runtime_version')}, {measured.threads} thread(s)")
    t = Table(title=escape(title), title_justify="left")
    for col, just in (("#", "right"), ("model", "left"), ("device", "left"), ("transport", "left"),
                      ("runtime", "left"), ("format", "left"), ("recipe", "left"), ("size", "right"),
                      ("accuracy", "right"), ("median", "right"), ("p95", "right"), ("FPS (median)", "right"),
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
        context = r.environment or {}
        if context.get("emulated"):  # correct outputs, but not the device's latency
            status += (f", [yellow]emulated: {escape(str(context.get('machine')))} under "
                       f"{escape(str(context['emulated']))} (latency is not the device's)[/]")
        if context.get("throttled"):
            status += ", [yellow]throttled[/]"
        if context.get("delegate_fallback"):
            status += ", [yellow]delegate took no node (ran on the CPU)[/]"
        if r.measured_as and not r.error:
            status += f", same model as {escape(r.measured_as)}"
        lat = r.latency_ms or {}
        median = _ms(lat.get("median"))
        fps = f"{r.fps_median:,.0f}" if r.fps_median else "-"
        if lat.get("median") is None and lat.get("mean") is not None:
            median = f"{_ms(lat.get('mean'))} (mean)"
            fps = f"{r.fps_mean:,.0f} (mean)" if r.fps_mean else "-"
        t.add_row(
            str(i) if r.headline_ms is not None else "-", escape(r.name), escape(r.device), r.transport or "-",
            escape(_runtime(r)), r.format, r.recipe or "-", _common.fmt_bytes(r.model_size_bytes),
            _common.fmt_pct(r.accuracy), median, _ms(lat.get("p95")), fps, _common.fmt_bytes(r.peak_rss_bytes),
            _common.fmt_pct(r.window_spread), status,
        )
    con = _common.console()
    if not con.is_terminal:  # piped or captured: do not squeeze the leaderboard into 80 columns
        con.width = max(con.width, 220)
    con.print(t)


def finish_benchmark(results: list[BenchmarkResult]) -> None:
    """On stderr: one note line per reason models were skipped, one error line per failed model.
    Then exit 130 if interrupted, else with the failures' exit code (skipped models are no failure)."""
    from rich.markup import escape

    from .main import render_error

    err = _common.err_console()
    skipped: dict[str, list[str]] = {}
    for r in results:
        if r.skipped:
            skipped.setdefault(r.skipped, []).append(r.name)
    for reason, names in skipped.items():
        err.print(f"[yellow]note:[/] not benchmarked: {escape(', '.join(names))} ({escape(reason)})", soft_wrap=True)
    failed = [r for r in results if r.error]
    shown: set[tuple[str, str | None]] = set()
    for r in failed:  # a device that failed for every model says so once
        line = (r.error["message"], r.error.get("hint"))
        if line not in shown:
            shown.add(line)
            render_error(EdgepoolError(*line))
    if any(r.interrupted for r in results):
        err.print("[yellow]interrupted: finished windows were kept[/]")
        raise typer.Exit(130)
    if failed:
        raise typer.Exit(max(int(r.error.get("exit_code", 2)) for r in failed))

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


def _mj(x: float) -> str:
    return f"{x * 1000:.1f} µJ" if abs(x) < 0.1 else f"{x:.3f} mJ" if abs(x) < 10 else f"{x:.1f} mJ"


def energy_cells(r: BenchmarkResult) -> tuple[str, str, str]:
    """(energy per inference ± uncertainty, average power, source): an estimate says "estimated" in every cell, so
    it is never read as a measurement."""
    e = r.energy
    if not e:
        return "-", "-", "-"
    est = e.get("kind") != "measured"
    tag = " [yellow](estimated)[/]" if est else ""
    per = f"{_mj(e['mj_per_inference'])} ± {_mj(e['uncertainty_mj'])}{tag}"
    power = f"{e['avg_power_w']:.2f} W{tag}" if e.get("avg_power_w") is not None else "-"
    src = f"{e.get('source') or '?'}, {'estimated' if est else 'measured'}"
    return per, power, src


def _hours(h: float) -> str:
    return f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h" if h < 100 else f"{h / 24:.0f} days"


def battery_cell(r: BenchmarkResult) -> str:
    b = r.battery
    if not b:
        return "-"
    parts = []
    if b.get("inferences_per_charge"):
        parts.append(f"{b['inferences_per_charge']:,.0f} inf/charge")
    if b.get("hours_at_fps") and b.get("fps"):
        parts.append(f"{_hours(b['hours_at_fps'])} at {b['fps']:g} FPS")
    text = ", ".join(parts) or "-"
    return f"{text} [yellow](estimated)[/]" if b.get("kind") != "measured" else text


def soak_lines(results: list[BenchmarkResult]) -> list[str]:
    """One line per battery soak: drain per hour and per 1000 inferences (± one gauge step), hours to empty."""
    lines = []
    for r in results:
        s = r.soak
        if not s or s.get("drain_per_hour") is None:
            if s:
                lines.append(f"battery soak of {r.name} on {r.device}: " + "; ".join(s.get("notes") or ["no drain figure"]))
            continue
        unit = s["unit"]
        per_k = s.get("drain_per_1000_inferences")
        text = (f"battery soak of {r.name} on {r.device} ({s['gauge']}, {s['seconds'] / 60:.1f} min, {s['inferences']} "
                f"inferences at {s.get('fps') or 0:.1f} FPS): drain {s['drain_per_hour']:.4g} ± "
                f"{s['drain_per_hour_uncertainty']:.2g} {unit}/h")
        if per_k is not None:
            text += f", {per_k:.4g} ± {s['drain_per_1000_inferences_uncertainty']:.2g} {unit} per 1000 inferences"
        if s.get("hours_to_empty"):
            text += f", {_hours(s['hours_to_empty'])} to empty at this rate"
        if s.get("max_temperature_c") is not None:
            text += f", up to {s['max_temperature_c']:.1f} C"
        if s.get("throttled"):
            text += f", throttled ({', '.join(s['throttled'])})"
        lines.append(text)
        lines.extend(f"  note: {n}" for n in s.get("notes") or [])
    return lines


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
    with_energy = any(r.energy for r in shown)
    with_battery = any(r.battery for r in shown)
    if with_energy:
        for col in ("energy / inference", "avg power", "energy source"):
            t.add_column(col, justify="left" if col == "energy source" else "right", no_wrap=True)
    if with_battery:
        t.add_column("battery", justify="left", no_wrap=True)
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
        extra: list[str] = []
        if with_energy:
            per, power, src = energy_cells(r)
            extra += [per, power, escape(src)]
        if with_battery:
            extra.append(battery_cell(r))
        t.add_row(
            str(i) if r.headline_ms is not None else "-", escape(r.name), escape(r.device), r.transport or "-",
            escape(_runtime(r)), r.format, r.recipe or "-", _common.fmt_bytes(r.model_size_bytes),
            _common.fmt_pct(r.accuracy), median, _ms(lat.get("p95")), fps, _common.fmt_bytes(r.peak_rss_bytes),
            _common.fmt_pct(r.window_spread), status, *extra,
        )
    con = _common.console()
    if not con.is_terminal:  # piped or captured: do not squeeze the leaderboard into 80 columns
        con.width = max(con.width, 300 if with_energy else 220)
    con.print(t)
    for line in soak_lines(shown):
        con.print(escape(line), soft_wrap=True)
    seen: set[tuple[str, str]] = set()
    for r in shown:
        for note in (r.energy or {}).get("notes") or []:
            if (r.device, note) not in seen:  # a note about the device's sensor is said once per device
                seen.add((r.device, note))
                con.print(f"[dim]energy on {escape(r.device)}: {escape(note)}[/]", soft_wrap=True)


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

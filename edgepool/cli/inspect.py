"""`edgepool inspect MODEL` and `edgepool estimate EXPORT`: read a model statically, estimate its cost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgepool.cli._common import console, fmt_bytes, print_json
from edgepool.errors import InputError

MODEL_FILES = ("model.tflite", "model_edgetpu.tflite", "model.mlpackage", "model.mlmodel")
FORMULA_HELP = (
    "Estimates, not measurements: latency_ms = max(MACs / (peak_gmacs x 1e9), bytes_moved / bandwidth) x 1000 "
    "(peak_gmacs_int8 for int8 models, peak_gmacs_fp32 for float; the bandwidth term only when the profile has one); "
    "memory = planned activation arena + weight bytes; energy_mj = active_power_w x latency_ms; "
    "inferences per battery = battery_wh x 3600 / energy_J (battery devices only)."
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables")]


def _model_file(path: Path, for_tflite: bool = False) -> Path:
    """A model file, or the model inside an export directory."""
    if path.is_dir() and path.suffix != ".mlpackage":
        names = MODEL_FILES[:2] if for_tflite else MODEL_FILES
        for name in names:
            if (path / name).exists():
                return path / name
        raise InputError(f"{path} holds no exported model ({', '.join(names)})", "pass an export directory or a model file")
    if not path.exists():
        raise InputError(f"model {path} does not exist", "check the path")
    return path


def _n(x: float | int | None, unit: str = "", digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return f"{x:,}{unit}"
    return f"{x:.{digits}g}{unit}"


def _render_coreml(report: Any) -> None:
    from rich.table import Table

    info = report.coreml
    c = console()
    t = Table(title=f"{report.path.name}: Core ML {info['kind']} (spec v{info['spec_version']})")
    t.add_column("#", justify="right")
    t.add_column("op / layer")
    t.add_column("outputs")
    for op in info["ops"]:
        t.add_row(str(op["index"]), op["op"], ", ".join(op["outputs"]))
    c.print(t)
    c.print(f"[bold]{len(info['ops'])}[/] ops, [bold]{info['params']:,}[/] parameters, "
            f"{fmt_bytes(info['weight_bytes'])} of weights")


def _render_estimate(c: Any, est: Any) -> None:
    c.print(f"[bold]estimate[/] on {est.profile} ({est.precision}; roofline, not a measurement): "
            f"latency [bold]{_n(est.latency_ms, ' ms')}[/] = {est.macs:,} MACs / {_n(est.peak_gmacs)} GMAC/s"
            + (f" (memory term {_n(est.memory_ms, ' ms')})" if est.memory_ms is not None else ""))
    c.print(f"  memory {fmt_bytes(est.memory_bytes)} (arena {fmt_bytes(est.activation_bytes)} + weights "
            f"{fmt_bytes(est.weight_bytes)}); energy {_n(est.energy_mj, ' mJ')} per inference"
            + (f"; {est.battery_inferences:,.0f} inferences per battery" if est.battery_inferences else ""))
    if est.measured_latency_ms is not None:
        frac = est.achieved_fraction_of_peak
        c.print(f"  [bold]measured[/] median latency {est.measured_latency_ms:.3f} ms ({est.measured_source}): "
                f"{'-' if frac is None else f'{100 * frac:.2f}%'} of peak compute achieved")
    for note in est.notes:
        c.print(f"  [dim]note: {note}[/]")


def _render(report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    if report.format == "coreml":
        _render_coreml(report)
        return
    m = report.model
    g = m.main
    c = console()
    support = {s.index: s for s in report.support or []}
    tpu = {o.index: o for o in report.edgetpu.ops} if report.edgetpu else {}
    t = Table(title=f"{report.path.name}: {len(g.ops)} ops, {len(m.subgraphs)} subgraph(s), {report.precision}")
    for col, just in (("#", "right"), ("op", "left"), ("v", "right"), ("output", "left"), ("dtype", "left"),
                      ("MACs", "right"), ("params", "right"), ("min TFLite", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    if support:
        t.add_column("runtime")
    if tpu:
        t.add_column("Edge TPU")
    for op, cost in zip(g.ops, report.costs, strict=True):
        out = g.tensors[op.outputs[0]] if op.outputs else None
        from edgepool.inspect.support import min_runtime_for_op

        row = [str(op.index), escape(op.name), str(op.version), "x".join(map(str, out.shape)) if out else "-",
               out.dtype.lower() if out else "-", f"{cost.macs:,}" if cost.macs else "", f"{cost.params:,}" if cost.params else "",
               min_runtime_for_op(op.name, op.version) or "unknown"]
        if support:
            s = support.get(op.index)
            row.append("-" if s is None else {True: "[green]ok[/]", False: "[red]NO[/]", None: "[yellow]unknown[/]"}[s.supported])
        if tpu:
            o = tpu.get(op.index)
            row.append("-" if o is None else ("[green]TPU[/]" if o.on_tpu else "[red]CPU[/]"))
        t.add_row(*row)
    c.print(t)
    a = report.arena
    peak_op = f"op {a.peak_op} ({g.ops[a.peak_op].name})" if a.peak_op is not None else "-"
    ins = ", ".join(f"{g.tensors[i].dtype.lower()}[{'x'.join(map(str, g.tensors[i].shape))}]" for i in g.inputs)
    c.print(f"[bold]total[/]: {report.macs:,} MACs, {report.params:,} parameters, weights {fmt_bytes(report.weight_bytes)}, "
            f"file {fmt_bytes(m.size_bytes)}; input {ins}")
    c.print(f"[bold]activation arena[/] (planned, greedy by size): {fmt_bytes(a.arena_bytes)}; peak live "
            f"{fmt_bytes(a.peak_live_bytes)} at {peak_op}")
    c.print(f"[bold]min runtime[/]: {m.min_runtime_version or '-'} (file metadata), "
            f"{report.min_runtime_table or 'unknown'} (edgepool op-version table)")
    md = m.edgepool_metadata
    if md:
        c.print(f"[bold]edgepool metadata[/]: format {md.get('format')}, recipe {md.get('recipe')}, "
                f"profile {md.get('profile')}, labels {len(md.get('labels') or [])}")
    for w in m.warnings:
        c.print(f"[yellow]warning:[/] {escape(w)}")
    if report.support is not None and report.profile is not None:
        bad = report.unsupported_ops()
        unknown = [s for s in report.support if s.supported is None]
        name = report.profile.name
        if bad:
            for s in bad:
                c.print(f"[red]not supported on {name}[/]: op {s.index} {escape(s.reason)}")
        elif report.support:
            c.print(f"[green]all ops with a known version run on {name}[/] "
                    f"(runtime {report.profile.runtime_version})" + (f"; {len(unknown)} unknown" if unknown else ""))
    if report.edgetpu is not None:
        e = report.edgetpu
        c.print(f"[bold]Edge TPU[/] (predicted): {e.split}")
        for o in e.ops:
            if not o.on_tpu:
                c.print(f"  op {o.index} {o.name} on CPU: {escape(o.reason)}"
                        + (f" [dim]-> {escape(o.suggestion)}[/]" if o.suggestion else ""))
        for note in e.notes:
            c.print(f"  [dim]note: {escape(note)}[/]")
    if report.estimate is not None:
        _render_estimate(c, report.estimate)


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_cmd(
        model: Annotated[Path, typer.Argument(help="A .tflite, .mlpackage or .mlmodel file (or an export directory)",
                                              show_default=False)],
        profile: Annotated[str | None, typer.Option("--profile", "-p", help="Device profile name or TOML path: "
                                                    "check op support on it and estimate latency")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Read a model without running it: ops, shapes, quantization, MACs, params, arena, runtime support."""
        from edgepool.inspect import inspect_model

        report = inspect_model(_model_file(model), profile)
        if json_out:
            print_json(report.to_dict())
        else:
            _render(report)

    @app.command("estimate", help="Estimate latency, memory and energy per inference of an export on a device. "
                 + FORMULA_HELP)
    def estimate_cmd(
        export: Annotated[Path, typer.Argument(help="An export directory or a .tflite file", show_default=False)],
        profile: Annotated[str, typer.Option("--profile", "-p", help="Device profile name or TOML path")],
        json_out: JsonOpt = False,
    ) -> None:
        from edgepool.inspect import estimate_model

        est = estimate_model(_model_file(export, for_tflite=True), profile)
        if json_out:
            print_json(est.to_dict())
        else:
            c = console()
            _render_estimate(c, est)
            c.print(f"[dim]{FORMULA_HELP}[/]")

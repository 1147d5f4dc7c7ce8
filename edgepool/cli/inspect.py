"""`edgepool inspect MODEL`: read a model without running it (ops, shapes, MACs, arena, runtime support)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._common import console, fmt_bytes, print_json
from ._options import JsonOpt
from ._render import render_estimate

if TYPE_CHECKING:
    from edgepool.inspect import InspectReport


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)


def inspect(
    model: Annotated[Path, typer.Argument(help="A .tflite, .mlpackage or .mlmodel file (or an export directory)",
                                          show_default=False)],
    profile: Annotated[str | None, typer.Option("--profile", "-p", help="Device profile name or TOML path: "
                                                "check op support on it and estimate latency")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Read a model without running it: ops, shapes, quantization, MACs, params, arena, runtime support."""
    from edgepool.inspect import inspect_model
    from edgepool.profiles import resolve

    from ._render import print_shadow_notices

    prof = resolve(profile) if profile else None
    print_shadow_notices([prof] if prof else [])
    report = inspect_model(model, prof)
    if json_out:
        print_json(report.to_dict())
    else:
        _render(report)


def _render_coreml(report: InspectReport) -> None:
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


def _render(report: InspectReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    from edgepool.inspect.support import min_runtime_for_op

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
        for s in bad:
            c.print(f"[red]not supported on {name}[/]: op {s.index} {escape(s.reason)}", soft_wrap=True)
        for s in unknown:
            c.print(f"[yellow]unknown on {name}[/]: op {s.index} {escape(s.reason)}", soft_wrap=True)
        if report.support and not bad and not unknown:
            c.print(f"[green]all ops run on {name}[/] (runtime {report.profile.runtime_version})")
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
        render_estimate(c, report.estimate)

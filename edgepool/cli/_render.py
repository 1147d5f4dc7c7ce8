"""Rendering shared by commands: the progress bar for any long library call, the export table, evaluation tables."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..types import ProgressEvent, ProgressFn, Status
from ._common import console, err_console, fmt_bytes, fmt_pct, hint_for

STAGE_TITLES = {"train": "train", "qat": "QAT fine-tune", "export": "export", "convert": "convert"}


@contextlib.contextmanager
def progress_bar(title: str = "", enabled: bool = True) -> Iterator[ProgressFn | None]:
    """Yield a ProgressFn that draws one rich bar per stage (created on the stage's first event).

    Nothing is drawn before a library call reports, so a step that is skipped shows no bar. A call
    that ends in an EdgepoolError takes its bar away: the error stays one line.
    """
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..errors import EdgepoolError

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err_console(),
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def cb(ev: ProgressEvent) -> None:
            name = STAGE_TITLES.get(ev.stage, ev.stage)
            if title and ev.stage == "train":
                name = title
            if ev.stage not in tasks:
                tasks[ev.stage] = bar.add_task(name, total=ev.total, info="")
            numbers = "  ".join(f"{k} {v:.4f}" for k, v in ev.data.items() if isinstance(v, float))
            bar.update(tasks[ev.stage], completed=ev.done, total=ev.total, info=ev.message or numbers)

        try:
            yield cb
        except EdgepoolError:
            bar.live.transient = True
            raise


def export_row(o: Any) -> dict[str, Any]:
    """One row of the export table (and of `--json`) for a pipeline.ExportOutcome."""
    row: dict[str, Any] = {"target": o.target, "status": o.status.value, "reason": o.reason, "hint": o.hint, "notes": o.notes}
    if o.error is not None:
        row.update(exit_code=o.error.exit_code, hint=hint_for(o.error))
    if o.export is not None:
        v = o.verification.details if o.verification else {}
        row.update(
            format=o.export.format, recipe=o.export.sidecar.get("recipe"), path=str(o.export.path),
            size_bytes=o.export.size_bytes, accuracy=v.get("accuracy"), reference_accuracy=v.get("reference_accuracy"),
            agreement=v.get("agreement"), max_abs_diff=v.get("max_abs_diff"),
        )
    return row


_COLORS = {Status.PASS: "green", Status.NOT_COMPILED: "green", Status.UNVERIFIED: "yellow", Status.FAIL: "red", Status.ERROR: "red"}


def print_export_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title)
    for col in ("target", "format", "recipe", "size", "accuracy", "keras", "agreement", "max |Δ|", "status"):
        t.add_column(col, justify="right" if col in ("size", "accuracy", "keras", "agreement", "max |Δ|") else "left")
    for r in rows:
        st = Status(r["status"])
        mad = r.get("max_abs_diff")
        t.add_row(
            r["target"], r.get("format") or "-", r.get("recipe") or "-", fmt_bytes(r.get("size_bytes")),
            fmt_pct(r.get("accuracy")), fmt_pct(r.get("reference_accuracy")), fmt_pct(r.get("agreement")),
            "-" if mad is None else f"{mad:.2g}", f"[{_COLORS[st]}]{st.value}[/]",
        )
    c = console()
    c.print(t)
    for r in rows:
        if r["status"] != Status.PASS and r.get("reason"):
            c.print(f"[dim]{escape(r['target'])}:[/] {escape(r['status'])}: {escape(r['reason'])}"
                    + (f" [dim](hint: {escape(r['hint'])})[/]" if r.get("hint") else ""), soft_wrap=True)
        for n in r.get("notes") or []:
            c.print(f"[dim]{escape(r['target'])}:[/] {escape(n)}", soft_wrap=True)


def fail_unless_passed(rows: list[dict[str, Any]]) -> None:
    """Exit non-zero when any row failed (exit 1) or could not be made (its error's code, 2 or 3)."""
    from ..errors import GateFailure

    bad = [r for r in rows if not Status(r["status"]).ok]
    if not bad:
        return
    hints = sorted({r["hint"] for r in bad if r.get("hint")})
    what = ", ".join(f"{r['target']} ({r['status']})" for r in bad)
    err = GateFailure(f"not every export passed: {what}", "; ".join(hints) or "see verify.json in the export folder")
    if all(r["status"] == Status.ERROR for r in bad):  # nothing failed verification: the errors' own exit code
        err.exit_code = max(int(r.get("exit_code", 2)) for r in bad)
    raise err


def print_shadow_notices(profiles: list[Any]) -> None:
    """Say so, on stderr, when a user profile in use hides a built-in one of the same name."""
    from ..profiles import shadow_notice

    for p in profiles:
        note = shadow_notice(p)
        if note:
            err_console().print(note, soft_wrap=True, markup=False)


def evaluation_tables(res: dict[str, Any]) -> None:
    from rich.table import Table

    c = console()
    labels = res["labels"]
    c.print(f"[bold]accuracy[/] on {res['data']} ({res['samples']} samples): [bold]{fmt_pct(res['accuracy'])}[/]")
    t = Table(title="per-class accuracy")
    t.add_column("class")
    t.add_column("accuracy", justify="right")
    t.add_column("samples", justify="right")
    for name, acc, row in zip(labels, res["per_class_accuracy"], res["confusion_matrix"], strict=True):
        t.add_row(name, fmt_pct(acc), str(sum(row)))
    c.print(t)
    cm = Table(title="confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for name in labels:
        cm.add_column(name, justify="right")
    for i, (name, row) in enumerate(zip(labels, res["confusion_matrix"], strict=True)):
        cm.add_row(name, *[(f"[bold]{v}[/]" if i == j else (str(v) if v else "·")) for j, v in enumerate(row)])
    c.print(cm)


def _n(x: float | int | None, unit: str = "", digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return f"{x:,}{unit}"
    return f"{x:.{digits}g}{unit}"


def render_estimate(c: Any, est: Any) -> None:
    """An estimate in a few lines on console `c` (also under `edgepool inspect --profile`): the roofline and
    where its peak comes from, memory and energy, the measurement beside it as % of peak, and a warning
    when the measurement beats the roofline."""
    from rich.markup import escape

    c.print(f"[bold]estimate[/] on {est.profile} ({est.precision}; compute-bound, not a measurement): "
            f"latency [bold]{_n(est.latency_ms, ' ms')}[/] = {est.macs:,} MACs / {_n(est.peak_gmacs)} GMAC/s")
    if est.peak_source:
        c.print(f"  [dim]peak: {escape(est.peak_source)}[/]", soft_wrap=True)
    c.print(f"  memory {fmt_bytes(est.memory_bytes)} (arena {fmt_bytes(est.activation_bytes)} + weights "
            f"{fmt_bytes(est.weight_bytes)}); energy {_n(est.energy_mj, ' mJ')} per inference"
            + (f"; {est.battery_inferences:,.0f} inferences per battery" if est.battery_inferences else ""))
    if est.measured_latency_ms is not None:
        eff = est.efficiency
        c.print(f"  [bold]measured[/] median latency {est.measured_latency_ms:.4g} ms ({escape(str(est.measured_source))}): "
                f"{'-' if eff is None else f'{100 * eff:.1f}% of peak'} (estimated / measured latency)", soft_wrap=True)
    for note in est.notes:
        if est.faster_than_roofline and "roofline" in note:
            c.print(f"  [bold red]warning:[/] {escape(note)}", soft_wrap=True)
        else:
            c.print(f"  [dim]note: {escape(note)}[/]", soft_wrap=True)

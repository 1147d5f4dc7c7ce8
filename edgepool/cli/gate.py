"""`edgepool gate CANDIDATE --baseline BASELINE`: may the candidate replace the baseline? Exit 1 when not."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import console, print_json
from ._options import JsonOpt

PrometheusOpt = Annotated[Path | None, typer.Option("--prometheus", help="Write the metrics in the Prometheus text format to this file (replaced each time)")]
JsonlOpt = Annotated[Path | None, typer.Option("--jsonl", help="Append one JSON line per result to this file")]


def register(app: typer.Typer) -> None:
    app.command("gate")(gate)


def gate(
    candidate: Annotated[Path, typer.Argument(help="The candidate: a run directory or an export folder", show_default=False)],
    baseline: Annotated[Path, typer.Option("--baseline", "-b", help="The baseline: a run directory or an export folder", show_default=False)],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Gate thresholds (TOML; any subset of the defaults' keys)")] = None,
    benchmarks: Annotated[list[Path] | None, typer.Option("--benchmarks", help="Also read benchmark results from this file (written with `benchmark --out`); repeatable")] = None,
    json_out: JsonOpt = False,
    prometheus: PrometheusOpt = None,
    jsonl: JsonlOpt = None,
) -> None:
    """Compare a candidate run (or export) with a baseline, check by check; exit 1 when a check fails.

    Checks: Keras test accuracy, per-class accuracy, accuracy after export (verify.json) and on the device,
    parity, size, and from results measured in one benchmark call (`edgepool benchmark CANDIDATE BASELINE`):
    latency (the threshold plus the windows' spread), memory, energy per inference, delegate coverage.
    Each row says PASS, FAIL or SKIP (with the reason). Thresholds: the shipped
    edgepool/data/gate/defaults.toml; --config sets any of its keys.
    """
    from .. import gate as gate_lib
    from .. import metrics
    from ..errors import GateFailure

    cfg = gate_lib.load_config(config)
    report = gate_lib.compare(candidate, baseline, cfg, benchmarks=list(benchmarks or []))
    if prometheus is not None:
        metrics.write_prometheus(prometheus, metrics.gate_families(report))
    if jsonl is not None:
        metrics.append_jsonl(jsonl, metrics.gate_records(report))
    if json_out:
        print_json(report.to_dict())
    else:
        render(report)
    if not report.passed:
        failed = report.failed
        names = ", ".join(sorted({c.check for c in failed}))
        raise GateFailure(f"gate failed: {len(failed)} check(s) failed ({names}) for {report.candidate.name} "
                          f"against {report.baseline.name}", failed[0].reason or "see the table above")


STYLE = {"pass": "[green]PASS[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]SKIP[/]"}


def _value(c: Any, v: float | None) -> str:
    if v is None:
        return "-"
    if c.unit == "fraction":
        return f"{100 * v:.2f}%"
    if c.unit == "bytes":
        from ._common import fmt_bytes

        return fmt_bytes(v)
    if c.unit == "ms":
        return f"{v:.4g} ms"
    if c.unit == "mJ":
        return f"{v:.4g} mJ"
    if c.unit == "parameters":
        return f"{int(v):,}"
    return f"{v:g}"


def render(report: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    c = console()
    t = Table(title=f"gate: {escape(report.candidate.name)} (candidate) vs {escape(report.baseline.name)} (baseline)",
              title_justify="left")
    for col in ("check", "subject", "baseline", "candidate", "change", "limit", "result"):
        t.add_column(col, justify="right" if col in ("baseline", "candidate", "change") else "left")
    for ch in report.checks:
        t.add_row(ch.check, escape(ch.subject), _value(ch, ch.baseline), _value(ch, ch.candidate), escape(ch.change),
                  escape(ch.limit), STYLE[ch.status])
    c.print(t)
    said: dict[tuple[str, str, str], list[str]] = {}  # one line per reason, naming every check it explains
    for ch in report.checks:
        if ch.reason:
            said.setdefault((ch.status, ch.subject, ch.reason), []).append(ch.check)
    for (status, subject, reason), checks in said.items():
        what = f"{', '.join(dict.fromkeys(checks))} {escape(subject)}" if subject != "-" else ", ".join(dict.fromkeys(checks))
        if status == "pass":
            c.print(f"[dim]{what}: {escape(reason)}[/]", soft_wrap=True)
        else:
            c.print(f"[dim]{what}:[/] {STYLE[status]} {escape(reason)}", soft_wrap=True)
    if report.session:
        c.print(f"[dim]benchmark run {report.session['id'][:12]} ({report.session['created']}): "
                + ", ".join(escape(f) for f in report.session["files"]) + "[/]", soft_wrap=True)
    for n in report.notes:
        c.print(f"[dim]{escape(n)}[/]")
    n = report.counts()
    verdict = "[green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    c.print(f"{verdict}: {n['pass']} passed, {n['fail']} failed, {n['skip']} skipped (thresholds: {escape(report.config.source)})")

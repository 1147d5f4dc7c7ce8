"""`edgepool report RUN|SWEEP [--out report.html]`: one self-contained HTML page of a run or a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _common
from ._options import ForceOpt, JsonOpt

HELP = (
    "Write one self-contained HTML report of a run (data, model, training curves, per-class accuracy, exports, "
    "benchmarks per device, per-op cost and Edge TPU partition) or of a sweep directory (recommendations, "
    "Pareto plot, table). Inline CSS and images: it opens offline and reads on a phone."
)


def register(app: typer.Typer) -> None:
    app.command("report", help=HELP)(report)


def report(
    path: Annotated[Path, typer.Argument(metavar="RUN|SWEEP", help="A run directory or a sweep directory",
                                         show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="The HTML file to write (default: report.html "
                                             "inside RUN|SWEEP); an earlier edgepool report there is replaced")] = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    from ..report import build_report, check_out, default_out, is_report, kind_of, write_report

    kind_of(path)  # neither a run nor a sweep: one line before anything else
    target = out if out is not None else default_out(path)
    check_out(target, force=force)  # refused before the work
    replaced = target.exists() and is_report(target)
    rep = build_report(path, target)
    written = write_report(rep, target, force=force)
    if json_out:
        _common.print_json(rep.to_dict(written))
        return
    c = _common.console()
    from rich.markup import escape

    size = _common.fmt_bytes(len(rep.html.encode("utf-8")))
    verb = "replaced" if replaced else "wrote"
    c.print(escape(f"{verb} {written} ({rep.kind} report of {path}: {len(rep.sections)} sections, {rep.images} images, "
                   f"{size})"), soft_wrap=True)
    for n in rep.notes:
        c.print(f"[dim]note: {escape(n)}[/]", soft_wrap=True)

"""`edgepool verify EXPORT`: re-verify an export against the run it came from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _common
from ._options import JsonOpt


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(
    export_path: Annotated[Path, typer.Argument(metavar="EXPORT", help="An export directory (or its model file)")],
    json_out: JsonOpt = False,
) -> None:
    """Re-verify an export: parity with the source Keras model and accuracy on the test split."""
    from .. import pipeline
    from ..errors import GateFailure
    from ..types import Status
    from ._render import progress_bar

    with progress_bar(enabled=not json_out):
        export, v = pipeline.verify(export_path)
    if json_out:
        _common.print_json(v.to_dict())
    else:
        _render(export_path, v)
    if v.status == Status.FAIL:
        raise GateFailure(f"verification of {export_path} failed: {v.reason}", v.hint or "re-export, or use a less aggressive recipe")


def _render(path: Path, v: object) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..types import Verification

    assert isinstance(v, Verification)
    t = Table(title=f"verification of {path}", show_header=False)
    t.add_row("status", v.status.value)
    if v.reason:
        t.add_row("reason", escape(v.reason))
    if v.hint:
        t.add_row("hint", escape(v.hint))
    for k, val in v.details.items():
        if isinstance(val, float) and (k in ("accuracy", "reference_accuracy", "keras_accuracy", "agreement")):
            shown = _common.fmt_pct(val)
        elif isinstance(val, float) and k.endswith("_pp"):
            shown = f"{val:+.2f} pp"
        elif isinstance(val, float):
            shown = f"{val:.3g}"
        elif isinstance(val, dict):
            shown = ", ".join(f"{a}={b}" for a, b in val.items())
        else:
            shown = str(val)
        t.add_row(k.replace("_", " "), escape(shown))
    _common.console().print(t)

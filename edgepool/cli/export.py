"""`edgepool export RUN --recipe R`: one export (.tflite or Core ML), verified on the test split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _common
from ._options import ForceOpt, JsonOpt, RunArg


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    run: RunArg,
    recipe: Annotated[str | None, typer.Option("--recipe", "-r", help="Recipe name or .toml path (default: the profile's, else int8)")] = None,
    profile: Annotated[str | None, typer.Option("--profile", "-p", help="Device profile: its runtime and options; ops its runtime cannot load fail the export")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Export directory (default RUN/exports/<profile or recipe>)")] = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export RUN's model with a recipe (.tflite or Core ML), then verify it on the test split."""
    from .. import pipeline
    from ..profiles import resolve
    from ..recipes import load_recipe
    from ..runs import load_run
    from ._render import (
        export_row,
        fail_unless_passed,
        print_export_table,
        print_shadow_notices,
        progress_bar,
    )

    r = load_run(run)
    prof = resolve(profile) if profile else None
    if prof is not None:
        print_shadow_notices([prof])
    rec = load_recipe(recipe or (prof.recipe if prof is not None else "int8"))
    with progress_bar(enabled=not json_out) as cb:
        outcome = pipeline.export(r, rec, profile=prof, out=out, force=force, progress=cb)
    row = export_row(outcome)
    if json_out:
        v = outcome.verification.to_dict() if outcome.verification else None
        _common.print_json({**row, "verification": v, "sidecar": outcome.export.sidecar if outcome.export else None})
    else:
        print_export_table([row], f"export of {r.path}")
    fail_unless_passed([row])

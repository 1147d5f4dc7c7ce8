"""`edgepool estimate EXPORT --profile P`: latency, memory and energy of one inference, estimated."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgepool.inspect import ESTIMATE_FORMULA

from ._common import console, print_json
from ._options import JsonOpt
from ._render import print_shadow_notices, render_estimate

HELP = ("Estimate latency, memory and energy per inference of a .tflite export on a device. "
        f"Estimates, not measurements: {ESTIMATE_FORMULA}.")


def register(app: typer.Typer) -> None:
    app.command("estimate", help=HELP)(estimate)


def estimate(
    export: Annotated[Path, typer.Argument(help="An export directory or a .tflite file", show_default=False)],
    profile: Annotated[str, typer.Option("--profile", "-p", help="Device profile name or TOML path")],
    json_out: JsonOpt = False,
) -> None:
    from edgepool.inspect import estimate_model
    from edgepool.profiles import resolve

    prof = resolve(profile)
    print_shadow_notices([prof])
    est = estimate_model(export, prof)
    if json_out:
        print_json(est.to_dict())
        return
    c = console()
    render_estimate(c, est)
    c.print(f"[dim]Estimates, not measurements: {ESTIMATE_FORMULA}.[/]")

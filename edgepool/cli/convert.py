"""`edgepool convert RUN --profile P ...`: export + verify for device profiles, one table."""

from __future__ import annotations

from typing import Annotated

import typer

from . import _common
from ._options import ForceOpt, JsonOpt, RunArg


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)


def convert(
    run: RunArg,
    profile: Annotated[list[str] | None, typer.Option("--profile", "-p", help="Device profile name or .toml path; repeat for several")] = None,
    all_profiles: Annotated[bool, typer.Option("--all", help="Every built-in (and user) profile")] = False,
    image_input: Annotated[bool, typer.Option("--image-input", help="Core ML: an image input (CVPixelBuffer) instead of a MultiArray")] = False,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export and verify RUN's model for each device profile (format and recipe come from the profile)."""
    from ..convert import convert_for_profiles
    from ..errors import InputError
    from ..profiles import list_profiles, resolve
    from ..runs import load_run
    from .quantize import _fail_on, export_rows, print_export_table

    if not profile and not all_profiles:
        raise InputError("no device profile given", "pass --profile NAME (see `edgepool profiles list`) or --all")
    r = load_run(run)
    profiles = list_profiles() if all_profiles else [resolve(p) for p in profile or []]
    results = convert_for_profiles(
        r, profiles, force=force, progress_console=None if json_out else _common.err_console(), image_input=image_input
    )
    rows = export_rows(results)
    if json_out:
        _common.print_json(rows)
    else:
        print_export_table(rows, f"convert {r.path}")
    _fail_on(rows)

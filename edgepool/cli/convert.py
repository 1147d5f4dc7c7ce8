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
    """Export and verify RUN's model for each device profile (format and recipe come from the profile).

    Exits non-zero when any profile's export failed verification or could not be made.
    """
    from .. import pipeline
    from ..errors import InputError, ProfileError
    from ..profiles import list_profiles, resolve
    from ..runs import load_run
    from ._render import (
        export_row,
        fail_unless_passed,
        print_export_table,
        print_shadow_notices,
        progress_bar,
    )

    if not profile and not all_profiles:
        raise InputError("no device profile given", "pass --profile NAME (see `edgepool profiles list`) or --all")
    r = load_run(run)
    broken: list = []
    profiles = list_profiles(errors=broken) if all_profiles else [resolve(p) for p in profile or []]
    for b in broken:  # the good profiles are still converted; the command fails at the end
        _common.err_console().print(f"invalid: {b.error}", soft_wrap=True, markup=False)
    print_shadow_notices(profiles)
    with progress_bar(enabled=not json_out) as cb:
        result = pipeline.convert(r, profiles, force=force, image_input=image_input, progress=cb)
    rows = [export_row(o) for o in result.outcomes]
    if json_out:
        _common.print_json(rows)
    else:
        print_export_table(rows, f"convert {r.path}")
    fail_unless_passed(rows)
    if broken:
        raise ProfileError(f"{len(broken)} device profile(s) could not be read", "fix them; `edgepool profiles validate FILE` shows why")

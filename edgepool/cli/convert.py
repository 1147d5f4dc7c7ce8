"""`edgepool convert RUN --profile P ...`: export + verify for device profiles, one table.

`edgepool convert MODEL_FILE --data D --profile P` imports the model first (`edgepool import`), into
`--out RUN` or a temporary run folder whose path is printed, then converts that run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _common
from ._options import ChannelsOpt, ForceOpt, ImageSizeOpt, JsonOpt, SkipBadOpt
from .import_ import CustomObjectsOpt, LabelsOpt, NormalizeOpt, UnsafeOpt


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)


def convert(
    run: Annotated[Path, typer.Argument(help="A run directory, or a model file / SavedModel folder to import first (with --data)",
                                        show_default=False)],
    profile: Annotated[list[str] | None, typer.Option("--profile", "-p", help="Device profile name or .toml path; repeat for several")] = None,
    all_profiles: Annotated[bool, typer.Option("--all", help="Every built-in (and user) profile")] = False,
    image_input: Annotated[bool, typer.Option("--image-input", help="Core ML: an image input (CVPixelBuffer) instead of a MultiArray")] = False,
    data: Annotated[str | None, typer.Option("--data", "-d", help="For a model file: the data to import it with (digits | mnist-5k | "
                                             "an image folder | an .npz)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="For a model file: the run directory to import into "
                                             "(default: a new temporary folder)")] = None,
    labels: LabelsOpt = None,
    normalize: NormalizeOpt = "0..1",
    custom_objects: CustomObjectsOpt = None,
    unsafe_load: UnsafeOpt = False,
    channels: ChannelsOpt = None,
    image_size: ImageSizeOpt = None,
    skip_bad: SkipBadOpt = False,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export and verify a model for each device profile (format and recipe come from the profile).

    RUN is a run directory, or a model file (.keras, .h5, .onnx, .tflite, a SavedModel folder) with
    --data: it is imported first (`edgepool import`). Exits non-zero when any profile's export failed
    verification or could not be made.
    """
    from .. import pipeline
    from ..errors import InputError, ProfileError
    from ..profiles import list_profiles, resolve
    from ..runs import MANIFEST, load_run
    from ._render import (
        export_row,
        fail_unless_passed,
        print_export_table,
        print_shadow_notices,
        progress_bar,
    )

    if not profile and not all_profiles:
        raise InputError("no device profile given", "pass --profile NAME (see `edgepool profiles list`) or --all")
    broken: list = []
    profiles = list_profiles(errors=broken) if all_profiles else [resolve(p) for p in profile or []]
    is_run = run.is_dir() and (run / MANIFEST).is_file()
    if is_run and (data is not None or out is not None):
        raise InputError(f"{run} is a run directory: --data and --out are for a model file", "drop --data and --out")
    if is_run:
        r = load_run(run)
    else:
        r = _import_first(run, data, out, labels=labels, normalize=normalize, custom_objects=custom_objects,
                          unsafe_load=unsafe_load, channels=channels, image_size=image_size, skip_bad=skip_bad,
                          force=force, json_out=json_out)
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


def _import_first(model: Path, data: str | None, out: Path | None, *, json_out: bool, **options: object):  # -> Run
    import tempfile

    from ..errors import InputError
    from ..importers import detect
    from ._render import progress_bar
    from .import_ import render, run_import

    if not model.exists():
        raise InputError(f"{model} does not exist", "pass a run directory or a model file")
    if model.is_dir() and not (model / "saved_model.pb").is_file():
        raise InputError(f"{model} is neither a run (no manifest.json) nor a SavedModel (no saved_model.pb)",
                         "pass a folder `edgepool train` or `edgepool import` wrote, or a model file")
    detect(model)  # not a run and not a model: say what it is before asking for data
    if data is None:
        raise InputError(f"{model} is a model file, not a run: converting it needs data to verify with",
                         "pass --data (digits, mnist-5k, an image folder or an .npz), or import it first with `edgepool import`")
    temporary = out is None
    target = out if out is not None else Path(tempfile.mkdtemp(prefix="edgepool-convert-")) / (model.stem or "model")
    with progress_bar(enabled=not json_out) as cb:
        result = run_import(model, data, target, progress=cb, **options)  # type: ignore[arg-type]
    if not json_out:
        render(result)
        if temporary:
            _common.console().print(f"the run is in a temporary folder, {target}: pass --out RUN to keep it elsewhere",
                                    soft_wrap=True, markup=False)
    return result.run

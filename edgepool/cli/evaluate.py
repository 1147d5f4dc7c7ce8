"""`edgepool evaluate`: accuracy, per-class accuracy and confusion matrix of a run's model."""

from __future__ import annotations

import typer

from . import _common
from ._options import ChannelsOpt, ImageSizeOpt, JsonOpt, RunArg, SkipBadOpt, load_data
from ._options import DataOpt as _DataOpt


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)


def evaluate(
    run: RunArg,
    data: _DataOpt = "",
    channels: ChannelsOpt = None,
    image_size: ImageSizeOpt = None,
    skip_bad: SkipBadOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Evaluate RUN's model on its held-out test split, or on all of --data."""
    from ..runs import load_run
    from ..training import evaluate_run

    r = load_run(run)
    ds = None
    if data:
        spec = r.input_spec
        ds = load_data(data, channels or spec["channels"], image_size or f"{spec['height']}x{spec['width']}", skip_bad)
    res = evaluate_run(r, ds)
    if json_out:
        _common.print_json(res)
        return
    from ._render import evaluation_tables

    evaluation_tables(res)

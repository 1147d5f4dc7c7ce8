"""`edgepool quantize RUN --recipe int8-qat`: quantization-aware fine-tune (TFMOT) of a run's model."""

from __future__ import annotations

from typing import Annotated

import typer

from . import _common
from ._options import ForceOpt, JsonOpt, RecipeOpt, RunArg


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize)


def quantize(
    run: RunArg,
    recipe: RecipeOpt = "int8-qat",
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="QAT epochs (default: the recipe's)")] = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Quantization-aware fine-tune (TFMOT) of RUN's model for a QAT recipe; `export` then converts it.

    For post-training recipes there is nothing to train: use `edgepool export RUN --recipe int8`.
    """
    from .. import pipeline
    from ..recipes import load_recipe
    from ..runs import load_run
    from ._render import progress_bar

    rec = load_recipe(recipe)
    with progress_bar(f"QAT {rec.name}", enabled=not json_out) as cb:
        info = pipeline.quantize(load_run(run), rec, epochs=epochs, force=force, progress=cb)
    summary = {k: info[k] for k in ("recipe", "epochs", "float_test_accuracy", "qat_test_accuracy")}
    if json_out:
        _common.print_json(summary)
        return
    _common.console().print(
        f"QAT [bold]{rec.name}[/]: float {_common.fmt_pct(info['float_test_accuracy'])} -> QAT (fake-quant) "
        f"{_common.fmt_pct(info['qat_test_accuracy'])} on the test split; now `edgepool export {run} --recipe {rec.name}`"
    )

"""`edgepool recipes list | show NAME`: the shipped quantization recipes (and user .toml files)."""

from __future__ import annotations

from typing import Annotated

import typer

from . import _common
from ._options import JsonOpt

recipes_app = _common.command_group("Quantization recipes: list and show them.")


def register(app: typer.Typer) -> None:
    app.add_typer(recipes_app, name="recipes")


@recipes_app.command("list")
def list_cmd(json_out: JsonOpt = False) -> None:
    """List the shipped recipes."""
    from ..recipes import list_recipes
    from ..types import RecipeFormat

    rs = list_recipes()
    if json_out:
        _common.print_json([r.to_dict() for r in rs])
        return
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="quantization recipes")
    for col in ("name", "format", "weights", "activations", "in/out", "QAT", "description"):
        t.add_column(col)
    for r in rs:
        if r.format is RecipeFormat.TFLITE:
            row = (r.activations, f"{r.input_type}/{r.output_type}", str(r.qat_epochs or "-"))
        else:
            row = (r.compute_precision, "-", "-")
        t.add_row(r.name, r.format.value, r.weights_label, *row, escape(r.description))
    _common.console().print(t)


@recipes_app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="Recipe name or a path to a recipe .toml file.")],
    json_out: JsonOpt = False,
) -> None:
    """Show one recipe's settings (only the keys that apply to its format)."""
    from ..recipes import load_recipe

    r = load_recipe(name)
    if json_out:
        _common.print_json(r.to_dict())
        return
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=f"recipe {escape(r.name)}", show_header=False)
    for k, v in r.settings().items():
        t.add_row(k, escape(str(v)))
    _common.console().print(t)

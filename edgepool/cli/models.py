"""`edgepool models`: the model zoo presets with their parameters and MACs."""

from __future__ import annotations

from typing import Annotated

import typer

from . import _common
from ._options import JsonOpt


def register(app: typer.Typer) -> None:
    app.command("models")(models)


def models(
    input_size: Annotated[str, typer.Option("--input", help="Input HxWxC used to count MACs and parameters")] = "28x28x1",
    classes: Annotated[int, typer.Option("--classes", min=2)] = 10,
    json_out: JsonOpt = False,
) -> None:
    """List the model presets: blocks, head, parameters and MACs for an input size."""
    from ..errors import InputError
    from ..models import PRESETS

    try:
        h, w, c = (int(v) for v in input_size.lower().split("x"))
    except ValueError:
        raise InputError(f"--input {input_size!r} is not HxWxC", "e.g. 28x28x1") from None
    rows = []
    for name, spec in PRESETS.items():
        params, macs = spec.count((h, w, c), classes)  # arithmetic: no TensorFlow, no model built
        rows.append(
            {
                "name": name,
                "blocks": " ".join(f"{b.filters}{'ds' if b.separable else ''}/{b.pool}" for b in spec.blocks),
                "head": spec.head,
                "params": params,
                "macs": macs,
                "description": spec.description,
            }
        )
    if json_out:
        _common.print_json({"input": [h, w, c], "classes": classes, "models": rows})
        return
    from rich.table import Table

    t = Table(title=f"model presets for a {h}x{w}x{c} input, {classes} classes")
    for col in ("name", "blocks (filters/pool)", "head", "params", "MACs", "description"):
        t.add_column(col, justify="right" if col in ("params", "MACs") else "left")
    for r in rows:
        t.add_row(r["name"], r["blocks"], r["head"], f"{r['params']:,}", f"{r['macs']:,}", r["description"])
    _common.console().print(t)

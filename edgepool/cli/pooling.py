"""`edgepool pooling layers | matrix`: the pooling layer library and what survives each export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _common
from ._options import JsonOpt

pooling_app = _common.command_group("The pooling layer library: its layers, and the export compatibility matrix.")


def register(app: typer.Typer) -> None:
    app.add_typer(pooling_app, name="pooling")


@pooling_app.command("layers")
def layers_cmd(json_out: JsonOpt = False) -> None:
    """List the pooling layers (tf_keras, `edgepool.layers`) with the first line of their docs."""
    from ..layers import LAYER_MODULES, get

    rows = [{"layer": name, "module": f"edgepool.layers.{mod}",
             "summary": (get(name).__doc__ or "").strip().splitlines()[0]} for name, mod in LAYER_MODULES.items()]
    if json_out:
        _common.print_json(rows)
        return
    from rich.markup import escape
    from rich.table import Table

    t = Table(title="edgepool pooling layers")
    for col in ("layer", "module", "summary"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["layer"], r["module"], escape(r["summary"]))
    _common.console().print(t)


@pooling_app.command("matrix")
def matrix_cmd(
    layer: Annotated[list[str] | None, typer.Option("--layer", "-l", help="Only this layer class or case (repeatable)")] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the Markdown table the README holds")] = False,
    write_readme: Annotated[Path | None, typer.Option("--write-readme", help="Replace the matrix between the pooling-matrix markers of this README file")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Convert a small model per pooling layer to float TFLite, int8 TFLite, the Edge TPU (analysis)
    and Core ML, verify each against Keras, and show the matrix (✓ exact / ✓ within tolerance / ✗ why).

    The tflite-runtime 2.14 column runs in the Python named for 2.14 in EDGEPOOL_TFLITE_RUNTIMES
    (e.g. EDGEPOOL_TFLITE_RUNTIMES=2.14=/path/to/venv/bin/python); without one it is skipped."""
    from ..compat import build_matrix, replace_readme_block, runtime_python_from_env, to_json
    from ..compat import markdown as to_markdown
    from ..errors import InputError
    from ._render import progress_bar

    if write_readme is not None and not write_readme.is_file():
        raise InputError(f"{write_readme} is not a file", "give the README.md to update")
    with progress_bar(enabled=not json_out) as cb:
        rows = build_matrix(layer or None, runtime_python_from_env(), cb)
    if write_readme is not None:
        try:
            text = replace_readme_block(write_readme.read_text(), rows)
        except ValueError as e:
            raise InputError(f"{write_readme}: {e}", "add the two pooling-matrix marker comments where the table goes") from None
        from ..runs import atomic_write_text

        atomic_write_text(write_readme, text)
    if json_out:
        import json

        _common.print_json(json.loads(to_json(rows)))
        return
    if markdown:
        print(to_markdown(rows))
        return
    from rich.markup import escape
    from rich.table import Table

    from ..compat import COLUMN_TITLES, COLUMNS

    t = Table(title="pooling compatibility matrix", show_lines=True)
    t.add_column("layer (case)")
    for c in COLUMNS:
        t.add_column(COLUMN_TITLES[c])
    for r in rows:
        t.add_row(r.name, *(escape(r.cells[c].text()) for c in COLUMNS))
    c = _common.console()
    c.print(t)
    c.print("[dim]Edge TPU: predicted from Coral's op rules (no compiler here). Core ML: FP32 ML Program run by "
            "edgepool's NumPy MIL executor. int8 tolerance: 4 quantization steps.[/]")

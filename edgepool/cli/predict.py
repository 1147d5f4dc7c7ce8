"""`edgepool predict EXPORT IMAGE...|DIR`: classify image files with an export, as an app would."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import console, fmt_pct, print_json
from ._options import JsonOpt

HELP = ("Classify images with an export (TFLite, Edge TPU's CPU model, Core ML) using the export's own input size, "
        "normalization and labels: what an app would print. A folder gives all its images; images in sub-folders "
        "named like classes are scored against them.")


def register(app: typer.Typer) -> None:
    app.command("predict", help=HELP)(predict)


def predict(
    export: Annotated[Path, typer.Argument(metavar="EXPORT", help="An export folder, its model file, or a .tflite with edgepool metadata",
                                           show_default=False)],
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...|DIR", help="Image files or folders of images",
                                                 show_default=False)],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Classes shown per image, best first")] = 3,
    json_out: JsonOpt = False,
) -> None:
    from ..predict import predict as run_predict

    res = run_predict(export, list(images), top_k_classes=top_k)
    if json_out:
        print_json(res.to_dict())
        return
    _render(res)


def _render(res) -> None:  # res: edgepool.predict.PredictResult
    from rich.markup import escape
    from rich.table import Table

    c = console()
    inp = res.input
    norm = inp["normalization"]
    c.print(f"{escape(res.model_file)}: {res.format}{f' ({res.recipe})' if res.recipe else ''}, run by {res.executor}; "
            f"input {inp['height']}x{inp['width']}x{inp['channels']} {inp['dtype']}, "
            f"x = raw * {norm['scale']:.6g} + {norm['offset']:.6g}")
    t = Table(show_header=True, header_style="bold")
    t.add_column("image", overflow="fold")
    t.add_column("prediction")
    t.add_column("score", justify="right")
    k = len(res.predictions[0].top) if res.predictions else 0
    if k > 1:
        t.add_column(f"next {k - 1}")
    show_expected = any(p.expected is not None for p in res.predictions)
    if show_expected:
        t.add_column("folder")
    for p in res.predictions:
        row = [escape(p.path), escape(p.label), fmt_pct(p.top[0]["score"])]
        if k > 1:
            row.append(", ".join(f"{escape(o['label'])} {fmt_pct(o['score'])}" for o in p.top[1:]))
        if show_expected:
            mark = "" if p.expected is None else ("" if p.correct else " [red]✗[/]")
            row.append(escape(p.expected or "-") + mark)
        t.add_row(*row)
    c.print(t)
    if res.accuracy is not None:
        right = sum(bool(p.correct) for p in res.predictions)
        c.print(f"top-1 matches the folder's class for {right} of {len(res.predictions)} images ({fmt_pct(res.accuracy)})")
    for note in res.notes:
        c.print(f"[dim]{escape(note)}[/]")

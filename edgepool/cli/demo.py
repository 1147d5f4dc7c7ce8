"""`edgepool demo` (what `make demo` runs): the whole job on built-in data, one command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from . import _common


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    data: Annotated[str, typer.Option("--data", help="Built-in data set")] = "mnist-5k",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 40,
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default runs/demo-<time>)")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Train the default model on mnist-5k and print a summary table."""
    from ..datasets import load_dataset
    from ..models import DEFAULT_PRESET, preset
    from ..runs import save_run
    from ..training import TrainConfig, train
    from ._render import epoch_progress

    c = _common.console()
    out = out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    spec = preset(DEFAULT_PRESET)
    ds = load_dataset(data)
    c.print(f"[bold]1/1 train[/] {spec.name} on {ds.name} ({len(ds.y)} images {ds.input_shape}) -> {out}")
    with epoch_progress(f"train {spec.name}") as cb:
        result = train(spec, ds, TrainConfig(epochs=epochs, seed=seed), progress=cb)
    run = save_run(result, out)
    m = run.manifest
    from rich.table import Table

    t = Table(title="edgepool demo")
    for col in ("run", "model", "data", "params", "MACs", "test accuracy", "train time"):
        t.add_column(col)
    t.add_row(
        str(run.path), spec.name, ds.name, f"{m['model']['params']:,}", f"{m['model']['macs']:,}",
        _common.fmt_pct(m["metrics"]["test_accuracy"]), f"{m['timings']['train_s']:.1f} s",
    )
    c.print(t)

"""`edgepool train`: train a pooling CNN and write a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _common
from ._options import ChannelsOpt, DataOpt, ForceOpt, ImageSizeOpt, JsonOpt, SkipBadOpt, load_data


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    data: DataOpt = "mnist-5k",
    model: Annotated[str, typer.Option("--model", "-m", help="Model preset (see `edgepool models`)")] = "small",
    pool: Annotated[str | None, typer.Option("--pool", help="Downsampling for every block: max | avg | l2 | strided | none")] = None,
    head: Annotated[str | None, typer.Option("--head", help="flatten | global-avg | global-max")] = None,
    width: Annotated[float | None, typer.Option("--width", help="Width multiplier for the filter counts")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Maximum epochs (early stopping on validation)")] = 40,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (cosine decay)")] = 3e-3,
    patience: Annotated[int, typer.Option("--patience", min=1, help="Early-stopping patience in epochs")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the split, init and augmentation")] = 0,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Turn off the small random shifts")] = False,
    channels: ChannelsOpt = None,
    image_size: ImageSizeOpt = None,
    skip_bad: SkipBadOpt = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<model>-<data>-s<seed>)")] = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train a lightweight pooling CNN and write a run directory (model, manifest, plots, test split)."""
    import dataclasses

    from .. import pipeline
    from ..models import preset
    from ..training import TrainConfig
    from ._render import progress_bar

    spec = preset(model)
    if pool:
        spec = spec.with_pool(pool)
    if head:
        spec = dataclasses.replace(spec, head=head)
    if width:
        spec = dataclasses.replace(spec, width=width)
    spec.validate()
    ds = load_data(data, channels, image_size, skip_bad)
    out = out or Path("runs") / f"{spec.name}-{Path(ds.name).name}-s{seed}"
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=lr, patience=patience, seed=seed, augment=not no_augment)
    skipped = len(ds.source.get("skipped", []))
    if skipped and not json_out:
        _common.err_console().print(f"[yellow]skipped {skipped} unreadable image(s)[/] (listed in the manifest)")
    with progress_bar(f"train {spec.name} on {ds.name}", enabled=not json_out) as cb:
        run = pipeline.train_run(spec, ds, cfg, out, force=force, progress=cb)
    m = run.manifest
    summary = {
        "run": str(run.path),
        "model": spec.name,
        "data": ds.name,
        "test_accuracy": m["metrics"]["test_accuracy"],
        "val_accuracy": m["metrics"]["val_accuracy"],
        "params": m["model"]["params"],
        "macs": m["model"]["macs"],
        "epochs_run": m["training"]["epochs_run"],
        "train_s": round(m["timings"]["train_s"], 1),
    }
    if json_out:
        _common.print_json(summary)
        return
    from rich.table import Table

    t = Table(title=f"run {run.path}", show_header=False)
    for k, v in summary.items():
        t.add_row(k, _common.fmt_pct(v) if k.endswith("accuracy") else str(v))
    _common.console().print(t)

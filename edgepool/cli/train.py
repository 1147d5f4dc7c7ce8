"""`edgepool train`: train a pooling CNN and write a run directory (or go on with an interrupted one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..models import HEAD_POOLS, POOLS
from . import _common
from ._options import DATA_FLAGS, ChannelsOpt, DataOpt, ImageSizeOpt, JsonOpt, SkipBadOpt, load_data

# what the library's fields are called on the command line, for its range messages
FLAGS = {"epochs": "--epochs", "batch_size": "--batch-size", "learning_rate": "--lr", "patience": "--patience",
         "seed": "--seed", "width": "--width", **DATA_FLAGS}
# options that only --json may accompany with --resume: the run's manifest says all of them
_KEEP_WITH_RESUME = {"resume", "json_out"}


def register(app: typer.Typer) -> None:
    app.command("train")(train)


def train(
    ctx: typer.Context,
    data: DataOpt = "mnist-5k",
    model: Annotated[str, typer.Option("--model", "-m", help="Model preset (see `edgepool models`)")] = "small",
    pool: Annotated[str | None, typer.Option("--pool", help=f"Downsampling for every block: {' | '.join(POOLS)}; or a pooling head: {' | '.join(HEAD_POOLS)} (edgepool pooling layers)")] = None,
    head: Annotated[str | None, typer.Option("--head", help="flatten | global-avg | global-max")] = None,
    width: Annotated[float | None, typer.Option("--width", help="Width multiplier for the filter counts, in (0, 8]")] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Maximum epochs, >= 1 (early stopping on validation)")] = 40,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size, >= 1")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (cosine decay), in (0, 1]")] = 3e-3,
    patience: Annotated[int, typer.Option("--patience", help="Early-stopping patience in epochs, >= 1")] = 20,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the split, init and augmentation, >= 0")] = 0,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Turn off the small random shifts")] = False,
    channels: ChannelsOpt = None,
    image_size: ImageSizeOpt = None,
    skip_bad: SkipBadOpt = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<model>-<data>-s<seed>)")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing run: its model, exports and QAT models go; "
                                        "benchmark results and files edgepool did not write are kept")] = False,
    resume: Annotated[Path | None, typer.Option("--resume", help="Go on training an interrupted run (Ctrl-C) with the "
                                                "data, split, seed and settings in its manifest")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Train a lightweight pooling CNN and write a run directory (model, manifest, plots, test split).

    Ctrl-C stops training and keeps the best weights so far in the run (exit 130); `--resume RUN` goes on.
    """
    import dataclasses

    from .. import pipeline, runs
    from ..models import preset
    from ..training import TrainConfig, load_resume
    from ._render import progress_bar

    err = _common.err_console()
    state = None
    if resume is not None:
        _refuse_options_with_resume(ctx)
        state = load_resume(resume)
        spec, ds, cfg, out = state.spec, state.dataset, state.config, state.path
        if not json_out:
            err.print(f"resuming run {out} after epoch {state.epochs_done} of {cfg.epochs} "
                      f"(best so far: epoch {state.best_epoch})", markup=False, soft_wrap=True)
    else:
        spec = preset(model)
        if pool:
            spec = spec.with_pool(pool)
        if head:
            spec = dataclasses.replace(spec, head=head)
        if width is not None:
            spec = dataclasses.replace(spec, width=width)
        cfg = TrainConfig(epochs=epochs, batch_size=batch_size, learning_rate=lr, patience=patience, seed=seed, augment=not no_augment)
        spec.validate(names=FLAGS)
        cfg.validate(names=FLAGS)
        ds = load_data(data, channels, image_size, skip_bad)
        out = out or Path("runs") / f"{spec.name}-{Path(ds.name).name}-s{seed}"
    plan = runs.plan_replace(out)  # a folder that is not a run is refused here, before training
    if not (force or state is not None):
        runs.refuse_existing(out, force, "run")
    notes = _data_notes(ds)
    if not json_out:
        for line in notes:
            err.print(line, markup=False, soft_wrap=True)
    if plan.exists and (state is None or plan.exports or plan.qat):  # it deletes things: said even with --json, and recorded
        err.print(plan.summary(), markup=False, soft_wrap=True)
    try:
        with progress_bar(f"train {spec.name} on {ds.name}", enabled=not json_out) as cb:
            run = pipeline.train_run(spec, ds, cfg, out, force=force, progress=cb, resume=state)
    except KeyboardInterrupt:
        err.print("interrupted: no run was written (a run is kept once an epoch has finished)", markup=False, soft_wrap=True)
        raise typer.Exit(130) from None
    m = run.manifest
    t = m["training"]
    summary: dict[str, Any] = {
        "run": str(run.path),
        "model": spec.name,
        "data": ds.name,
        "test_accuracy": m["metrics"]["test_accuracy"],
        "val_accuracy": m["metrics"]["val_accuracy"],
        "params": m["model"]["params"],
        "macs": m["model"]["macs"],
        "epochs_run": t["epochs_run"],
        "best_epoch": t["best_epoch"],
        "interrupted": bool(t.get("interrupted")),
        "train_s": round(m["timings"]["train_s"], 1),
    }
    if json_out:
        _common.print_json({**summary, "data_notes": notes, **({"replaced": m["replaced"]} if "replaced" in m else {})})
    else:
        from rich.table import Table

        table = Table(title=f"run {run.path}", show_header=False)
        for k, v in summary.items():
            if k != "interrupted":
                table.add_row(k, _common.fmt_pct(v) if k.endswith("accuracy") else f"{v:,}" if isinstance(v, int) else str(v))
        _common.console().print(table)
    if summary["interrupted"]:
        err.print(f"interrupted after {t['epochs_run']} epochs: kept the best weights (epoch {t['best_epoch']}) in {run.path}; "
                  f"`edgepool train --resume {run.path}` continues", markup=False, soft_wrap=True)
        raise typer.Exit(130)


def _refuse_options_with_resume(ctx: typer.Context) -> None:
    """--resume takes everything from the run's manifest: an option given with it would be ignored, so it is an error."""
    from ..errors import InputError

    def given_by_user(name: str | None) -> bool:  # click's ParameterSource, by name (Typer vendors click)
        source = ctx.get_parameter_source(name) if name else None
        return getattr(source, "name", None) in ("COMMANDLINE", "ENVIRONMENT")

    given = [p.opts[0] for p in ctx.command.params if p.name not in _KEEP_WITH_RESUME and given_by_user(p.name)]
    if given:
        raise InputError(f"--resume goes on with the data and settings in the run's manifest: {', '.join(given)} cannot be given with it",
                         "drop them to resume, or train a new run with them")


def _data_notes(ds: Any) -> list[str]:
    """What was decided about the data, and the images skipped, as lines for people."""
    from ..datasets import name_files

    lines = [f"data: {n}" for n in ds.source.get("notes", [])]
    skipped = [s["path"] for s in ds.source.get("skipped", [])]
    if skipped:
        lines.append(f"skipped {len(skipped)} unreadable image{'s' if len(skipped) > 1 else ''}: "
                     f"{name_files(skipped, ds.source.get('path'))} (each listed in the manifest with its error)")
    return lines

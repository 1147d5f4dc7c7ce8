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
    """The whole job on built-in data: train the default model, convert it for every built-in device
    profile (export + verify), and benchmark the TFLite exports on this machine."""
    from rich.table import Table

    from .. import pipeline
    from ..bench.protocol import BenchOptions
    from ..datasets import load_dataset
    from ..models import DEFAULT_PRESET, preset
    from ..profiles import list_profiles
    from ..recipes import load_recipe
    from ..training import TrainConfig
    from ..types import Format
    from ._bench_view import benchmark_progress, benchmark_table, finish_benchmark
    from ._render import export_row, print_export_table, progress_bar

    c = _common.console()
    out = out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    spec = preset(DEFAULT_PRESET)
    ds = load_dataset(data)
    c.print(f"[bold]1/3 train[/] {spec.name} on {ds.name} ({len(ds.y)} images {ds.input_shape}) -> {out}")
    with progress_bar(f"train {spec.name}") as cb:
        run = pipeline.train_run(spec, ds, TrainConfig(epochs=epochs, seed=seed), out, progress=cb)
    m = run.manifest
    t = Table(title="edgepool demo")
    for col in ("run", "model", "data", "params", "MACs", "test accuracy", "train time"):
        t.add_column(col)
    t.add_row(
        str(run.path), spec.name, ds.name, f"{m['model']['params']:,}", f"{m['model']['macs']:,}",
        _common.fmt_pct(m["metrics"]["test_accuracy"]), f"{m['timings']['train_s']:.1f} s",
    )
    c.print(t)

    # 2. convert for every built-in profile (+ a float32 reference export), each verified
    profiles = [p for p in list_profiles() if p.builtin]
    c.print(f"[bold]2/3 convert[/] for {len(profiles)} built-in device profiles + a float32 reference")
    with progress_bar() as cb:
        reference = pipeline.export(run, load_recipe("float32"), progress=cb)
        reference.target = "float32 (reference)"
        converted = pipeline.convert(run, profiles, progress=cb)
    outcomes = [reference, *converted.outcomes]
    print_export_table([export_row(o) for o in outcomes], "exports (verified on the test split)")

    # 3. benchmark on this machine: one export per distinct TFLite recipe
    seen: set[str] = set()
    targets = []
    for o in outcomes:
        if o.export is not None and o.export.format == Format.TFLITE and o.export.sidecar["recipe"] not in seen:
            seen.add(o.export.sidecar["recipe"])
            targets.append(o.export.path)
    c.print(f"[bold]3/3 benchmark[/] {len(targets)} TFLite exports on this machine (1 thread; Core ML needs an Apple device)")
    options = BenchOptions(runs=50, min_seconds=0.5, windows=3)
    with benchmark_progress(enabled=True) as progress:
        results, saved = pipeline.benchmark(targets, options, keep_going=True, progress=progress)
    benchmark_table(results)
    for p in saved:
        c.print(f"[dim]saved {p}[/]")
    finish_benchmark(results)
    c.print(f"next: [bold]edgepool inspect {run.path}/exports/host-cpu --profile raspberry-pi-5[/]")

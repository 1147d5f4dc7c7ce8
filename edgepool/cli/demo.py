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
    from ..datasets import load_dataset
    from ..models import DEFAULT_PRESET, preset
    from ..runs import save_run
    from ..training import TrainConfig, train
    from ._render import epoch_progress

    c = _common.console()
    out = out or Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    spec = preset(DEFAULT_PRESET)
    ds = load_dataset(data)
    c.print(f"[bold]1/3 train[/] {spec.name} on {ds.name} ({len(ds.y)} images {ds.input_shape}) -> {out}")
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

    # 2. convert for every built-in profile (+ a float32 reference export), each verified
    from ..convert import convert_for_profiles
    from ..export import export
    from ..profiles import list_profiles
    from .quantize import export_rows, print_export_table

    profiles = [p for p in list_profiles() if p.builtin]
    c.print(f"[bold]2/3 convert[/] for {len(profiles)} built-in device profiles + a float32 reference")
    results = [("float32 (reference)", export(run, "float32", strict=False))]
    results += convert_for_profiles(run, profiles, progress_console=_common.err_console())
    print_export_table(export_rows(results), "exports (verified on the test split)")

    # 3. benchmark on this machine: one export per distinct TFLite model
    from ..bench.protocol import BenchOptions
    from ..bench.runner import benchmark, save_results
    from .benchmark import _progress, _table, finish

    seen: set[str] = set()
    targets = []
    for _, res in results:
        if isinstance(res, str) or res.sidecar.get("format") != "tflite" or res.sidecar["recipe"] in seen:
            continue
        seen.add(res.sidecar["recipe"])
        targets.append(res.path)
    c.print(f"[bold]3/3 benchmark[/] {len(targets)} TFLite exports on this machine (1 thread; Core ML needs an Apple device)")
    options = BenchOptions(runs=50, min_seconds=0.5, windows=3)
    with _progress(enabled=True) as progress:
        bench = benchmark(targets, options, progress=progress, keep_going=True)
    _table(bench)
    for p in save_results(bench, options):
        c.print(f"[dim]saved {p}[/]")
    finish(bench)
    c.print(f"next: [bold]edgepool inspect {run.path}/exports/host-cpu --profile raspberry-pi-5[/]")

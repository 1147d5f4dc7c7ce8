"""`edgepool sweep`: train every pooling configuration, convert and measure it per profile, and decide."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import _common
from ._options import DataOpt, JsonOpt

HELP = ("Pooling ablation: train every combination of --pool x --model x --window x --width x seed, convert it "
        "for each --profile, benchmark it on the profile's device (or estimate it), and write SWEEP/sweep.json, "
        "a table and a Pareto plot with a recommendation per profile. Run the same command again to continue "
        "an interrupted sweep: finished configurations are never recomputed.")

# library field -> flag, for range messages
FLAGS = {"epochs": "--epochs", "batch_size": "--batch-size", "learning_rate": "--lr", "patience": "--patience",
         "seeds": "--seeds", "window": "--window", "width": "--width", "runs": "--bench-runs",
         "windows": "--bench-windows", "min_seconds": "--bench-seconds"}


def register(app: typer.Typer) -> None:
    app.command("sweep", help=HELP)(sweep)


def sweep(
    out: Annotated[Path, typer.Option("--out", "-o", help="The sweep directory (created, or continued when it holds this sweep)")],
    profile: Annotated[list[str], typer.Option("--profile", "-p", help="Device profile(s) to convert for and compare on; repeat or comma-separate")],
    data: DataOpt = "mnist-5k",
    pool: Annotated[str, typer.Option("--pool", help="Pooling choices, comma-separated: max, avg, l2, strided, none")] = "max,avg,l2,strided,none",
    model: Annotated[str, typer.Option("--model", "-m", help="Model presets, comma-separated (see `edgepool models`)")] = "small",
    window: Annotated[str, typer.Option("--window", help="Pooling windows (size = stride), comma-separated, e.g. 2,3")] = "2",
    width: Annotated[str, typer.Option("--width", help="Width multipliers, comma-separated, e.g. 0.5,1")] = "1",
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per configuration (mean ± spread over them)")] = 3,
    device: Annotated[list[str] | None, typer.Option("--device", help="A device that measures a profile: PROFILE=DEVICE, or a registered device with its profile; profiles without one are estimated (host-cpu is measured here)")] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Maximum epochs per configuration (a sweep compares choices; train the chosen one longer with `edgepool train`)")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Batch size")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (cosine decay)")] = 3e-3,
    patience: Annotated[int, typer.Option("--patience", help="Early-stopping patience in epochs")] = 20,
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Turn off the small random shifts")] = False,
    executor: Annotated[str, typer.Option("--executor", help="local (worker processes on this machine) | ray (a Ray cluster; pip install 'edgepool[ray]')")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (HEAD:6379, or auto); default: start Ray on this machine")] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Local worker processes (default: one per core, TensorFlow threads split between them)")] = None,
    bench_runs: Annotated[int, typer.Option("--bench-runs", help="Minimum runs per benchmark window")] = 50,
    bench_windows: Annotated[int, typer.Option("--bench-windows", help="Benchmark windows per export")] = 3,
    bench_seconds: Annotated[float, typer.Option("--bench-seconds", help="Minimum seconds per benchmark window")] = 1.0,
    json_out: JsonOpt = False,
) -> None:
    from ..errors import InputError
    from ..sweep import BenchSettings, SweepInterrupted, SweepSpec, parse_list, run_sweep

    profiles = [p for text in profile for p in parse_list(text, str, "profile")]
    spec = SweepSpec(
        data=_data_name(data), pools=parse_list(pool, str, "pool"), profiles=profiles,
        models=parse_list(model, str, "model"), windows=parse_list(window, int, "window"),
        widths=parse_list(width, float, "width"), seeds=seeds, devices=list(device or []), epochs=epochs,
        batch_size=batch_size, learning_rate=lr, patience=patience, augment=not no_augment,
        bench=BenchSettings(runs=bench_runs, windows=bench_windows, min_seconds=bench_seconds),
    )
    try:
        spec.validate()
    except InputError as e:
        raise InputError(_flagged(e.message), e.hint) from None
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be >= 1 (got {jobs})", "use 1 or more worker processes")
    err = _common.err_console()
    try:
        with _progress(enabled=not json_out) as cb:
            result = run_sweep(spec, out, executor=executor, address=address, workers=jobs, progress=cb)
    except SweepInterrupted as e:
        r = e.result
        done = sum(1 for c in r.configs if c["status"] == "done")
        err.print(f"interrupted: {done} of {len(r.configs)} configurations are done and kept in {r.path}; run the "
                  "same command again to continue", markup=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if json_out:
        _common.print_json({"path": str(result.path), **result.document})
        return
    render(result.document, result.path)


def _data_name(data: str) -> str:
    """Built-in names stay names; a path becomes absolute (workers may run elsewhere)."""
    from ..datasets import BUILTIN

    return data if data in BUILTIN else str(Path(data).absolute())


def _flagged(message: str) -> str:
    for field, flag in FLAGS.items():
        label = field.replace("_", " ")
        if message.startswith(label + " "):
            return flag + message[len(label):]
    return message


def render(doc: dict[str, Any], path: Path) -> None:
    from rich.table import Table

    from ..sweep import results

    c = _common.console()
    counts, timings = doc["counts"], doc["timings"]
    table = Table(title=f"sweep {path}: accuracy of each export on the test split, latency per inference (mean ± spread over seeds)")
    heads = ("profile", "pool", "model", "window", "width", "seeds", "accuracy %", "latency ms", "kind", "size KB",
             "Keras acc %", "verified", "Pareto", "pick")
    for h in heads:
        table.add_column(h, justify="right" if h not in ("profile", "pool", "model", "kind") else "left")
    for r in results.table_rows(doc):
        table.add_row(r["profile"], r["pool"], r["model"], r["window"], r["width"], r["seeds"], r["accuracy"],
                      r["latency_ms"], r["latency_kind"], r["size_kb"], r["keras_accuracy"], r["status"],
                      "*" if r["pareto"] else "", "<-" if r["recommended"] else "")
    c.print(table)
    for prof, why in doc["recommendation_reason"].items():
        pick = doc["recommendation_group"].get(prof)
        c.print(f"[bold]{prof}[/]: " + (f"recommend {pick} (ship {doc['recommendation'][prof]}): {why}" if pick else why),
                soft_wrap=True)
    c.print(f"[dim]{counts['configs']} configurations: {counts['trained']} trained, {counts['reused']} already done, "
            f"{counts['measured']} measured, {counts['estimated']} estimated, {counts['failed']} failed; "
            f"wall time {timings['wall_s']:.0f} s[/]")
    c.print(f"[dim]wrote {path / 'sweep.json'}, {path / doc['files']['table_csv']}, {path / doc['files']['table_md']}, "
            f"{path / doc['files']['pareto_png']}[/]", soft_wrap=True)
    err = _common.err_console()
    for f in doc["failures"]:
        err.print(f"[yellow]failed:[/] {f}", soft_wrap=True)


class _progress:
    """A rich bar over the sweep's tasks, with one line per finished task above it."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=_common.err_console(), transient=True)
        self.bar.__enter__()
        self.task = self.bar.add_task("sweep", total=None)

        def cb(ev: Any) -> None:
            self.bar.update(self.task, completed=ev.done, total=ev.total)
            if ev.message:
                self.bar.console.print(ev.message, style="dim", soft_wrap=True, markup=False, highlight=False)

        return cb

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

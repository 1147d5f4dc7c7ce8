"""Rendering helpers shared by commands: progress bars and common tables."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ._common import console, fmt_pct


@contextlib.contextmanager
def epoch_progress(title: str, enabled: bool = True) -> Iterator[Any]:
    """Yield a `progress(epoch, epochs, logs)` callback that drives a rich bar (a no-op when disabled)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console(),
        transient=False,
    ) as bar:
        task = bar.add_task(title, total=None, info="")

        def cb(epoch: int, epochs: int, logs: dict[str, float]) -> None:
            info = "  ".join(f"{k} {v:.4f}" for k, v in logs.items())
            bar.update(task, completed=epoch, total=epochs, info=info)

        yield cb


def evaluation_tables(res: dict[str, Any]) -> None:
    from rich.table import Table

    c = console()
    labels = res["labels"]
    c.print(f"[bold]accuracy[/] on {res['data']} ({res['samples']} samples): [bold]{fmt_pct(res['accuracy'])}[/]")
    t = Table(title="per-class accuracy")
    t.add_column("class")
    t.add_column("accuracy", justify="right")
    t.add_column("samples", justify="right")
    for name, acc, row in zip(labels, res["per_class_accuracy"], res["confusion_matrix"], strict=True):
        t.add_row(name, fmt_pct(acc), str(sum(row)))
    c.print(t)
    cm = Table(title="confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for name in labels:
        cm.add_column(name, justify="right")
    for name, row in zip(labels, res["confusion_matrix"], strict=True):
        cm.add_row(name, *[(f"[bold]{v}[/]" if i == j else (str(v) if v else "·")) for i, v in enumerate(row) for j in [labels.index(name)]])
    c.print(cm)

"""Reports: one self-contained HTML page for a run or a sweep directory, and the plots in it.

    report = build_report("runs/digits")          # a run, or a sweep directory (sweep.json)
    path = write_report(report, "runs/digits/report.html")

`build_report` reads, never writes; `write_report` writes through `edgepool.runs` and replaces an
existing file only when it is an edgepool report (or with `force`). `plots` draws the PNGs (matplotlib,
Agg) that the pipeline also saves with a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPORT_FILE = "report.html"
_NOT_A_TARGET_HINT = "pass a run directory (it holds manifest.json) or a sweep directory (it holds sweep.json)"


@dataclass
class Report:
    """A finished page: its HTML, what it is of, and the notes about pieces it could not show."""

    source: Path
    kind: str  # "run" | "sweep"
    html: str
    images: int
    sections: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self, out: Path | None = None) -> dict[str, Any]:
        return {"source": str(self.source), "kind": self.kind, "out": str(out) if out else None,
                "bytes": len(self.html.encode("utf-8")), "images": self.images, "sections": self.sections,
                "notes": self.notes}


def kind_of(path: str | Path) -> str:
    """"run" or "sweep" for a directory edgepool wrote; InputError (one line, a hint) for anything else."""
    from ..errors import InputError
    from ..runs import MANIFEST
    from .sweep import SWEEP_FILE

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p} does not exist", _NOT_A_TARGET_HINT)
    if not p.is_dir():
        raise InputError(f"{p} is a file, not a run or sweep directory", _NOT_A_TARGET_HINT)
    if (p / SWEEP_FILE).is_file():
        return "sweep"
    if (p / MANIFEST).is_file():
        return "run"
    raise InputError(f"{p} is neither an edgepool run nor a sweep directory (no {MANIFEST} or {SWEEP_FILE})",
                     _NOT_A_TARGET_HINT)


def build_report(path: str | Path, out: str | Path | None = None) -> Report:
    """The report page of a run or sweep directory (nothing is written). `out`, where the page will be written,
    makes its links to other files (a sweep's run reports) relative to it; default: inside `path`."""
    from .. import runs

    p = Path(path)
    kind = kind_of(p)
    if kind == "sweep":
        from .sweep import sweep_page

        page = sweep_page(p, Path(out).parent if out is not None else p)
    else:
        from .run import run_page

        page = run_page(runs.load_run(p))
    return Report(p, kind, page.render(), page.images, [h for _, h, _ in page.sections], list(page.notes))


def default_out(path: str | Path) -> Path:
    """Where a report goes when no output is named: report.html inside the run or sweep directory."""
    return Path(path) / REPORT_FILE


def is_report(path: str | Path) -> bool:
    """Whether `path` is a file an edgepool report wrote (its head names the generator)."""
    from .html import GENERATOR

    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return f'name="generator" content="{GENERATOR} '.encode() in head


def check_out(out: str | Path, *, force: bool = False) -> None:
    """Refuse (before any work) an output that is a directory, or an existing file that is not an edgepool
    report, unless `force` (a directory is refused even then)."""
    from ..errors import ExistsError, InputError
    from ..runs import EXISTS_HINT

    p = Path(out)
    if p.is_dir():
        raise InputError(f"{p} is a directory", f"name a file for the report, e.g. {p / REPORT_FILE}")
    if p.exists() and not force and not is_report(p):
        raise ExistsError(f"{p} already exists and is not an edgepool report", EXISTS_HINT)


def write_report(report: Report, out: str | Path, *, force: bool = False) -> Path:
    """Write the page atomically; an existing edgepool report is replaced, any other file only with `force`."""
    from ..runs import atomic_write_text

    check_out(out, force=force)
    atomic_write_text(Path(out), report.html)
    return Path(out)

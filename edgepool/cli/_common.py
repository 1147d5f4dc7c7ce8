"""Shared CLI plumbing: consoles, JSON output, the debug flag. Thin on purpose."""

from __future__ import annotations

import sys
from typing import Any

_state = {"debug": False}


def set_debug(value: bool) -> None:
    _state["debug"] = value


def debug() -> bool:
    return _state["debug"]


def _width(stream: Any) -> int | None:
    # rich falls back to 80 columns when not on a terminal: too narrow for the tables; COLUMNS still wins
    import os

    return None if stream.isatty() or os.environ.get("COLUMNS") else 160


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False, width=_width(sys.stdout))


def err_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, width=_width(sys.stderr))


def print_json(obj: Any) -> None:
    """Write `obj` as JSON to stdout (plain, machine-readable)."""
    from ..runs import to_json

    sys.stdout.write(to_json(obj))
    sys.stdout.flush()


def command_group(help_text: str) -> Any:
    """A Typer sub-app for a command with subcommands (`profiles list`, `recipes show`, ...)."""
    import typer

    return typer.Typer(help=help_text, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})


def hint_for(e: Any) -> str | None:
    """An error's hint in command-line words: the library says what to do, the CLI names the flag."""
    from ..errors import ExistsError

    if isinstance(e, ExistsError):
        return "pass --force to overwrite it, or choose another --out"
    return e.hint


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"

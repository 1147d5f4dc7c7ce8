"""The Typer app: global options, error rendering and exit codes, command registration.

Each command module under edgepool/cli/ defines `register(app)`; it reads arguments, turns strings
into enums/profiles, makes one library call and renders. TensorFlow is imported only inside commands.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from .. import __version__
from ..errors import EdgepoolError
from . import _common

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES = [
    "demo",
    "train",
    "evaluate",
    "models",
    "recipes",
    "quantize",
    "export",
    "verify",
    "convert",
    "inspect",
    "estimate",
    "benchmark",
    "profiles",
]


class _Group(TyperGroup):
    """Turns EdgepoolError into one line on stderr and its exit code (traceback only with --debug)."""

    def invoke(self, ctx: Any) -> object:
        try:
            return super().invoke(ctx)
        except EdgepoolError as e:
            if _common.debug():
                raise
            render_error(e)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            if _common.debug():
                raise
            _common.err_console().print("[red]edgepool: interrupted[/]")
            raise typer.Exit(130) from None

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # registration order, not alphabetical


def render_error(e: EdgepoolError) -> None:
    from rich.markup import escape

    line = f"[bold red]error:[/] {escape(e.message)}"
    hint = _common.hint_for(e)
    if hint:
        line += f" [dim](hint: {escape(hint)})[/]"
    _common.err_console().print(line, soft_wrap=True)


app = typer.Typer(
    cls=_Group,
    name="edgepool",
    help="Train pooling CNNs, quantize, export and measure them on edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgepool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """edgepool: from a trained pooling CNN to a measured model on a device."""
    _common.set_debug(debug)


for _name in COMMAND_MODULES:
    importlib.import_module(f"edgepool.cli.{_name}").register(app)


def main() -> None:
    sys.exit(app(standalone_mode=True) or 0)  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    main()

"""The Typer app: global options, error rendering and exit codes, command registration.

Each command module under edgepool/cli/ defines `register(app)`; it reads arguments, turns strings
into enums/profiles, makes one library call and renders. TensorFlow is imported only inside commands.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import MutableMapping
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
    "predict",
    "import_",
    "convert",
    "inspect",
    "estimate",
    "pooling",
    "benchmark",
    "sweep",
    "report",
    "gate",
    "profiles",
    "devices",
]


# Shells Typer writes completion scripts for; the root's --show-completion / --install-completion take one.
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
_COMPLETION_HELP = {
    "install_completion": "Install shell completion.",
    "show_completion": "Print the shell completion script.",
}
_SHELL_KEY = "edgepool.completion_shell"


class _Group(TyperGroup):
    """Turns EdgepoolError into one line on stderr and its exit code (traceback only with --debug).

    Global options work anywhere: `--debug` after the subcommand (`edgepool export RUN --debug`) is
    taken out and given to the root. Typer's completion options take an optional shell name.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if ctx.parent is None:  # the root command sees every token; subcommands see their own
            args = self._pull_global_options(ctx, list(args))
        return super().parse_args(ctx, args)

    def _pull_global_options(self, ctx: Any, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        head, tail = args[:end], args[end:]
        debug = "--debug" in head
        _common.set_debug(debug)  # also for apps whose root has no --debug option (tests build such apps)
        head = [a for a in head if a != "--debug"]
        # `--show-completion bash`: Typer's flags take no value, so the shell is handed to their callbacks
        for i, (arg, nxt) in enumerate(zip(head, head[1:], strict=False)):
            if not arg.startswith("-"):
                break  # the subcommand: what follows is its own
            named = not nxt.startswith("-") and nxt not in self.commands
            if arg in ("--show-completion", "--install-completion") and named:
                ctx.meta[_SHELL_KEY] = head.pop(i + 1)
                break
        if debug and any(p.name == "debug" for p in self.params):
            head.insert(0, "--debug")  # the root's own option, where it always worked
        return head + tail

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for p in params:  # Typer's --install-completion / --show-completion, added after __init__
            if p.name in _COMPLETION_HELP and not getattr(p, "_edgepool", False):
                p.help, p.metavar, p._edgepool = _COMPLETION_HELP[p.name], "[SHELL]", True
                p.callback = _with_shell(p.callback)
        return params

    def _main_shell_completion(self, ctx_args: MutableMapping[str, Any], prog_name: str,
                               complete_var: str | None = None) -> None:
        # click spells the instruction `bash_complete` / `bash_source`; Typer's scripts `complete_bash`
        var = complete_var or f"_{prog_name}_COMPLETE".replace("-", "_").upper()
        shell, _, what = os.environ.get(var, "").partition("_")
        if shell in SHELLS and what in ("complete", "source"):
            from typer.completion import shell_complete

            sys.exit(shell_complete(self, ctx_args, prog_name, var, f"{what}_{shell}"))
        super()._main_shell_completion(ctx_args, prog_name, complete_var)

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


def _detect_shell() -> str | None:
    """The shell this runs in (Typer's detection, from the parent processes), else the login shell."""
    from typer import completion

    return completion._get_shell_name() or os.path.basename(os.environ.get("SHELL", "")) or None


def _with_shell(typer_callback: Any) -> Any:
    """Typer's completion callback, given the shell named on the command line or detected."""

    def callback(ctx: Any, param: Any, value: Any) -> Any:
        if not value or ctx.resilient_parsing:
            return value
        shell = ctx.meta.get(_SHELL_KEY) or _detect_shell()
        if not shell:
            raise typer.BadParameter(f"cannot tell which shell this is: name it, e.g. {param.opts[0]} bash "
                                     f"(one of {', '.join(SHELLS)})", ctx=ctx, param=param)
        return typer_callback(ctx, param, shell)

    return callback


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
    add_completion=True,
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

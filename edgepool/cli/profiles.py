"""`edgepool profiles list | show NAME | validate FILE...`: the shipped and user device profiles."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from . import _common

if TYPE_CHECKING:
    from .. import profiles as profiles_mod

profiles_app = _common.command_group("Device profiles: list, show and validate them.")


def register(app: typer.Typer) -> None:
    app.add_typer(profiles_app, name="profiles")


def _notices() -> None:
    from .. import profiles

    for s in profiles.shadowed():
        _common.err_console().print(
            f"notice: profile {s.name} from {s.path} shadows the built-in one", soft_wrap=True, markup=False
        )


def _num(x: float | None, fmt: str = "g") -> str:
    return "-" if x is None else format(x, fmt)


def _flag_broken(broken: list[profiles_mod.BrokenProfile]) -> None:
    """One line per profile file that does not load, then exit 2."""
    for b in broken:
        typer.echo(f"invalid: {b.error}", err=True)
    if broken:
        raise typer.Exit(2)


@profiles_app.command("list")
def list_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List every device profile a name resolves to (user profiles shadow built-ins).

    A profile file that does not load is flagged on stderr (one line each) and the exit code is 2;
    the others are listed all the same.
    """
    from .. import profiles

    broken: list[profiles.BrokenProfile] = []
    items = profiles.list_profiles(errors=broken)
    if json_out:
        _common.print_json([p.to_dict() for p in items])
        _flag_broken(broken)
        return
    _notices()
    from rich.table import Table

    table = Table(title="Device profiles")
    for col in ("name", "device", "runtime", "recipe", "transport", "int8 GMAC/s", "fp32 GMAC/s", "idle/active W", "battery Wh", "origin"):
        table.add_column(col, justify="right" if "GMAC" in col or "W" in col else "left")
    for p in items:
        runtime = f"{p.runtime.value} {p.runtime_version}"
        if p.minimum_deployment_target:
            runtime = f"{p.runtime.value} {p.minimum_deployment_target}"
        table.add_row(
            p.name,
            p.display_name,
            runtime,
            p.recipe,
            p.transport.value,
            _num(p.peak_gmacs_int8),
            _num(p.peak_gmacs_fp32),
            f"{_num(p.idle_power_w)}/{_num(p.active_power_w)}",
            _num(p.battery_wh),
            "built-in" if p.builtin else ("user (shadows built-in)" if p.shadows else "user"),
        )
    _common.console().print(table)
    _flag_broken(broken)


@profiles_app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="Profile name, or a path to a profile .toml file.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one profile with the source of every number."""
    from .. import profiles
    from ..types import Runtime

    p = profiles.resolve(name)
    if json_out:
        _common.print_json(p.to_dict())
        return
    notice = profiles.shadow_notice(p)
    if notice:
        _common.err_console().print(notice, soft_wrap=True, markup=False)
    from rich.markup import escape
    from rich.table import Table

    con = _common.console()
    con.print(f"[bold]{escape(p.display_name)}[/] ({escape(p.name)})  {escape(str(p.path))}")
    con.print(escape(p.description), soft_wrap=True)
    rows = [
        ("runtime", f"{p.runtime.value} ({p.runtime_package} {p.runtime_version})"),
        ("recipe", p.recipe),
        ("threads", str(p.threads)),
        ("delegates", ", ".join(p.delegates) or "-"),
    ]
    if p.runtime is Runtime.COREML:
        rows += [("compute units", p.compute_units or "-"), ("deployment target", p.minimum_deployment_target or "-")]
    rows.append(("transport", p.transport.value))
    t = Table(show_header=False, box=None)
    t.add_column(style="dim")
    t.add_column()
    for k, v in rows:
        t.add_row(k, escape(v))
    con.print(t)
    nums = Table(show_lines=False)
    nums.add_column("number")
    nums.add_column("value", justify="right")
    nums.add_column("source")
    for key in profiles.NUMBER_KEYS:
        value = getattr(p, key)
        if value is None:
            continue
        nums.add_row(key, _num(value), escape(p.sources[key]))
    con.print(nums)


@profiles_app.command("validate")
def validate_cmd(
    files: Annotated[list[Path], typer.Argument(help="Profile .toml files to check.")],
) -> None:
    """Check profile files against the schema; one line per file, exit 2 if any is invalid."""
    from .. import profiles
    from ..errors import EdgepoolError

    bad = 0
    for f in files:
        try:
            p = profiles.validate_file(f)
        except EdgepoolError as e:
            bad += 1
            typer.echo(f"invalid: {e}")
        else:
            typer.echo(f"ok: {f} ({p.name}: {p.runtime.value}, recipe {p.recipe})")
    if bad:
        raise typer.Exit(2)

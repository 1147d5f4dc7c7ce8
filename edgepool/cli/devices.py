"""`edgepool devices add | list | remove | check`: attached devices as data, and what each one lacks."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer

from . import _common

devices_app = _common.command_group(
    "Attached devices: register them by name (ssh://, adb://, ios://), list them, check what they lack."
)


def register(app: typer.Typer) -> None:
    app.add_typer(devices_app, name="devices")


@devices_app.command("add")
def add_cmd(
    name: Annotated[str, typer.Argument(help="Name to use with --device (letters, digits, '-', '_').")],
    uri: Annotated[str, typer.Argument(help="ssh://[user@]host[:port][?python=/path], adb://[serial] or ios://[udid].")],
    profile: Annotated[str | None, typer.Option("--profile", help="The device profile it runs (e.g. raspberry-pi-5).")] = None,
    benchmark_binary: Annotated[Path | None, typer.Option(
        "--benchmark-binary", help="LiteRT's benchmark_model binary for this device (adb; ssh without Python).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a device registered under the same name.")] = False,
) -> None:
    """Register a device under a name (stored in ~/.config/edgepool/devices.toml)."""
    from .. import devices
    from ..errors import ExistsError, InputError

    try:
        ref = devices.add_device(name, uri, profile, benchmark_binary=benchmark_binary, force=force)
    except ExistsError as e:
        raise InputError(e.message, "pass --force to replace it, or choose another name") from None
    extra = f", profile {ref.profile}" if ref.profile else ""
    _common.console().print(f"added {ref.name}: {ref.uri}{extra} ({devices.registry_path()})", markup=False,
                            soft_wrap=True)


@devices_app.command("list")
def list_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the registered devices."""
    from .. import devices

    items = devices.list_devices()
    if json_out:
        _common.print_json([d.to_dict() for d in items])
        return
    con = _common.console()
    if not items:
        con.print(f"no devices registered ({devices.registry_path()}); add one with `edgepool devices add NAME URI`",
                  markup=False, soft_wrap=True)
        return
    from rich.table import Table

    table = Table(title=f"Devices ({devices.registry_path()})")
    for col in ("name", "transport", "uri", "profile", "benchmark binary"):
        table.add_column(col)
    for d in items:
        table.add_row(d.name or "", d.kind.value, d.uri, d.profile or "-", d.benchmark_binary or "-")
    con.print(table)


@devices_app.command("remove")
def remove_cmd(name: Annotated[str, typer.Argument(help="A registered device name.")]) -> None:
    """Unregister a device."""
    from .. import devices

    ref = devices.remove_device(name)
    _common.console().print(f"removed {ref.name} ({ref.uri})", markup=False)


@devices_app.command("check")
def check_cmd(
    device: Annotated[str, typer.Argument(help="local, a device URI, or a registered name.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check a device: what it has, and what each profile reached the same way still needs.

    Shows Python, numpy, the TFLite runtime, the Edge TPU delegate, CPU, governor, temperatures, free disk and
    power sensors (phones: battery and thermal state), then for each profile what is missing with the line that
    installs it. `local` also checks this machine's tools: ssh, adb, pymobiledevice3, edgetpu_compiler, chromium.
    """
    from .. import devices
    from ..types import Transport

    ref = devices.parse_device(device)
    facts = probe(ref)
    tools = devices.host_tools() if ref.kind is Transport.LOCAL else []
    checks = devices.check_profiles(facts, ref.kind)
    if json_out:
        _common.print_json({"device": ref.to_dict(), "facts": facts, "host_tools": [t.to_dict() for t in tools],
                            "profiles": [c.to_dict() for c in checks]})
        return
    _render(ref, facts, tools, checks)


def probe(ref: Any) -> dict[str, Any]:
    """The facts of one device (devices.FACT_KEYS), from the probe of its transport."""
    from .. import devices
    from ..types import Transport

    if ref.kind is Transport.LOCAL:
        from ..bench import sensors

        facts = devices.local_facts()
        # what --energy will read here: the benchmark's own reader (bench/sensors.py), as an ssh probe reports it
        facts["power_sensors"] = [s.describe() for s in sensors.discover()]
    elif ref.kind is Transport.ADB:
        from ..bench.transports.adb import AdbTransport

        facts = AdbTransport(ref.serial, benchmark_binary=ref.benchmark_binary, label=ref.label).probe()
    elif ref.kind is Transport.IOS:
        from ..bench.transports.ios import IosTransport

        facts = IosTransport(ref.udid, label=ref.label).probe()
    else:
        facts = _ssh_probe(ref)
        if ref.benchmark_binary and not facts.get("benchmark_binary"):
            facts["benchmark_binary"] = ref.benchmark_binary
    facts.setdefault("device", ref.label)
    return devices.normalize_facts(facts, ref.kind)


def _ssh_probe(ref: Any) -> dict[str, Any]:
    """The ssh transport's probe: `ssh.probe(ref)`, else `SshTransport.from_device(ref).probe()`, else an
    SshTransport built from the keyword arguments its constructor names."""
    import inspect

    from ..bench import transports
    from ..errors import DeviceError

    try:
        ssh = importlib.import_module(f"{transports.__name__}.ssh")
    except ImportError:
        raise DeviceError("the ssh transport is not part of this edgepool build", "update edgepool") from None
    if callable(getattr(ssh, "probe", None)):
        return dict(ssh.probe(ref))
    cls = getattr(ssh, "SshTransport", None)
    if cls is None or not callable(getattr(cls, "probe", None)):
        raise DeviceError("the ssh transport of this edgepool build cannot probe a device", "update edgepool")
    if callable(getattr(cls, "from_device", None)):
        return dict(cls.from_device(ref).probe())
    offered = {"target": ref.uri, "device": ref, "ref": ref, "uri": ref.uri, "destination": ref.ssh_destination, "host": ref.host,
               "user": ref.user, "port": ref.port, "python": ref.python, "label": ref.label,
               "benchmark_binary": ref.benchmark_binary}
    params = inspect.signature(cls).parameters
    return dict(cls(**{k: v for k, v in offered.items() if k in params}).probe())


# ---------------------------------------------------------------- rendering


def _render(ref: Any, facts: dict[str, Any], tools: list[Any], checks: list[Any]) -> None:
    from rich.markup import escape

    con = _common.console()
    title = ref.label if ref.name is None else f"{ref.name} ({ref.uri})"
    con.print(f"[bold]{escape(title)}[/]", soft_wrap=True)
    for label, value in _fact_rows(facts):
        con.print(f"  [dim]{label:<16}[/] {escape(value)}", soft_wrap=True)
    if tools:
        con.print("[bold]Host tools[/]")
        for t in tools:
            if t.present:
                con.print(f"  [green]ok[/]      {t.name:<17} {escape(t.detail)}", soft_wrap=True)
            else:
                con.print(f"  [red]missing[/] {t.name:<17} disables {escape(t.disables)}; install: "
                          f"[bold]{escape(t.install)}[/]", soft_wrap=True)
            for note in t.notes:
                con.print(f"          {'':<17} [dim]{escape(note)}[/]", soft_wrap=True)
    if not checks:
        con.print(f"[dim]no profiles are reached over {ref.kind.value}[/]")
        return
    con.print(f"[bold]Profiles reached over {ref.kind.value}[/]")
    for c in checks:
        mark = " (registered)" if ref.profile == c.profile else ""
        if c.ok:
            con.print(f"  [green]ok[/]      {escape(c.profile)}{mark}: nothing missing", soft_wrap=True)
            continue
        con.print(f"  [red]missing[/] {escape(c.profile)}{mark} ({escape(c.display_name)}):", soft_wrap=True)
        for g in c.gaps:
            con.print(f"          - {escape(g.what)}: [bold]{escape(g.fix)}[/]", soft_wrap=True)


def _sensor_text(s: dict[str, Any]) -> str:
    """One power source: its name, what it measures and how often it can be read."""
    text = f"{s['name']} ({s.get('rail') or s['quantity']}"
    if s.get("rate_hz"):
        text += f", {s['rate_hz']:g} Hz"
    if s.get("min_window_s") and s["min_window_s"] >= 5:
        text += f", windows >= {s['min_window_s']:g} s"
    return text + ")"


def _fact_rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []

    def add(label: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            rows.append((label, str(value)))

    add("OS", f.get("os"))
    cpu = f.get("cpu_model") or f.get("machine")
    if cpu:
        extra = [f"{f['cpu_count']} cores" if f.get("cpu_count") else "", f"governor {f['governor']}" if f.get("governor") else ""]
        add("CPU", ", ".join([cpu, *[e for e in extra if e]]))
    temps = f.get("temperatures_c") or {}
    add("temperatures", ", ".join(f"{k} {v:.1f} C" for k, v in list(temps.items())[:6]))
    add("free disk", _common.fmt_bytes(f["free_disk_bytes"]) if f.get("free_disk_bytes") is not None else None)
    if f.get("transport") in ("local", "ssh"):
        add("Python", f.get("python") or "not found")
        add("numpy", f.get("numpy") or "not installed")
        runtimes = f.get("runtimes") or {}
        errors = f.get("runtime_errors") or {}
        add("TFLite runtime", ", ".join(f"{k} {v}" + (" (does not load)" if k in errors else "")
                                        for k, v in runtimes.items() if v) or "none installed")
        add("Edge TPU", f.get("edgetpu_delegate") or "libedgetpu not found")
    if f.get("benchmark_binary"):
        add("benchmark_model", f["benchmark_binary"])
    android = f.get("android") or {}
    if android:
        add("phone", " ".join(str(x) for x in (android.get("manufacturer"), android.get("device_model")) if x))
        add("SoC", android.get("soc"))
    if f.get("transport") == "ios":
        add("iPhone", f.get("device_name"))
        add("edgepool app", "installed" if f.get("ios_app") else "not installed")
        if f.get("developer_mode") is not None:
            add("Developer Mode", "on" if f["developer_mode"] else "off")
    battery = f.get("battery") or {}
    if battery:
        parts = [f"{battery['level_pct']:g}%" if battery.get("level_pct") is not None else "",
                 battery.get("status") or ("charging" if battery.get("charging") else ""),
                 f"{battery['temperature_c']:.1f} C" if battery.get("temperature_c") is not None else ""]
        add("battery", ", ".join(p for p in parts if p))
    thermal = f.get("thermal") or {}
    if thermal:
        add("thermal status", thermal.get("status"))
    sensors = f.get("power_sensors")
    if sensors is not None:
        add("power sensors", "; ".join(_sensor_text(s) for s in sensors)
            or "none found (--energy gives the profile's power model, labelled estimated)")
    return rows

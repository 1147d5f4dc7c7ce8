"""Attached devices as data: device URIs, the registry of named devices, and what a device lacks.

A device is named on the command line as one of

    local                                    this machine
    ssh://[user@]host[:port][?python=/path][&tmpdir=/path]
                                             a board reached with the system `ssh` (keys, ~/.ssh/config)
    adb://[serial]                           an Android phone (no serial: the one attached)
    ios://[udid]                             an iPhone (no udid: the first attached)
    NAME                                     a device registered with `add_device`

`parse_device(text) -> DeviceRef` turns any of these into one record; `parse_uri(text)` takes URIs only
and `parse_ssh_uri(text)` ssh URIs only. **This module is the one URI parser**: the transports
(`edgepool/bench/transports/*`, a layer above) import it, never the reverse. A malformed URI or an
unknown name is bad input (`InputError`, exit 2; an unknown name gets a did-you-mean); a device that
cannot be reached is a `DeviceError` (exit 3), raised by the transports.

The registry is `$XDG_CONFIG_HOME/edgepool/devices.toml` (default `~/.config/edgepool/devices.toml`),
read as strictly as device profiles (`edgepool.config`: unknown keys with a did-you-mean, types,
`schema_version`):

    schema_version = 1

    [devices.pi5]
    uri = "ssh://pi@pi5.local?python=/home/pi/venv/bin/python"
    profile = "raspberry-pi-5"                      # optional: the device profile it runs

    [devices.pixel]
    uri = "adb://37211FDJH005XZ"
    profile = "pixel-8"
    benchmark_binary = "/opt/litert/android_aarch64_benchmark_model"   # optional (adb, ssh)

`add_device`, `remove_device` and `list_devices` edit and read it; writes are atomic
(`runs.atomic_write_text`).

`check_profiles(facts, kind)` says, for every profile reached over `kind`, what the device lacks and the
line that installs it. `facts` is the dict a probe returns (`local_facts()` here, plus `power_sensors` from bench/sensors.py; the transports' `probe()`
for ssh / adb / ios); the keys read are listed in FACT_KEYS. `host_tools()` is the host-side doctor:
which of ssh, adb, pymobiledevice3, edgetpu_compiler and chromium this machine has, and what each
missing one disables.

Standard library only (plus `profiles` for the profile checks).
"""

from __future__ import annotations

import ctypes.util
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata, util
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from . import config
from .config import Field, Kind, Origin, toml_repr
from .errors import ExistsError, InputError
from .types import Runtime, Transport

SCHEMA_VERSION = config.SCHEMA_VERSION
WHAT = "device registry"
REGISTRY_FILE = "devices.toml"
LOCAL = "local"
SCHEMES = (Transport.SSH.value, Transport.ADB.value, Transport.IOS.value)
URI_FORMS = "local, ssh://[user@]host[:port][?python=/path], adb://[serial] or ios://[udid]"
SSH_QUERY_KEYS = ("python", "tmpdir")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")  # never starts with '-': it would be an ssh option
_IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?$")
_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_SERIAL_RE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9._:-]*$")  # adb serials: "37211FDJH005XZ", "192.168.1.5:5555"
_UDID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")  # "00008130-001A2C3E0E38802E" or 40 hex digits

DEVICE_SCHEMA: dict[str, Field] = {
    "uri": Field(Kind.STRING, required=True, meaning=f"how to reach the device: {URI_FORMS}",
                 example='"ssh://pi@raspberrypi.local"'),
    "profile": Field(Kind.STRING, meaning="the device profile it runs", example='"raspberry-pi-5"'),
    "benchmark_binary": Field(Kind.STRING, meaning="path of LiteRT's benchmark_model binary for this device",
                              example='"/opt/litert/android_aarch64_benchmark_model"'),
}
_TOP_KEYS = (config.VERSION_KEY, "devices")


# ---------------------------------------------------------------- the record


@dataclass(frozen=True)
class DeviceRef:
    """One device: how to reach it (`kind` + the URI's parts) and, when registered, its name and profile."""

    kind: Transport
    uri: str  # canonical form: "local", "ssh://pi@host:2222?python=/usr/bin/python3", "adb://SERIAL", "ios://"
    name: str | None = None
    user: str | None = None  # ssh
    host: str | None = None  # ssh (an IPv6 address without brackets)
    port: int | None = None  # ssh
    python: str | None = None  # ssh: the interpreter that runs the agent on the device
    tmpdir: str | None = None  # ssh: where the private folder is made on the device (None: its default)
    serial: str | None = None  # adb (None: the only attached phone)
    udid: str | None = None  # ios (None: the first attached iPhone)
    profile: str | None = None
    benchmark_binary: str | None = None

    @property
    def label(self) -> str:
        """What a result row names: the registered name, else the URI."""
        return self.name or self.uri

    @property
    def ssh_destination(self) -> str:
        """`user@host` (or `host`) as the system ssh takes it; an IPv6 address is written bare."""
        if self.kind is not Transport.SSH or not self.host:
            raise ValueError(f"{self.uri} is not an ssh device")
        return f"{self.user}@{self.host}" if self.user else self.host

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "transport": self.kind.value, "uri": self.uri}
        for key in ("user", "host", "port", "python", "tmpdir", "serial", "udid", "profile", "benchmark_binary"):
            d[key] = getattr(self, key)
        return d


# ---------------------------------------------------------------- parsing


def parse_device(text: str) -> DeviceRef:
    """`local`, a device URI, or the name of a registered device -> DeviceRef.

    Raises InputError for a malformed URI, an unknown scheme, or an unknown name (with a did-you-mean).
    """
    text = (text or "").strip()
    if not text:
        raise InputError("no device given", f"name a device: {URI_FORMS}, or a registered name")
    if text.lower() == LOCAL or "://" in text:
        return parse_uri(text)
    if ":" in text or "@" in text:
        raise InputError(f"device {text!r} is neither a URI nor a device name",
                         f"a device is {URI_FORMS}, or a registered name (e.g. ssh://{text} for a board over ssh)")
    return get_device(text)


def parse_uri(text: str) -> DeviceRef:
    """A device URI (`local`, ssh://, adb://, ios://) -> DeviceRef; InputError if it is malformed."""
    raw = (text or "").strip()
    if raw.lower() in (LOCAL, "local://"):
        return DeviceRef(Transport.LOCAL, LOCAL)
    if "://" not in raw:
        raise InputError(f"{raw!r} is not a device URI", f"a device URI is {URI_FORMS}")
    scheme = raw.split("://", 1)[0].lower()
    if scheme == Transport.SSH:
        return parse_ssh_uri(raw)
    if scheme == Transport.ADB:
        return _parse_adb(raw)
    if scheme == Transport.IOS:
        return _parse_ios(raw)
    close = config.did_you_mean(scheme, [*SCHEMES, LOCAL])
    hint = f"did you mean {close}://?" if close else f"a device URI is {URI_FORMS}"
    raise InputError(f"unknown device scheme {scheme + '://'!r} in {raw!r}", hint)


def parse_ssh_uri(text: str) -> DeviceRef:
    """`ssh://[user@]host[:port][?python=/path][&tmpdir=/path]` -> DeviceRef(kind=SSH, user, host, port, python, tmpdir).

    The host may be a name from ~/.ssh/config, a DNS name, an IPv4 address or a bracketed IPv6 address
    (`ssh://[fe80::1%eth0]:2222`). Passwords are refused (use keys or ~/.ssh/config); a user or host
    starting with '-' is refused (it would reach ssh as an option).
    """
    raw = (text or "").strip()
    if not raw.lower().startswith("ssh://"):
        raise InputError(f"{raw!r} is not an ssh:// device URI", "write ssh://[user@]host[:port][?python=/path]")
    parts = _split(raw, Transport.SSH)
    netloc = parts.netloc
    if not netloc:
        raise InputError(f"ssh URI {raw!r} has no host", "write ssh://[user@]host[:port]")
    user: str | None = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        if ":" in userinfo:
            raise InputError(f"ssh URI {_redact(raw)!r} holds a password",
                             "edgepool never takes passwords: use an ssh key (ssh-copy-id) or ~/.ssh/config")
        user = unquote(userinfo)
        if not _USER_RE.match(user):
            raise InputError(f"ssh URI {raw!r}: {user!r} is not a user name",
                             "a user name is letters, digits, '.', '_' and '-', not starting with '-'")
    host, port_text = _split_host_port(netloc, raw)
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise InputError(f"ssh URI {raw!r}: port {port_text!r} is not a port number", "a port is 1 to 65535")
        port = int(port_text)
    if parts.path not in ("", "/"):
        raise InputError(f"ssh URI {raw!r} has a path ({parts.path})",
                         "an ssh device URI names a host only; give the interpreter as ?python=/path")
    query: dict[str, str] = {}
    if parts.query:
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key not in SSH_QUERY_KEYS:
                close = config.did_you_mean(key, SSH_QUERY_KEYS)
                raise InputError(f"ssh URI {raw!r}: unknown option {key!r}",
                                 f"did you mean {close}?" if close else "the options are ?python=/path/to/python3 "
                                 "and &tmpdir=/path")
            if not value.strip() or "\n" in value or "\0" in value:
                raise InputError(f"ssh URI {raw!r}: {key} is empty", f"write ?{key}=/path")
            if key in query:
                raise InputError(f"ssh URI {raw!r}: {key} is given twice", f"give ?{key}= once")
            query[key] = value
    ref = DeviceRef(Transport.SSH, "", user=user, host=host, port=port, python=query.get("python"),
                    tmpdir=query.get("tmpdir"))
    return _with_uri(ref)


def _device_id(raw: str, kind: Transport, noun: str, pattern: re.Pattern[str], shape_hint: str, bad_hint: str) -> str | None:
    """The one identifier an adb:// or ios:// URI may carry (None: the only attached device)."""
    parts = _split(raw, kind)
    if parts.path not in ("", "/") or parts.query:
        raise InputError(f"{kind.value} URI {raw!r} has more than a {noun}", shape_hint)
    ident = unquote(parts.netloc) or None
    if ident is not None and not pattern.match(ident):
        raise InputError(f"{kind.value} URI {raw!r}: {ident!r} is not a device {noun}", bad_hint)
    return ident


def _parse_adb(raw: str) -> DeviceRef:
    serial = _device_id(raw, Transport.ADB, "serial", _SERIAL_RE,
                        "write adb://SERIAL (from `adb devices -l`) or adb://",
                        "copy the serial from `adb devices -l` (e.g. adb://37211FDJH005XZ or adb://192.168.1.5:5555)")
    return _with_uri(DeviceRef(Transport.ADB, "", serial=serial))


def _parse_ios(raw: str) -> DeviceRef:
    udid = _device_id(raw, Transport.IOS, "UDID", _UDID_RE, "write ios://UDID or ios://",
                      "a UDID is hex digits and '-', e.g. ios://00008130-001A2C3E0E38802E")
    return _with_uri(DeviceRef(Transport.IOS, "", udid=udid))


def _split(raw: str, kind: Transport) -> Any:
    if any(c.isspace() for c in raw):
        raise InputError(f"{kind.value} URI {raw!r} contains whitespace", "write the URI without spaces")
    try:
        parts = urlsplit(raw)
    except ValueError as e:
        raise InputError(f"{kind.value} URI {raw!r} is malformed ({e})", f"a device URI is {URI_FORMS}") from None
    if parts.fragment:
        raise InputError(f"{kind.value} URI {raw!r} has a fragment (#{parts.fragment})", "remove the '#...' part")
    return parts


def _split_host_port(netloc: str, raw: str) -> tuple[str, str | None]:
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise InputError(f"ssh URI {raw!r}: unclosed '[' in the host", "write an IPv6 address as [addr]")
        host, rest = unquote(netloc[1:end]), netloc[end + 1 :]
        if not _IPV6_RE.match(host):
            raise InputError(f"ssh URI {raw!r}: {host!r} is not an IPv6 address", "write [addr] for IPv6 hosts")
        if rest and not rest.startswith(":"):
            raise InputError(f"ssh URI {raw!r}: unexpected {rest!r} after the host", "write ssh://[addr]:port")
        return host, (rest[1:] if rest else None)
    host, sep, port = netloc.partition(":")
    if ":" in port:
        raise InputError(f"ssh URI {raw!r}: an IPv6 host must be in brackets", "write ssh://user@[fe80::1]:22")
    host = unquote(host)
    if not host:
        raise InputError(f"ssh URI {raw!r} has no host", "write ssh://[user@]host[:port]")
    if not _HOST_RE.match(host):
        raise InputError(f"ssh URI {raw!r}: {host!r} is not a host name",
                         "a host is a name from ~/.ssh/config, a DNS name or an address, not starting with '-'")
    return host, (port if sep else None)


def _redact(raw: str) -> str:
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", raw)


def format_uri(ref: DeviceRef) -> str:
    """The canonical URI of `ref` (what the registry stores and result rows show)."""
    if ref.kind is Transport.LOCAL:
        return LOCAL
    if ref.kind is Transport.SSH:
        host = f"[{ref.host}]" if ref.host and ":" in ref.host else (ref.host or "")
        text = "ssh://" + (f"{quote(ref.user, safe='._-')}@" if ref.user else "") + host
        if ref.port is not None:
            text += f":{ref.port}"
        query = [f"{k}=" + quote(v, safe="/._-~+") for k, v in (("python", ref.python), ("tmpdir", ref.tmpdir)) if v]
        return text + ("?" + "&".join(query) if query else "")
    if ref.kind is Transport.ADB:
        return "adb://" + (ref.serial or "")
    return "ios://" + (ref.udid or "")


def _with_uri(ref: DeviceRef) -> DeviceRef:
    return DeviceRef(**{**_fields(ref), "uri": format_uri(ref)})


def _fields(ref: DeviceRef) -> dict[str, Any]:
    return {k: getattr(ref, k) for k in DeviceRef.__dataclass_fields__}


# ---------------------------------------------------------------- the registry


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgepool"


def registry_path() -> Path:
    """`$XDG_CONFIG_HOME/edgepool/devices.toml` (default `~/.config/edgepool/devices.toml`)."""
    return config_dir() / REGISTRY_FILE


def load_registry(path: Path | None = None) -> dict[str, DeviceRef]:
    """name -> DeviceRef for every registered device; an empty registry when the file does not exist."""
    path = Path(path) if path is not None else registry_path()
    if not path.exists():
        return {}
    raw = config.read_toml(path, error=InputError, what=WHAT)
    origin = Origin(path, InputError, WHAT)
    for key in raw:
        if key not in _TOP_KEYS:
            close = config.did_you_mean(key, _TOP_KEYS)
            raise origin.fail(key, "unknown key", f"did you mean {close}?" if close else "a device registry holds "
                              "schema_version and [devices.NAME] tables")
    config.check_table({k: v for k, v in raw.items() if k == config.VERSION_KEY}, {}, origin)
    table = raw.get("devices", {})
    if not isinstance(table, dict):
        raise origin.fail("devices", f"expected tables, got {toml_repr(table)}", "write [devices.NAME] tables")
    out: dict[str, DeviceRef] = {}
    for name, entry in table.items():
        where = Origin(path, InputError, f"device {name!r} in {WHAT}")
        if not _NAME_RE.match(name) or name.lower() == LOCAL:
            raise origin.fail(f"devices.{name}", "not a valid device name", _NAME_HINT)
        if not isinstance(entry, dict):
            raise origin.fail(f"devices.{name}", f"expected a table, got {toml_repr(entry)}",
                              f'write [devices.{name}] with uri = "..."')
        if config.VERSION_KEY in entry:
            raise where.fail(config.VERSION_KEY, "unknown key", "schema_version is set once, at the top of the file")
        values = config.check_table({config.VERSION_KEY: raw[config.VERSION_KEY], **entry}, DEVICE_SCHEMA, where)
        try:
            ref = parse_uri(values["uri"])
        except InputError as e:
            raise where.fail("uri", e.message, e.hint or f"a device URI is {URI_FORMS}") from None
        if ref.kind is Transport.LOCAL:
            raise where.fail("uri", "local is not registered (it is always there)", "remove this device")
        out[name] = DeviceRef(**{**_fields(ref), "name": name, "profile": values.get("profile"),
                                 "benchmark_binary": values.get("benchmark_binary")})
    return out


_NAME_HINT = "a device name is letters, digits, '-' and '_' (at most 64), not 'local', not a URI"


def list_devices() -> list[DeviceRef]:
    """Every registered device, sorted by name."""
    reg = load_registry()
    return [reg[n] for n in sorted(reg)]


def get_device(name: str) -> DeviceRef:
    """The registered device `name`; InputError with a did-you-mean when there is none."""
    reg = load_registry()
    if name in reg:
        return reg[name]
    close = config.did_you_mean(name, reg)
    if close:
        hint = f"did you mean {close!r}?"
    elif name.lower() in SCHEMES:
        hint = f"write a URI: {name.lower()}:// (the attached device) or {URI_FORMS}"
    elif reg:
        hint = "registered devices: " + ", ".join(sorted(reg)) + f"; or give a URI ({URI_FORMS})"
    else:
        hint = f"no devices are registered (`edgepool devices add NAME URI`); or give a URI ({URI_FORMS})"
    raise InputError(f"no device named {name!r}", hint)


def add_device(name: str, uri: str, profile: str | None = None, *, benchmark_binary: str | Path | None = None,
               force: bool = False) -> DeviceRef:
    """Register `name` -> `uri` (with a profile and a benchmark_model path, optionally) and return it.

    The URI must parse, the profile must exist and be reached over the URI's transport, the binary must
    be a file. An existing name is kept unless `force`.
    """
    if not _NAME_RE.match(name or "") or name.lower() == LOCAL or name.lower() in SCHEMES:
        raise InputError(f"{name!r} is not a valid device name", _NAME_HINT)
    ref = parse_uri(uri)
    if ref.kind is Transport.LOCAL:
        raise InputError("local is always there; it is not registered", "register ssh://, adb:// or ios:// devices")
    if profile is not None:
        _check_profile_fits(profile, ref)
    binary = None
    if benchmark_binary is not None:
        if ref.kind not in (Transport.ADB, Transport.SSH):
            raise InputError("benchmark_binary is for adb and ssh devices only",
                             "an iPhone runs the edgepool app, not benchmark_model")
        p = Path(benchmark_binary).expanduser()
        if not p.is_file():
            raise InputError(f"benchmark_model binary {p} does not exist", "give the path of the downloaded binary")
        binary = str(p.resolve())
    path = registry_path()
    reg = load_registry(path)
    if name in reg and not force:
        raise ExistsError(f"device {name!r} is already registered ({reg[name].uri})",
                          "remove it first, or overwrite it on purpose (force)")
    new = DeviceRef(**{**_fields(ref), "name": name, "profile": profile, "benchmark_binary": binary})
    reg[name] = new
    _write(path, reg)
    return new


def remove_device(name: str) -> DeviceRef:
    """Unregister `name` and return what it was; InputError with a did-you-mean for an unknown name."""
    path = registry_path()
    ref = get_device(name)
    reg = load_registry(path)
    del reg[name]
    _write(path, reg)
    return ref


def _check_profile_fits(profile: str, ref: DeviceRef) -> None:
    from . import profiles

    prof = profiles.resolve(profile)
    if prof.transport is not ref.kind:
        raise InputError(
            f"profile {prof.name} is reached over {prof.transport.value}, but {ref.uri} is an {ref.kind.value} device",
            f"pick a profile whose transport is {ref.kind.value} (`edgepool profiles list` shows them)",
        )


def _write(path: Path, reg: Mapping[str, DeviceRef]) -> None:
    from .runs import atomic_write_text

    lines = ["# edgepool devices (`edgepool devices add | remove` edit this file)",
             f"{config.VERSION_KEY} = {SCHEMA_VERSION}"]
    for name in sorted(reg):
        ref = reg[name]
        lines += ["", f"[devices.{name}]", f"uri = {toml_repr(ref.uri)}"]
        if ref.profile:
            lines.append(f"profile = {toml_repr(ref.profile)}")
        if ref.benchmark_binary:
            lines.append(f"benchmark_binary = {toml_repr(ref.benchmark_binary)}")
    atomic_write_text(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------- what a device has, what a profile needs

FACT_KEYS = {
    "device": "the device's label (name or URI)",
    "transport": "local | ssh | adb | ios",
    "os": "operating system and version",
    "machine": "CPU architecture (aarch64, x86_64, arm64-v8a)",
    "cpu_model": "CPU / SoC model",
    "cpu_count": "cores",
    "governor": "cpufreq governor of cpu0",
    "temperatures_c": "thermal zone -> degrees C",
    "free_disk_bytes": "free space where models are copied",
    "python": "Python version that would run the agent (None: no Python)",
    "numpy": "numpy version (None: missing)",
    "runtimes": "{ai_edge_litert, tflite_runtime, tensorflow} -> version or None",
    "edgetpu_delegate": "path / name of libedgetpu found, or None",
    "benchmark_binary": "LiteRT benchmark_model binary available for this device, or None",
    "power_sensors": "list of {name, source, quantity}: what the energy measurement can read",
    "ios_app": "True / False: the edgepool benchmark app is installed (ios)",
    "ios_version": "iOS version (ios)",
}
RUNTIME_MODULES = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime", "tensorflow": "tensorflow"}
# tflite-runtime releases a profile's "major.minor" maps to (2.14.0 is the last release; it needs numpy 1.x)
TFLITE_RUNTIME_RELEASES = {"2.14": "2.14.0", "2.13": "2.13.0", "2.11": "2.11.0", "2.5": "2.5.0.post1"}
BENCHMARK_BINARY_NEED = "LiteRT's benchmark_model for Android (arm64)"
BENCHMARK_BINARY_FIX = ("download android_aarch64_benchmark_model (LiteRT's nightly tools) on a machine with internet, "
                        "copy it here and give its path (the device's benchmark_binary)")


@dataclass(frozen=True)
class Gap:
    """Something a profile needs that the device lacks, and the line that fixes it."""

    what: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return {"what": self.what, "fix": self.fix}


@dataclass
class ProfileCheck:
    """One profile against one device's facts: ok when nothing is missing."""

    profile: str
    display_name: str
    gaps: list[Gap] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.gaps

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "display_name": self.display_name, "ok": self.ok,
                "missing": [g.to_dict() for g in self.gaps]}


def version_tuple(text: str | None) -> tuple[int, ...]:
    """Leading numbers of a version string: "2.14.0" -> (2, 14, 0), "2.5.0.post1" -> (2, 5, 0), "" -> ()."""
    out: list[int] = []
    for part in str(text or "").split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        out.append(int(m.group()))
        if m.end() != len(part):
            break
    return tuple(out)


def version_matches(installed: str | None, wanted: str) -> bool:
    """Whether `installed` ("2.14.0") is a release of `wanted` ("2.14")."""
    want = version_tuple(wanted)
    have = version_tuple(installed)
    return bool(have) and have[: len(want)] == want


def runtime_install_line(package: str, version: str) -> str:
    """The pip line that installs the runtime a profile names (tflite-runtime pins numpy<2)."""
    if package == "tflite-runtime":
        pinned = TFLITE_RUNTIME_RELEASES.get(version)
        spec = f"tflite-runtime=={pinned}" if pinned else f"'tflite-runtime=={version}.*'"
        return f"pip install {spec} 'numpy<2'"
    return f"pip install '{package}=={version}.*'"


def normalize_facts(facts: Mapping[str, Any], kind: Transport | None = None) -> dict[str, Any]:
    """A probe's facts in the FACT_KEYS form. Accepts the agent's `--probe` shape too: `runtimes` values that are
    {version, importable, error} dicts (-> the version, and `runtime_errors` {module: error} for a runtime that is
    installed but does not load), `edgetpu` {library, pcie, usb} (-> `edgetpu_delegate`), `disk` {free_bytes}
    (-> `free_disk_bytes`)."""
    out = dict(facts)
    if kind is not None:
        out.setdefault("transport", kind.value)
    runtimes: dict[str, Any] = {}
    errors: dict[str, str] = dict(out.get("runtime_errors") or {})
    for module, value in (out.get("runtimes") or {}).items():
        if isinstance(value, Mapping):
            runtimes[module] = value.get("version") or ("unknown version" if value.get("importable") else None)
            if value.get("importable") is False:
                errors[module] = str(value.get("error") or "it does not load")
        else:
            runtimes[module] = value
    out["runtimes"] = runtimes
    out["runtime_errors"] = errors
    edgetpu = out.get("edgetpu")
    if not out.get("edgetpu_delegate") and isinstance(edgetpu, Mapping):
        out["edgetpu_delegate"] = edgetpu.get("library")
    disk = out.get("disk")
    if out.get("free_disk_bytes") is None and isinstance(disk, Mapping):
        out["free_disk_bytes"] = disk.get("free_bytes")
    return out


def profile_gaps(facts: Mapping[str, Any], profile: Any) -> list[Gap]:
    """What `profile` (a DeviceProfile) needs that a device with `facts` (FACT_KEYS, or a probe's raw facts:
    see normalize_facts) lacks."""
    facts = normalize_facts(facts)
    if profile.runtime is Runtime.COREML:
        return _ios_gaps(facts, profile)
    if profile.transport is Transport.ADB:
        if facts.get("benchmark_binary"):
            return []
        return [Gap(BENCHMARK_BINARY_NEED, BENCHMARK_BINARY_FIX)]
    return _python_gaps(facts, profile)


def _ios_gaps(facts: Mapping[str, Any], profile: Any) -> list[Gap]:
    gaps = []
    if facts.get("ios_app") is False:
        gaps.append(Gap("the edgepool benchmark app (dev.edgepool.bench)",
                        "build examples/ios (the edgepool iOS example app) in Xcode and run it on the iPhone once"))
    have, want = version_tuple(facts.get("ios_version")), version_tuple(profile.runtime_version)
    if have and want and have[:1] < want[:1]:
        gaps.append(Gap(f"iOS {profile.runtime_version} or later (the device runs {facts.get('ios_version')})",
                        "update iOS in Settings > General > Software Update, or use a profile for an older target"))
    return gaps


def _python_gaps(facts: Mapping[str, Any], profile: Any) -> list[Gap]:
    py = facts.get("python")
    alternative = "; or run LiteRT's static benchmark_model binary instead of the agent" if facts.get(
        "transport") == Transport.SSH.value else ""
    if not py:
        if facts.get("benchmark_binary"):
            return []
        return [Gap("Python 3 (3.9 or later) to run the benchmark agent", "apt-get install python3 python3-venv" + alternative)]
    gaps: list[Gap] = []
    if version_tuple(py)[:2] < (3, 9):
        gaps.append(Gap(f"Python 3.9 or later for the agent (found {py})", "apt-get install python3" + alternative))
    package, wanted = profile.runtime_package, profile.runtime_version
    module = RUNTIME_MODULES.get(package)
    runtimes = facts.get("runtimes") or {}
    numpy = facts.get("numpy")
    pins_numpy = False
    if module is not None:
        have = runtimes.get(module)
        error = (facts.get("runtime_errors") or {}).get(module)
        if not version_matches(have, wanted):
            found = f"found {have}" if have else "not installed"
            line = runtime_install_line(package, wanted)
            pins_numpy = "numpy<2" in line
            gaps.append(Gap(f"{package} {wanted} ({found})", line))
        elif error:
            numpy_abi = package == "tflite-runtime" and version_tuple(numpy)[:1] >= (2,)
            pins_numpy = numpy_abi
            gaps.append(Gap(f"{package} {have} is installed but does not load ({error})",
                            "pip install 'numpy<2'" if numpy_abi else f"pip install --force-reinstall {package}=={have}"))
    if not numpy:
        if not pins_numpy:
            gaps.append(Gap("numpy", "pip install 'numpy<2'" if package == "tflite-runtime" else "pip install numpy"))
    elif package == "tflite-runtime" and version_tuple(numpy)[:1] >= (2,) and not pins_numpy:
        gaps.append(Gap(f"numpy < 2 for tflite-runtime {wanted} (found numpy {numpy})", "pip install 'numpy<2'"))
    if profile.runtime is Runtime.EDGETPU and not facts.get("edgetpu_delegate"):
        gaps.append(Gap("the Edge TPU runtime (libedgetpu.so.1)",
                        "apt-get install libedgetpu1-std (from Coral's apt repository), then plug the Edge TPU in"))
    return gaps


def check_profiles(facts: Mapping[str, Any], kind: Transport, only: str | None = None) -> list[ProfileCheck]:
    """Every profile reached over `kind` (or just `only`) checked against `facts`."""
    from . import profiles

    chosen = [profiles.resolve(only)] if only else [p for p in profiles.list_profiles() if p.transport is kind]
    return [ProfileCheck(p.name, p.display_name, profile_gaps(facts, p)) for p in chosen]


# ---------------------------------------------------------------- this machine


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model(cpuinfo: str) -> str | None:
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        for line in cpuinfo.splitlines():
            if ":" in line and line.split(":", 1)[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def thermal_zones(root: str | Path = "/") -> dict[str, float]:
    """Thermal zone type -> degrees C from /sys/class/thermal (empty when there are none)."""
    out: dict[str, float] = {}
    base = Path(root) / "sys/class/thermal"
    for zone in sorted(base.glob("thermal_zone*")) if base.is_dir() else []:
        t = _read(zone / "temp")
        if t and t.lstrip("-").isdigit():
            out[_read(zone / "type") or zone.name] = int(t) / 1000.0
    return out


def find_edgetpu_library() -> str | None:
    """Where libedgetpu is on this machine (a path, or the name the loader finds), else None."""
    for p in ("/usr/lib/x86_64-linux-gnu/libedgetpu.so.1", "/usr/lib/aarch64-linux-gnu/libedgetpu.so.1",
              "/usr/lib/arm-linux-gnueabihf/libedgetpu.so.1", "/usr/local/lib/libedgetpu.1.dylib",
              "/opt/homebrew/lib/libedgetpu.1.dylib"):
        if Path(p).exists():
            return p
    return ctypes.util.find_library("edgetpu")


def local_facts() -> dict[str, Any]:
    """FACT_KEYS for this machine, read without importing TensorFlow or a runtime (package metadata only)."""
    cpuinfo = _read("/proc/cpuinfo") or ""
    try:
        free = shutil.disk_usage(Path.home()).free
    except OSError:
        free = None
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return {
        "device": LOCAL,
        "transport": Transport.LOCAL.value,
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(cpuinfo),
        "cpu_count": os.cpu_count(),
        "governor": governor,
        "temperatures_c": thermal_zones() or None,
        "free_disk_bytes": free,
        "python": platform.python_version(),
        "python_path": sys.executable,
        "numpy": _dist_version("numpy"),
        "runtimes": {module: _dist_version(dist) for dist, module in RUNTIME_MODULES.items()},
        "edgetpu_delegate": find_edgetpu_library(),
        "benchmark_binary": None,
        # "power_sensors" is added by the caller from bench/sensors.py, the reader the benchmark itself uses
    }


# ---------------------------------------------------------------- the host doctor

TUNNELD_ADDRESS = ("127.0.0.1", 49151)  # `pymobiledevice3 remote tunneld` listens here
USBMUXD_SOCKET = "/var/run/usbmuxd"


@dataclass
class HostTool:
    """One host-side tool: whether it is here, what it is, what its absence disables, how to install it."""

    name: str
    present: bool
    detail: str
    disables: str
    install: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "present": self.present, "detail": self.detail, "disables": self.disables,
                "install": self.install, "notes": list(self.notes)}


def _version_of(cmd: list[str]) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return ""
    text = (p.stdout or "") + (p.stderr or "")
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _port_open(address: tuple[str, int], timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection(address, timeout=timeout):
            return True
    except OSError:
        return False


def _tool(name: str, candidates: list[str], version_args: list[str], disables: str, install: str) -> HostTool:
    path = next((p for p in (shutil.which(c) for c in candidates) if p), None)
    if path is None:
        return HostTool(name, False, "not found", disables, install)
    version = _version_of([path, *version_args])
    return HostTool(name, True, f"{path}" + (f" ({version})" if version else ""), disables, install)


def host_tools() -> list[HostTool]:
    """The host-side doctor: each tool a device kind or a step needs, present or not, and what is lost without it."""
    tools = [
        _tool("ssh", ["ssh"], ["-V"], "ssh:// devices (boards such as a Raspberry Pi or a Coral Dev Board)",
              "apt-get install openssh-client"),
        _tool("adb", ["adb"], ["version"], "adb:// devices (Android phones)", "apt-get install adb"),
        _pymobiledevice3_tool(),
        _tool("edgetpu_compiler", ["edgetpu_compiler"], ["--version"],
              "compiling Edge TPU exports (they are still made and verified on the CPU, marked not-compiled)",
              "apt-get install edgetpu-compiler (Coral's apt repository, x86-64 Linux only)"),
        _tool("chromium", ["chromium", "chromium-browser", "google-chrome"], ["--version"],
              "rendering the HTML report headless (screenshots / PDF of a report)", "apt-get install chromium"),
    ]
    return tools


def _pymobiledevice3_tool() -> HostTool:
    disables = "ios:// devices (iPhones running the edgepool app)"
    install = "pip install 'edgepool[ios]'"
    if util.find_spec("pymobiledevice3") is None:
        return HostTool("pymobiledevice3", False, "not installed", disables, install)
    version = _dist_version("pymobiledevice3") or "unknown version"
    notes = []
    if _port_open(TUNNELD_ADDRESS):
        notes.append(f"tunneld: running on {TUNNELD_ADDRESS[0]}:{TUNNELD_ADDRESS[1]}")
    else:
        notes.append("tunneld: not running; iOS 17 and later need it to launch apps: sudo pymobiledevice3 remote tunneld")
    if Path(USBMUXD_SOCKET).exists():
        notes.append("usbmuxd: running")
    else:
        notes.append("usbmuxd: no socket at /var/run/usbmuxd; USB-attached iPhones need it: apt-get install usbmuxd")
    notes.append("developer disk image: checked per device (`edgepool devices check ios://UDID`); "
                 "mount it with: pymobiledevice3 mounter auto-mount")
    return HostTool("pymobiledevice3", True, f"pymobiledevice3 {version}", disables, install, notes)

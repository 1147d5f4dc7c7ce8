"""How the agent reaches a device. Each transport runs one model there and streams the agent's JSON events
back as an AgentRun:

- `local` (`local.py`): `agent.py` in a child process on this machine;
- `ssh` (`ssh.py`): `agent.py` on a Linux board with Python 3.9+, through the system OpenSSH client (or, given
  a benchmark binary, LiteRT's `benchmark_model` there: no Python needed);
- `adb` (`adb.py`): LiteRT's `benchmark_model` binary on an Android phone (no agent: no windows, no accuracy);
- `ios` (`ios.py`): the edgepool example app on an iPhone, driven through pymobiledevice3.

`get_transport(ref)` builds the one for a device (`edgepool.devices.DeviceRef`, the one URI parser). Every
transport has `run(request, on_event) -> AgentRun` and `interrupt()`, which stops the model being measured from
another thread (the multi-device runner's Ctrl-C) and makes `run` return with `interrupted` set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ...errors import InputError
from ...types import Transport as TransportKind

if TYPE_CHECKING:
    from ...devices import DeviceRef
    from ...profiles import DeviceProfile

AGENT_PATH = Path(__file__).resolve().parents[1] / "agent.py"
SENSORS_PATH = AGENT_PATH.with_name("sensors.py")  # staged beside the agent, which imports it as a sibling
AGENT_FILES = (("agent.py", AGENT_PATH), ("sensors.py", SENSORS_PATH))


@dataclass
class AgentRun:
    """Everything one agent run sent back."""

    events: list[dict[str, Any]] = field(default_factory=list)  # every event but windows, in order
    windows: list[dict[str, Any]] = field(default_factory=list)  # raw `window` events
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    returncode: int | None = None
    interrupted: bool = False  # the host was interrupted (Ctrl-C) and stopped the agent
    stderr_tail: str = ""

    def take(self, ev: dict[str, Any], on_event: Any = None) -> None:
        """File one agent event (windows apart, the result and the error noted) and pass it on."""
        kind = ev.get("event")
        if kind == "window":
            self.windows.append(ev)
        else:
            self.events.append(ev)
            if kind == "result":
                self.result = ev
            elif kind == "error":
                self.error = ev
        if on_event is not None:
            on_event(ev)


def stderr_tail(path: Path, lines: int = 20) -> str:
    """The last lines a device-side process wrote to its stderr file ("" when there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class Transport(Protocol):
    name: str

    def run(self, request: dict[str, Any], on_event: Any = None) -> AgentRun: ...

    def interrupt(self) -> None: ...


def get_transport(ref: DeviceRef | str, python: str | None = None, timeout_s: float | None = None, *,
                  benchmark_binary: str | Path | None = None, profile: DeviceProfile | None = None) -> Transport:
    """The transport for the device `ref` (a DeviceRef, or the text `edgepool.devices.parse_device` takes).

    `python`: the interpreter that runs the agent (local; ssh: instead of the URI's `?python=`).
    `benchmark_binary`: LiteRT's benchmark_model for an adb device, or for an ssh device to measure with instead
    of the agent (else the registered device's).
    `profile`: what an adb device reports as its runtime version, and the Core ML compute units for an iPhone.
    """
    from ... import devices

    if isinstance(ref, str):
        ref = devices.parse_device(ref)
    if ref.kind is TransportKind.LOCAL:
        from .local import LocalTransport

        return LocalTransport(python=python, timeout_s=timeout_s)
    if ref.kind is TransportKind.SSH:
        from .ssh import SshTarget, SshTransport

        return SshTransport(SshTarget.from_ref(ref, python=python), timeout_s=timeout_s,
                            benchmark_binary=benchmark_binary or ref.benchmark_binary)
    if ref.kind is TransportKind.ADB:
        from .adb import AdbTransport

        return AdbTransport(ref.serial, benchmark_binary=benchmark_binary or ref.benchmark_binary, timeout_s=timeout_s,
                            runtime_version=profile.runtime_version if profile else None, label=ref.label)
    if ref.kind is TransportKind.IOS:
        from .ios import IosTransport

        return IosTransport(ref.udid, timeout_s, compute_units=profile.compute_units if profile else None,
                            label=ref.label)
    raise InputError(f"unknown device {ref.uri!r}", f"a device is {devices.URI_FORMS}")  # pragma: no cover

"""How the agent reaches a device. Each transport runs `agent.py` there with a JSON request and
streams the agent's JSON events back; `local` runs it in a child process on this machine.

`local` is the only transport: asking for a device over ssh / adb / ios is a DeviceError that says
what the user can do instead, never a fake result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...errors import DeviceError
from ...types import Transport as TransportKind

AGENT_PATH = Path(__file__).resolve().parents[1] / "agent.py"
REMOTE = (TransportKind.SSH, TransportKind.ADB, TransportKind.IOS)  # known kinds of device, not reachable from here

# What a user can do today to measure on a device of each kind.
_ON_THE_DEVICE = {
    TransportKind.SSH: ("run the agent on the device yourself: copy {agent} and the model there and run "
                        "`echo '{{\"model_path\": \"model.tflite\"}}' | python3 agent.py` (it prints JSON lines)"),
    TransportKind.ADB: "measure on the phone with TFLite's prebuilt Android benchmark_model binary (adb push, adb shell)",
    TransportKind.IOS: "measure on the device with Xcode (for a Core ML model: its Performance report)",
}


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


class Transport(Protocol):
    name: str

    def run(self, request: dict[str, Any], on_event: Any = None) -> AgentRun: ...


def no_remote_transport(kind: str, what: str, here: str) -> DeviceError:
    """The error for `what` (a device or profile) reached over `kind` (ssh / adb / ios): benchmarks run on
    this machine only. `here` is how to benchmark on this machine instead; the hint adds the on-device way."""
    on_device = _ON_THE_DEVICE[TransportKind(kind)].format(agent=AGENT_PATH)
    return DeviceError(f"{what} needs the {kind} transport: edgepool runs benchmarks on this machine only",
                       f"{here}, or {on_device}")


def get_transport(device: str, python: str | None = None, timeout_s: float | None = None) -> Transport:
    """The transport for `device`: "local" (this machine); a DeviceError for any other."""
    kind = device.split(":", 1)[0].lower()
    if kind == TransportKind.LOCAL:
        from .local import LocalTransport

        return LocalTransport(python=python, timeout_s=timeout_s)
    if kind == TransportKind.SSH:
        from dataclasses import replace

        from .ssh import SshTransport, parse_ssh_uri

        target = parse_ssh_uri(device)
        return SshTransport(replace(target, python=python) if python else target, timeout_s=timeout_s)
    if kind in REMOTE:
        raise no_remote_transport(kind, f"device {device!r}", "benchmark on this machine (device local)")
    raise DeviceError(f"unknown device {device!r}", "the one device is local (this machine)")

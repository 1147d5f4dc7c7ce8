"""How the agent reaches a device. Each transport runs `agent.py` there with a JSON request and
streams the agent's JSON events back; `local` runs it in a child process on this machine.

ssh / adb / ios transports land in a later issue: asking for them is a DeviceError, never a fake result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...errors import DeviceError

AGENT_PATH = Path(__file__).resolve().parents[1] / "agent.py"
LATER = ("ssh", "adb", "ios")


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


def get_transport(device: str, python: str | None = None, timeout_s: float | None = None) -> Transport:
    """`local`, or a clear DeviceError for transports that are not there yet."""
    kind = device.split(":", 1)[0].lower()
    if kind == "local":
        from .local import LocalTransport

        return LocalTransport(python=python, timeout_s=timeout_s)
    if kind in LATER:
        raise DeviceError(f"transport {kind} lands in a later issue", "benchmark with --device local for now")
    raise DeviceError(f"unknown device {device!r}", "use --device local (ssh, adb and ios land later)")

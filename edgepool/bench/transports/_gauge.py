"""Battery readings polled from the host, for devices that run no agent (adb: the phone's fuel gauge through
`adb shell`; ios: pymobiledevice3's battery diagnostics).

`GaugePoller(read, interval_s)` calls `read()` in a thread every `interval_s` and keeps (host time.monotonic(),
value). `power_record(...)` turns the polled watts and the phase bounds into the agent's `power` record, so the
host-side integration (`edgepool.bench.energy.measured_energy`) is the same for every transport. The polling
runs on the host, so it costs the phone one small shell command (adb) or service request (ios) per reading.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .. import sensors


class GaugePoller:
    def __init__(self, read: Callable[[], Any], interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.read = read
        self.interval_s = float(interval_s)
        self.clock = clock
        self.samples: list[tuple[float, Any]] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = self.stopped = 0.0

    def start(self) -> GaugePoller:
        self.started = self.clock()
        self._thread = threading.Thread(target=self._loop, name="edgepool-gauge", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                value = self.read()
            except Exception:
                value = None
            if value is None:
                self.errors += 1
            else:
                self.samples.append((self.clock(), value))
            self._stop.wait(self.interval_s)

    def stop(self) -> GaugePoller:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.stopped = self.clock()
        return self


def sleep_idle(seconds: float, stop: threading.Event) -> bool:
    """Wait `seconds` (an idle window); True when `stop` was set meanwhile."""
    return stop.wait(seconds) if seconds > 0 else stop.is_set()


def power_record(poller: GaugePoller, name: str, rail: str, idle: dict[str, list[float]],
                 loaded: tuple[float, float], inferences: int, notes: list[str], min_window_s: float) -> dict[str, Any]:
    """The agent-shaped `power` record: one source (the polled watts), one loaded window, the idle windows."""
    t = [s[0] for s in poller.samples]
    v = [float(s[1]) for s in poller.samples]
    wall = max(poller.stopped - poller.started, 1e-9)
    src = {"name": name, "source": name, "quantity": "power", "rail": rail, "kind": "battery",
           "rate_hz": 1.0 / poller.interval_s, "achieved_hz": len(t) / wall, "min_window_s": min_window_s,
           "t": t, "v": v, "errors": poller.errors, "cpu_s": 0.0, "wall_s": wall, "unit": 1e-3,
           "notes": list(notes)}
    window = {"index": 0, "runs": int(inferences), "start": loaded[0], "end": loaded[1], "partial": False}
    return {"sources": [src] if t else [], "windows": [window] if inferences else [], "idle": idle,
            "clock": "host monotonic", "config": {"interval_s": poller.interval_s},
            "notes": ["polled from the host; the sampler costs the device one small request per reading, "
                      "not counted as CPU overhead here"]}


def sysfs_battery_watts(current: str | None, voltage: str | None, status: str | None,
                        notes: list[str]) -> float | None:
    """`current_now` / `voltage_now` / `status` texts (any vendor's units and sign, see
    sensors.normalize_current_ua) -> discharge watts; the unit and sign notes are added to `notes` once."""
    try:
        ua, cnotes = sensors.normalize_current_ua(float(str(current).strip()), status)
        uv, vnotes = sensors.normalize_voltage_uv(float(str(voltage).strip()))
    except (TypeError, ValueError):
        return None
    for n in cnotes + vnotes:
        if n not in notes:
            notes.append(n)
    return ua * uv / 1e12

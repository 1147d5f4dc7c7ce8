"""Energy and battery soak on phones, against stand-ins (no phone exists on the machines that run the tests).

adb: a stand-in `adb` script first on PATH answers the fuel-gauge read (`cat current_now voltage_now status`, the
kernel's files in microamps / microvolts, negative while discharging), `dumpsys battery` (AOSP BatteryService's
dump, with `Charge counter` in uAh), and `benchmark_model` (the LiteRT fixture output, after holding a "running"
marker for a set time: the phone draws more current while it runs). iPhone: a stand-in device object replaces
pymobiledevice3 and answers `battery()` with IOPMPowerSource dicts as `DiagnosticsService.get_battery()` returns
them (InstantAmperage in mA, negative while discharging, Voltage in mV, IsCharging, CurrentCapacity, UpdateTime).
The host-side polling, the power record and its integration are the real code.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edgepool.bench import energy
from edgepool.bench.transports import adb as adb_mod
from edgepool.bench.transports.adb import AdbTransport
from edgepool.errors import InputError
from tests.devices.test_adb_transport import BATTERY_BEFORE, FIXTURES, GETPROP, THERMAL, elf

IDLE_UA, LOAD_UA, VOLTS_UV = -300000, -1100000, 3900000  # kernel convention: negative while discharging
RUN_S = 1.5

STANDIN = r'''#!{python}
"""Stand-in adb for the energy tests: the fuel gauge reads more current while benchmark_model "runs"."""
import os, sys, time
d = {state!r}
args = sys.argv[1:]
if args[:1] == ["-s"]:
    args = args[2:]
cmd = " ".join(args)
running = os.path.join(d, "running")
if args[:1] == ["get-state"]:
    print("device")
elif args[:1] == ["push"]:
    print("1 file pushed")
elif "getprop" in cmd:
    sys.stdout.write(open(os.path.join(d, "getprop")).read())
elif "dumpsys battery" in cmd:
    sys.stdout.write(open(os.path.join(d, "battery")).read())
elif "dumpsys thermalservice" in cmd:
    sys.stdout.write(open(os.path.join(d, "thermal")).read())
elif "current_now" in cmd:
    print({load} if os.path.exists(running) else {idle})
    print({volts})
    print("Discharging")
elif "--graph=" in cmd:
    open(running, "w").close()
    time.sleep({run_s})
    os.remove(running)
    sys.stdout.write(open(os.path.join(d, "bench")).read())
'''


@pytest.fixture
def phone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "phone"
    state.mkdir()
    (state / "getprop").write_text(GETPROP)
    (state / "battery").write_text(BATTERY_BEFORE.replace("status: 2", "status: 3").replace("USB powered: true",
                                                                                           "USB powered: false"))
    (state / "thermal").write_text(THERMAL)
    (state / "bench").write_text((FIXTURES / "litert_android_gpu_percentiles.txt").read_text())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "adb"
    exe.write_text(STANDIN.format(python=sys.executable, state=str(state), load=LOAD_UA, idle=IDLE_UA,
                                  volts=VOLTS_UV, run_s=RUN_S))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    # a short gauge window and fast polling keep the test quick; the defaults (10 s, 0.5 s) are for real gauges
    monkeypatch.setattr(adb_mod, "GAUGE_MIN_WINDOW_S", 2.0)
    monkeypatch.setattr(adb_mod, "GAUGE_INTERVAL_S", 0.05)
    return state


def _request(model: Path, **kw: Any) -> dict[str, Any]:
    r = {"protocol": 1, "model_path": str(model), "threads": 4, "delegates": [], "warmup_runs": 1,
         "warmup_min_seconds": 0.5, "runs": 50, "min_seconds": 1.0, "windows": 1, "max_seconds": 150.0,
         "inputs": {"mode": "random", "seed": 0}}
    r.update(kw)
    return r


def test_adb_energy_from_the_polled_fuel_gauge(phone: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3" + b"\0" * 64)
    t = AdbTransport("SERIAL1", benchmark_binary=elf(tmp_path / "benchmark_model"), delegates=["gpu"])
    req = _request(model, energy={"rate_hz": 50, "idle_seconds": 1.0, "settle_seconds": 0.3, "window_seconds": 2})
    run = t.run(req)
    assert run.error is None, run.error
    power = run.result["power"]
    [src] = power["sources"]
    assert src["name"] == "adb:battery" and "fuel gauge" in src["rail"]
    assert set(power["idle"]) == {"before", "after"}
    e = energy.measured_energy(power)
    runs = 17226 + 1705  # benchmark_model's timed and warmup runs (the fixture)
    fed = (LOAD_UA - IDLE_UA) / -1e6 * VOLTS_UV / 1e6 * RUN_S / runs * 1e3
    assert e["idle_power_w"] == pytest.approx(0.3 * 3.9, rel=0.01)
    assert any("sign flipped" in n for n in e["notes"])
    # the loaded window the host sees includes the adb round trip around the run: a few % more than RUN_S at idle
    assert abs(e["mj_per_inference"] - fed) <= e["uncertainty_mj"] + 0.05 * fed, (e, fed)


def test_adb_soak_records_dumpsys_and_refuses_charging(phone: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3" + b"\0" * 64)
    t = AdbTransport("SERIAL1", benchmark_binary=elf(tmp_path / "benchmark_model"), delegates=[])
    run = t.run(_request(model, soak={"seconds": 2.0, "fps": 30, "gauge_interval_s": 0.5}))
    assert run.error is None, run.error
    soak = run.result["soak"]
    assert soak["gauge"]["source"].startswith("adb:battery") and len(soak["readings"]) >= 3
    assert soak["readings"][0]["charge_counter_uah"] == 3982000 and soak["readings"][0]["status"] == "discharging"
    assert soak["inferences"] == 17226 + 1705
    s = energy.soak_summary(soak)
    assert s["max_temperature_c"] == pytest.approx(51.2) and s["throttled"] == ["thermal status light"]
    (phone / "battery").write_text(BATTERY_BEFORE)  # status 2 (charging), USB powered
    with pytest.raises(InputError, match="the phone is charging"):
        t.run(_request(model, soak={"seconds": 2.0, "fps": 30}))
    allowed = t.run(_request(model, soak={"seconds": 2.0, "fps": 30, "allow_charging": True}))
    assert allowed.result["soak"]["allow_charging"] is True


class StandInIPhone:
    """Answers like pymobiledevice3's adapter (ios.Pmd3Device): IOPMPowerSource from the diagnostics service, whose
    values the device refreshes only every `refresh_s` (UpdateTime says when), and the app's result.json."""

    def __init__(self, refresh_s: float = 0.2, run_s: float = 2.0, charging: bool = False) -> None:
        self.refresh_s, self.run_s, self.charging = refresh_s, run_s, charging
        self.launched: float | None = None
        self.files: dict[str, bytes] = {}
        self.t0 = time.monotonic()

    def _running(self, at: float) -> bool:
        return self.launched is not None and self.launched <= at < self.launched + self.run_s

    def battery(self) -> dict[str, Any]:
        now = time.monotonic()
        refreshed = self.t0 + (now - self.t0) // self.refresh_s * self.refresh_s
        amps = -900 if self._running(refreshed) else -250  # mA, negative while discharging
        return {"InstantAmperage": amps, "Voltage": 3870, "IsCharging": self.charging, "CurrentCapacity": 81,
                "MaxCapacity": 100, "ExternalConnected": self.charging, "Temperature": 3012,
                "AppleRawCurrentCapacity": 2900 - int((refreshed - self.t0) / self.refresh_s),  # mAh, 1 per refresh
                "UpdateTime": int(1_700_000_000 + refreshed * 1000) / 1000}

    def info(self) -> dict[str, Any]:
        return {"name": "Test iPhone", "ios_version": "17.5", "product_type": "iPhone16,1", "udid": "UDID"}

    def app_installed(self, bundle_id: str) -> bool:
        return True

    def put(self, bundle_id: str, files: list) -> None:
        for name, src in files:
            self.files[name] = src if isinstance(src, bytes) else Path(src).read_bytes()

    def launch(self, bundle_id: str, arguments: list[str], environment: dict[str, str]) -> int:
        self.launched = time.monotonic()
        self.request = json.loads(self.files[next(k for k in self.files if k.endswith("request.json"))])
        return 4242

    def read(self, bundle_id: str, remote: str) -> bytes | None:
        if self.launched is None or time.monotonic() < self.launched + self.run_s:
            return None
        return json.dumps({"runtime": "coreml", "windows": [{"index": 0, "runs": 400, "seconds": 1.5, "partial": False,
                                                             "latencies_ms": [3.75] * 400}],
                           "warmup": {"runs": 20}, "environment": {"thermal_state": "nominal"}}).encode()

    def remove(self, bundle_id: str, remote: str) -> None:
        pass

    def kill(self, pid: int) -> None:
        pass

    def close(self) -> None:
        pass


def test_ios_energy_from_battery_diagnostics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepool.bench.transports import ios as ios_mod

    model = tmp_path / "m.mlmodel"
    model.write_bytes(b"\0" * 64)
    phone = StandInIPhone(refresh_s=0.2, run_s=2.0)
    monkeypatch.setattr(ios_mod, "GAUGE_REFRESH_S", 0.2)  # a real iPhone refreshes every few seconds
    t = ios_mod.IosTransport("UDID", device_factory=lambda udid, label: phone, poll_interval_s=0.05)
    run = t.run(_request(model, energy={"idle_seconds": 1.0, "settle_seconds": 0.3, "window_seconds": 1.0}))
    assert run.error is None, run.error
    power = run.result["power"]
    [src] = power["sources"]
    assert src["name"] == "ios:diagnostics" and "IOPMPowerSource" in src["rail"]
    e = energy.measured_energy(power)
    runs = 400 + 20
    fed = (0.9 - 0.25) * 3.87 * 2.0 / runs * 1e3
    assert e["idle_power_w"] == pytest.approx(0.25 * 3.87, rel=0.01)
    assert abs(e["mj_per_inference"] - fed) <= e["uncertainty_mj"] + 0.1 * fed, (e, fed)
    assert ios_mod.battery_watts({"InstantAmperage": 18446744073709551616 - 500, "Voltage": 4000,
                                  "IsCharging": False}) == pytest.approx(2.0)  # unsigned 64-bit wrap of -500 mA
    assert ios_mod.battery_watts({"InstantAmperage": 700, "Voltage": 4000, "IsCharging": True}) == pytest.approx(-2.8)


def test_ios_soak_reads_the_raw_capacity_and_refuses_charging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepool.bench.transports import ios as ios_mod

    monkeypatch.setattr(ios_mod, "GAUGE_REFRESH_S", 0.2)
    model = tmp_path / "m.mlmodel"
    model.write_bytes(b"\0" * 64)
    phone = StandInIPhone(refresh_s=0.2, run_s=2.0)
    t = ios_mod.IosTransport("UDID", device_factory=lambda udid, label: phone, poll_interval_s=0.05)
    run = t.run(_request(model, soak={"seconds": 2.0, "fps": 30}))
    assert run.error is None, run.error
    assert phone.request["run_delay_s"] == pytest.approx(1 / 30) and phone.request["min_seconds"] == 2.0
    soak = run.result["soak"]
    assert soak["inferences"] == 400 and len(soak["readings"]) >= 5
    s = energy.soak_summary(soak)
    assert s["quantity"] == "charge_uah" and s["unit"] == "mAh"
    assert s["drain_per_hour"] == pytest.approx(5 * 3600, rel=0.3)  # 1 mAh per 0.2 s refresh
    with pytest.raises(InputError, match="charging"):
        ios_mod.IosTransport("UDID", device_factory=lambda u, label: StandInIPhone(charging=True)).run(
            _request(model, soak={"seconds": 2.0, "fps": 30}))

"""`edgepool benchmark --energy` and `--battery-soak` end to end, through real transports.

No power sensor exists on the machines that run these tests, so the sensors are stand-ins whose readings the
test drives over time: a fake hwmon tree (an INA226 whose `power1_input` holds microwatts) and, on the emulated
Raspberry Pi, a stand-in `vcgencmd` answering `pmic_read_adc` in the Pi 5's documented format. The test holds the
power at an idle level, steps it up when the agent says the load starts (its `warmup` progress event, before the
timed windows) and back down when the idle window after begins; the energy it fed per inference is then
(load - idle) x each window's length / its inferences, and the result must recover it within its stated
uncertainty. Everything else is real: the agent, its sampler thread, the transport (the local child process,
or sshd in the emulated Pi's arm64 chroot under qemu-user), the CLI and the host-side integration.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edgepool.bench.transports.ssh import SSH_CONFIG_ENV
from tests.unit.test_sensors import PMIC_OUTPUT

IDLE_W, LOAD_W, NOISE_W = 2.80, 4.60, 0.02  # the INA226's readings
CORE_IDLE_A, CORE_LOAD_A = 0.7143, 1.9643  # VDD_CORE current of the stand-in PMIC (0.72 V): +0.9 W when loaded
CORE_V = 0.72


class PowerDriver:
    """Writes the stand-in sensors' readings (idle, or loaded while the agent runs the model) every 10 ms, each
    file replaced atomically, as a driver updates sysfs. `on_event` follows the agent's progress events."""

    def __init__(self, sys_root: Path, pmic_file: Path | None = None) -> None:
        self.hw = sys_root / "class/hwmon/hwmon0"
        self.hw.mkdir(parents=True, exist_ok=True)
        (self.hw / "name").write_text("ina226\n")
        self.pmic_file = pmic_file
        self.loaded = False
        self.steps: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._rng = np.random.default_rng(0)
        self._write()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _write(self) -> None:
        watts = (LOAD_W if self.loaded else IDLE_W) + float(self._rng.normal(0, NOISE_W))
        tmp = self.hw / ".power1_input"
        tmp.write_text(f"{int(round(watts * 1e6))}\n")
        os.replace(tmp, self.hw / "power1_input")
        if self.pmic_file is not None:
            core = CORE_LOAD_A if self.loaded else CORE_IDLE_A
            text = PMIC_OUTPUT.replace("VDD_CORE_A current(7)=0.71430000A", f"VDD_CORE_A current(7)={core:.8f}A")
            tmp = self.pmic_file.with_name(".pmic.txt")
            tmp.write_text(text)
            os.replace(tmp, self.pmic_file)

    def _loop(self) -> None:
        while not self._stop.wait(0.01):
            self._write()

    def on_event(self, ev) -> None:
        data = ev.data or {}
        if data.get("event") != "progress":
            return
        phase = str(data.get("phase"))
        loaded = phase in ("warmup", "window") or (self.loaded and not phase.startswith("idle"))
        if loaded != self.loaded:  # the writer thread writes the new level within 10 ms
            self.loaded = loaded
            self.steps.append((time.monotonic(), loaded))

    def __enter__(self) -> PowerDriver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def driven_cli(monkeypatch, driver: PowerDriver):
    """The CLI's progress callback replaced by the driver's (the CLI passes the agent's events to it)."""
    from edgepool.cli import _bench_view

    @contextlib.contextmanager
    def progress(enabled=True):
        yield driver.on_event

    monkeypatch.setattr(_bench_view, "benchmark_progress", progress)
    yield


def _fed_mj(result: dict, delta_w: float) -> list[float]:
    return [delta_w * w["seconds"] / w["runs"] * 1e3 for w in result["windows"]]


def _check_recovered(energy: dict, result: dict, delta_w: float) -> None:
    fed = _fed_mj(result, delta_w)
    assert len(energy["windows_mj"]) == len(fed) >= 2
    truth = float(np.median(fed))
    assert abs(energy["mj_per_inference"] - truth) <= energy["uncertainty_mj"], (energy, fed)
    assert energy["uncertainty_mj"] < 0.25 * truth  # a useful number, not a shrug


FAST_ENERGY = ["--energy", "--energy-window", "1.5", "--idle-seconds", "1", "--windows", "3",
               "--warmup-seconds", "0.3", "--inputs", "random", "--no-save", "--json"]


def test_local_energy_measured_from_a_fake_hwmon_tree(digits, cli, monkeypatch, tmp_path):
    """The local agent reads the INA226 stand-in under --sysfs-root and recovers the energy it was fed."""
    sys_root = tmp_path / "sys"
    with PowerDriver(sys_root) as driver, driven_cli(monkeypatch, driver):
        r = cli("benchmark", digits.int8_export, "--sysfs-root", sys_root, "--sample-rate", "50", *FAST_ENERGY)
    assert r.exit_code == 0, r.stdout + r.stderr
    [res] = json.loads(r.stdout)["results"]
    e = res["energy"]
    assert e["kind"] == "measured" and e["source"] == "hwmon:ina226 power1"
    assert e["idle_power_w"] == pytest.approx(IDLE_W, abs=0.02)
    assert e["avg_power_w"] == pytest.approx(LOAD_W, abs=0.05)
    assert 30 <= e["sample_rate_hz"] <= 55
    assert 0 < e["sampler_overhead"]["cpu_s_per_s"] < 0.2
    assert [w["seconds"] >= 1.5 for w in res["windows"]] == [True] * 3
    _check_recovered(e, res, LOAD_W - IDLE_W)
    assert [s[1] for s in driver.steps] == [True, False]  # one load step up, one down


def test_local_energy_without_a_sensor_is_estimated_and_labelled(digits, cli, tmp_path):
    """An empty sysfs tree (no sensor): the estimate from the host-cpu profile's power model, labelled."""
    empty = tmp_path / "sys"
    empty.mkdir()
    args = ["benchmark", digits.int8_export, "--sysfs-root", empty, "--energy", "--energy-window", "0.2",
            "--windows", "2", "--warmup-seconds", "0.05", "--inputs", "random", "--no-save"]
    r = cli(*args, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    [res] = json.loads(r.stdout)["results"]
    e = res["energy"]
    assert e["kind"] == "estimated" and e["source"] == "profile host-cpu power model"
    assert e["mj_per_inference"] == pytest.approx((35 - 10) * res["latency_ms"]["median"])
    assert e["notes"][0] == "no power sensor was found on the device"
    table = cli(*args)
    text = " ".join(table.stdout.split())
    assert table.exit_code == 0 and "(estimated)" in text and "profile host-cpu power model, estimated" in text


def _battery(root: Path, status: str = "Discharging", counter: int = 3_000_000) -> Path:
    bat = root / "class/power_supply/battery"
    bat.mkdir(parents=True, exist_ok=True)
    for name, value in {"type": "Battery", "status": status, "capacity": "80", "charge_counter": str(counter),
                        "current_now": "-400000", "voltage_now": "3900000", "temp": "301"}.items():
        (bat / name).write_text(value + "\n")
    return bat


def test_battery_soak_records_the_gauge_and_refuses_a_charging_device(digits, cli, tmp_path):
    """A stand-in fuel gauge (an Android-style battery with charge_counter in uAh) that a thread drains by 1000
    uAh a second while the soak runs at 50 FPS for 5 s."""
    root = tmp_path / "sys"
    bat = _battery(root)
    stop = threading.Event()

    def drain():
        counter = 3_000_000
        while not stop.wait(1.0):
            counter -= 1000
            (bat / ".c").write_text(f"{counter}\n")
            os.replace(bat / ".c", bat / "charge_counter")

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    try:
        r = cli("benchmark", digits.int8_export, "--sysfs-root", root, "--battery-soak", "5s", "--fps", "50",
                "--inputs", "random", "--no-save", "--json")
    finally:
        stop.set()
        t.join()
    assert r.exit_code == 0, r.stdout + r.stderr
    [res] = json.loads(r.stdout)["results"]
    s = res["soak"]
    assert s["quantity"] == "charge_counter_uah" and s["unit"] == "mAh" and s["resolution"] == pytest.approx(1.0)
    assert s["drain_per_hour"] == pytest.approx(3600.0, rel=0.35)  # 1 mAh a second
    assert s["inferences"] == res["runs"] and 40 <= s["fps"] <= 51
    assert s["drain_per_1000_inferences"] == pytest.approx(s["drain_per_hour"] * s["seconds"] / 3600
                                                           / s["inferences"] * 1000, rel=1e-6)
    assert res["battery"]["kind"] == "measured" and res["battery"]["fps"] == pytest.approx(s["fps"])
    assert len(s["readings"]) >= 3
    _battery(root, status="Charging")
    refused = cli("benchmark", digits.int8_export, "--sysfs-root", root, "--battery-soak", "5s", "--fps", "50",
                  "--inputs", "random", "--no-save")
    assert refused.exit_code == 2 and "the device is charging" in refused.stderr
    no_fps = cli("benchmark", digits.int8_export, "--battery-soak", "5s", "--no-save")
    assert no_fps.exit_code == 2 and "--battery-soak needs a frame rate" in no_fps.stderr


@pytest.mark.slow
def test_emulated_pi_energy_from_hwmon_and_vcgencmd(emulated_pi, digits, cli, monkeypatch):
    """The emulated Pi gets a fake INA226 hwmon tree in its /sys and a stand-in `vcgencmd` (a shell script printing
    the PMIC file the test rewrites), both placed in its root filesystem for this test and removed after.
    `edgepool benchmark --device ssh://... --energy` must recover the energy fed to each within its uncertainty."""
    rootfs = emulated_pi.rootfs
    vcgencmd = rootfs / "usr/local/bin/vcgencmd"
    state = rootfs / "run/edgepool-energy-test"
    hwmon = rootfs / "sys/class/hwmon"
    assert not vcgencmd.exists() and not hwmon.exists(), "a stand-in sensor was left in the Pi image"
    state.mkdir(parents=True, exist_ok=True)
    vcgencmd.write_text("#!/bin/sh\ncase \"$1\" in\n  pmic_read_adc) exec cat /run/edgepool-energy-test/pmic.txt ;;\n"
                        "  get_throttled) echo throttled=0x0 ;;\n  measure_temp) echo \"temp=45.0'C\" ;;\n"
                        "  *) echo 'error=2 error_msg=\"Command not registered\"'; exit 2 ;;\nesac\n")
    vcgencmd.chmod(0o755)
    monkeypatch.setenv(SSH_CONFIG_ENV, str(emulated_pi.ssh_config))
    try:
        with PowerDriver(rootfs / "sys", state / "pmic.txt") as driver, driven_cli(monkeypatch, driver):
            r = cli("benchmark", digits.int8_export, "--device", emulated_pi.uri(), "--sample-rate", "25",
                    *[a if a != "1.5" else "3" for a in FAST_ENERGY])
    finally:
        vcgencmd.unlink(missing_ok=True)
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(hwmon, ignore_errors=True)
        shutil.rmtree(rootfs / "sys/class", ignore_errors=True)
    assert r.exit_code == 0, r.stdout + r.stderr
    [res] = json.loads(r.stdout)["results"]
    assert res["environment"]["emulated"] == "qemu-user"
    e = res["energy"]
    assert e["kind"] == "measured" and e["source"] == "hwmon:ina226 power1"
    _check_recovered(e, res, LOAD_W - IDLE_W)
    [pmic] = e["other_sources"]
    assert pmic["source"] == "vcgencmd pmic_read_adc" and "not the 5 V input" in pmic["rail"]
    fed = float(np.median(_fed_mj(res, (CORE_LOAD_A - CORE_IDLE_A) * CORE_V)))
    assert abs(pmic["mj_per_inference"] - fed) <= pmic["uncertainty_mj"], (pmic, fed)

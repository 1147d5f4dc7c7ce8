"""The device-side power readers (edgepool/bench/sensors.py) against fake sysfs trees laid out like /sys.

No power sensor exists on the machine that runs the tests: each tree here is a temporary directory with the
files the kernel drivers write (hwmon ina2xx / ina3221, powercap intel-rapl, power_supply batteries) in their
real formats and units, and `vcgencmd` is a stand-in script printing `pmic_read_adc` output in the format the
Raspberry Pi documentation shows (`3V7_WL_SW_A current(0)=0.00390372A`, `3V7_WL_SW_V volt(8)=3.69416000V`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edgepool.bench import sensors

# `vcgencmd pmic_read_adc` on a Raspberry Pi 5 (rail currents, then voltages; EXT5V and BATT have no current)
PMIC_OUTPUT = """\
 3V7_WL_SW_A current(0)=0.00390372A
   3V3_SYS_A current(1)=0.05416596A
   1V8_SYS_A current(2)=0.17449740A
  DDR_VDD2_A current(3)=0.02781516A
  DDR_VDDQ_A current(4)=0.00000000A
   1V1_SYS_A current(5)=0.19229130A
    0V8_SW_A current(6)=0.34203590A
  VDD_CORE_A current(7)=0.71430000A
   3V3_DAC_A current(17)=0.00012210A
   3V3_ADC_A current(18)=0.00000000A
   0V8_AON_A current(16)=0.00498792A
      HDMI_A current(22)=0.01837548A
     3V7_WL_SW_V volt(8)=3.69416000V
       3V3_SYS_V volt(9)=3.30104300V
       1V8_SYS_V volt(10)=1.79926800V
      DDR_VDD2_V volt(11)=1.11133200V
      DDR_VDDQ_V volt(12)=0.60537960V
       1V1_SYS_V volt(13)=1.10622400V
        0V8_SW_V volt(14)=0.80035640V
      VDD_CORE_V volt(15)=0.72000000V
       3V3_DAC_V volt(20)=3.30659100V
       3V3_ADC_V volt(21)=3.30659100V
       0V8_AON_V volt(19)=0.80000000V
          HDMI_V volt(23)=5.14930800V
         EXT5V_V volt(24)=5.15101200V
          BATT_V volt(25)=0.00000000V
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_parse_pmic_read_adc_pairs_rails_and_sums_v_times_i():
    parsed = sensors.parse_pmic_read_adc(PMIC_OUTPUT)
    assert parsed["currents"]["VDD_CORE"] == pytest.approx(0.7143)
    assert parsed["volts"]["EXT5V"] == pytest.approx(5.151012)
    assert "EXT5V" not in parsed["currents"]  # the 5 V input has no current reading
    watts, rails = sensors.pmic_power(parsed)
    assert len(rails) == 12 and "EXT5V" not in rails and "BATT" not in rails
    expected = sum(parsed["currents"][r] * parsed["volts"][r] for r in rails)
    assert watts == pytest.approx(expected) and 1.0 < watts < 2.0
    assert sensors.pmic_power(sensors.parse_pmic_read_adc("error=1 error_msg=\"Command not registered\""))[0] is None


@pytest.fixture
def stand_in_vcgencmd(tmp_path, monkeypatch):
    """A `vcgencmd` on PATH printing PMIC_OUTPUT for pmic_read_adc (a stand-in: no Raspberry Pi 5 here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pmic.txt").write_text(PMIC_OUTPUT)
    script = bin_dir / "vcgencmd"
    script.write_text(f'#!/bin/sh\n[ "$1" = pmic_read_adc ] && exec cat {bin_dir / "pmic.txt"}\necho "error=1"; exit 1\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def test_pmic_source_through_a_stand_in_vcgencmd(tmp_path, stand_in_vcgencmd):
    found = sensors.discover(str(tmp_path / "sys"))
    assert [s.name for s in found] == ["vcgencmd pmic_read_adc"]
    pmic = found[0]
    assert pmic.kind == "pmic" and "not the 5 V input" in pmic.rail
    assert pmic.default_rate_hz == sensors.PROCESS_RATE_HZ
    assert pmic.read() == pytest.approx(sensors.pmic_power(sensors.parse_pmic_read_adc(PMIC_OUTPUT))[0])


def test_hwmon_power_in_microwatts_and_current_times_voltage(tmp_path):
    root = tmp_path / "sys"
    ina226 = root / "class/hwmon/hwmon0"
    _write(ina226 / "name", "ina226\n")
    _write(ina226 / "power1_input", "4825000\n")  # uW
    _write(ina226 / "curr1_input", "965\n")  # mA (ignored: the chip reports power itself)
    _write(ina226 / "in1_input", "5000\n")
    jetson = root / "class/hwmon/hwmon1"  # INA3221 on a Jetson: three channels, labelled, no power files
    _write(jetson / "name", "ina3221\n")
    for k, (label, ma, mv) in enumerate([("VDD_GPU_SOC", 1200, 5008), ("VDD_CPU_CV", 400, 5008),
                                         ("VDD_IN", 2000, 5016)], start=1):
        _write(jetson / f"in{k}_label", label + "\n")
        _write(jetson / f"curr{k}_input", f"{ma}\n")
        _write(jetson / f"in{k}_input", f"{mv}\n")
    found = sensors.discover(str(root), pmic=False)
    names = [s.name for s in found]
    assert names[0] == "hwmon:ina3221 VDD_IN"  # a board's input rail first
    assert "hwmon:ina226 power1" in names
    by = {s.name: s for s in found}
    assert by["hwmon:ina226 power1"].read() == pytest.approx(4.825)
    assert by["hwmon:ina3221 VDD_IN"].read() == pytest.approx(2.000 * 5.016)
    assert by["hwmon:ina3221 VDD_GPU_SOC"].rail == "VDD_GPU_SOC"
    assert all(s.kind == "hwmon" and s.quantity == "power" for s in found)


def test_rapl_counter_unwraps_at_max_energy_range(tmp_path):
    root = tmp_path / "sys"
    pkg = root / "class/powercap/intel-rapl:0"
    _write(pkg / "name", "package-0\n")
    _write(pkg / "max_energy_range_uj", "262143328850\n")
    _write(pkg / "energy_uj", "262143000000\n")
    _write(root / "class/powercap/intel-rapl:0:0/energy_uj", "5\n")  # the core sub-domain: part of the package
    _write(root / "class/powercap/intel-rapl:0:0/name", "core\n")
    found = sensors.discover(str(root), pmic=False)
    assert [s.name for s in found] == ["rapl:package-0"]
    rapl = found[0]
    assert rapl.quantity == "energy"
    # discover() read it once (the first value); the counter now passes its maximum and wraps to a small value
    _write(pkg / "energy_uj", "262143300000\n")
    assert rapl.read() == pytest.approx(0.3)
    _write(pkg / "energy_uj", "671150\n")  # wrapped: 28850 uJ up to the maximum, then 671150 uJ from 0
    assert rapl.read() == pytest.approx(0.3 + (262143328850 - 262143300000 + 671150) / 1e6)
    assert rapl.wraps == 1
    unknown = sensors.EnergyCounter("x", str(pkg / "energy_uj"), None)
    unknown.update(100)
    assert unknown.update(50) == 0.0 and unknown.notes  # a wrap of unknown size is lost and said


def test_unreadable_rapl_is_left_out(tmp_path):
    pkg = tmp_path / "sys/class/powercap/intel-rapl:0"
    pkg.mkdir(parents=True)  # no energy_uj (or one only root may read): nothing to sample
    assert sensors.discover(str(tmp_path / "sys"), pmic=False) == []


@pytest.mark.parametrize(("current", "voltage", "status", "watts", "note"), [
    ("-512000", "3850000", "Discharging", 0.512 * 3.85, "kernel's convention"),  # kernel: uA, negative discharging
    ("512000", "3850000", "Discharging", 0.512 * 3.85, None),  # vendor: positive while discharging
    ("512", "3850000", "Discharging", 0.512 * 3.85, "as mA"),  # vendor: mA
    ("-512", "3850", "Discharging", 0.512 * 3.85, "as mV"),  # mA and mV, kernel sign
    ("700000", "4200000", "Charging", -0.7 * 4.2, "charging"),  # charging: the battery gains energy
    ("300000", "4000000", "Unknown", 1.2, "could not be checked"),
])
def test_battery_current_units_and_signs(tmp_path, current, voltage, status, watts, note):
    bat = tmp_path / "sys/class/power_supply/battery"
    _write(bat / "type", "Battery\n")
    _write(bat / "status", status + "\n")
    _write(bat / "current_now", current + "\n")
    _write(bat / "voltage_now", voltage + "\n")
    found = sensors.discover(str(tmp_path / "sys"), pmic=False)
    assert [s.name for s in found] == ["power_supply:battery"]
    assert found[0].read() == pytest.approx(watts)
    if note:
        assert any(note in n for n in found[0].notes), found[0].notes


def test_battery_power_now_gauge_and_charging_state(tmp_path):
    root = tmp_path / "sys"
    bat = root / "class/power_supply/BAT0"
    for name, value in {"type": "Battery", "status": "Discharging", "power_now": "7350000", "capacity": "87",
                        "energy_now": "41200000", "energy_full": "47520000", "voltage_now": "12100000",
                        "temp": "312"}.items():
        _write(bat / name, value + "\n")
    ac = root / "class/power_supply/AC"
    _write(ac / "type", "Mains\n")
    _write(ac / "online", "0\n")
    found = sensors.discover(str(root), pmic=False)
    assert [s.name for s in found] == ["power_supply:BAT0"]  # the mains supply is no power source
    assert found[0].read() == pytest.approx(7.35)
    g = found[0].gauge()
    assert g["capacity_pct"] == 87 and g["energy_uwh"] == 41200000 and g["temp_c"] == pytest.approx(31.2)
    assert sensors.charging(str(root)) is False
    _write(ac / "online", "1\n")
    assert sensors.charging(str(root)) is True
    assert sensors.charging(str(tmp_path / "nothing")) is None
    assert [b.name for b in sensors.batteries(str(root))] == ["power_supply:BAT0"]


class _Ramp(sensors.Source):
    kind = "hwmon"

    def __init__(self):
        super().__init__("ramp", "test rail", "-")
        self.n = 0

    def read(self):
        self.n += 1
        return float(self.n)


def test_sampler_rate_samples_and_its_own_cost():
    s = sensors.Sampler(_Ramp(), rate_hz=100).start()
    time.sleep(0.5)
    s.stop()
    rec = s.record()
    assert 25 <= len(rec["t"]) <= 60, len(rec["t"])  # 100 Hz for 0.5 s on a busy machine
    assert rec["v"] == sorted(rec["v"]) and rec["t"] == sorted(rec["t"])
    assert rec["cpu_s"] >= 0 and 0.4 < rec["wall_s"] < 2.0
    assert rec["rate_hz"] == 100 and rec["achieved_hz"] > 40


def test_devices_check_lists_what_energy_will_read(tmp_path):
    """`edgepool devices check` shows each source as the benchmark's reader describes it (the same reader)."""
    from edgepool.cli.devices import _fact_rows

    bat = tmp_path / "sys/class/power_supply/battery"
    _write(bat / "type", "Battery\n")
    _write(bat / "status", "Discharging\n")
    _write(bat / "power_now", "2100000\n")
    _write(tmp_path / "sys/class/hwmon/hwmon0/name", "ina260\n")
    _write(tmp_path / "sys/class/hwmon/hwmon0/power1_input", "5100000\n")
    facts = {"power_sensors": [s.describe() for s in sensors.discover(str(tmp_path / "sys"), pmic=False)]}
    [(label, text)] = [row for row in _fact_rows(facts) if row[0] == "power sensors"]
    assert text == ("hwmon:ina260 power1 (ina260 channel 1, 50 Hz); power_supply:battery (whole device, from the "
                    "battery fuel gauge, 50 Hz, windows >= 10 s)")
    assert "labelled estimated" in dict(_fact_rows({"power_sensors": []}))["power sensors"]

"""Power and battery sensors of the device the benchmark agent runs on: one self-contained file.

Copied to a device beside `agent.py` (which imports it as a sibling module); standard library only,
Python 3.8+, nothing from edgepool. `python3 sensors.py` prints what it finds as JSON.

Sources, each tagged with what it measures (`rail`):

- hwmon (`/sys/class/hwmon/hwmonN`): `powerK_input` in microwatts (INA219, INA226, INA260, ...); else
  `currK_input` (mA) x `inK_input` (mV) of the same channel (INA3221 on Jetson boards, labelled `inK_label`).
- `vcgencmd pmic_read_adc` (Raspberry Pi 5): the PMIC's rail currents (`3V7_WL_SW_A current(0)=0.00390372A`)
  and voltages (`3V7_WL_SW_V volt(8)=3.69416000V`); power = sum of V x I over the paired `_A`/`_V` rails.
  These are the board's rails after the PMIC, not the 5 V input (`EXT5V_V` has no current): the rail says so.
  Each reading spawns a process, so it is sampled at ~10 Hz, not 50.
- RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`): a cumulative energy counter in microjoules that wraps
  at `max_energy_range_uj`; `EnergyCounter.read()` returns the unwrapped total in joules.
- fuel gauges (`/sys/class/power_supply/*` of type Battery): `power_now` (uW), or `current_now` (uA) x
  `voltage_now` (uV). The kernel documents uA with negative = discharging; some vendors report mA or the
  opposite sign. The unit is inferred from the magnitude and the sign from `status`, and the `notes` say so.

`discover(root="/sys")` lists the sources found (best first); `root` is where the sysfs tree is: `/sys` on a
device, another folder for a sysfs copy (a chroot, a test tree). `Sampler(source, rate_hz)` reads a source in
a thread and measures its own CPU cost (the thread's CPU time plus its child processes').
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from array import array

DEFAULT_RATE_HZ = 50.0  # sysfs readers: a read is a few microseconds
PROCESS_RATE_HZ = 10.0  # a reader that spawns a process per reading (vcgencmd)
# the shortest loaded window each kind of sensor can measure (fuel gauges update about once a second or slower)
MIN_WINDOW_S = {"hwmon": 0.5, "rapl": 0.5, "pmic": 1.0, "battery": 10.0}
PRIORITY = {"hwmon": 0, "pmic": 1, "rapl": 2, "battery": 3}


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _num(text):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


class Source:
    """A sensor. `quantity` "power": read() -> watts now; "energy": read() -> joules so far (monotonic).
    `unit_w` / `unit_j`: the smallest step the file can express. `rail`: what it measures."""

    kind = "?"
    quantity = "power"
    unit_w = 1e-6
    unit_j = 1e-6

    def __init__(self, name, rail, path):
        self.name = name
        self.rail = rail
        self.path = path
        self.notes = []

    @property
    def default_rate_hz(self):
        return DEFAULT_RATE_HZ

    @property
    def min_window_s(self):
        return MIN_WINDOW_S.get(self.kind, 1.0)

    def read(self):
        raise NotImplementedError

    def describe(self):
        """{name, source, quantity, rail, kind, rate_hz, min_window_s, notes}: what `devices check` lists."""
        return {"name": self.name, "source": self.path, "quantity": self.quantity, "rail": self.rail,
                "kind": self.kind, "rate_hz": self.default_rate_hz, "min_window_s": self.min_window_s,
                "notes": list(self.notes)}


# ------------------------------------------------------------------------------------------ hwmon
class HwmonPower(Source):
    """`powerK_input` in microwatts."""

    kind = "hwmon"

    def __init__(self, chip, index, directory, label=None):
        what = label or f"power{index}"
        super().__init__(f"hwmon:{chip} {what}", label or f"{chip} channel {index}", os.path.join(directory, f"power{index}_input"))

    def read(self):
        v = _num(_read(self.path))
        return None if v is None else v / 1e6


class HwmonCurrentVoltage(Source):
    """`currK_input` (mA) x `inK_input` (mV) of one channel: microwatts, like power."""

    kind = "hwmon"
    unit_w = 1e-3  # 1 mA x ~1 V: the files' integer steps

    def __init__(self, chip, index, directory, label=None):
        what = label or f"curr{index} x in{index}"
        super().__init__(f"hwmon:{chip} {what}", label or f"{chip} channel {index}",
                         os.path.join(directory, f"curr{index}_input"))
        self.volt_path = os.path.join(directory, f"in{index}_input")

    def read(self):
        i, v = _num(_read(self.path)), _num(_read(self.volt_path))
        if i is None or v is None:
            return None
        return abs(i) * v / 1e6


def _hwmon(root):
    out = []
    for d in sorted(glob.glob(os.path.join(root, "class", "hwmon", "hwmon*")), key=_natural):
        chip = _read(os.path.join(d, "name")) or os.path.basename(d)
        files = set(os.listdir(d)) if os.path.isdir(d) else set()
        powers = sorted(int(m.group(1)) for m in (re.match(r"power(\d+)_input$", f) for f in files) if m)
        currents = sorted(int(m.group(1)) for m in (re.match(r"curr(\d+)_input$", f) for f in files) if m)
        for k in powers:
            out.append(HwmonPower(chip, k, d, _read(os.path.join(d, f"power{k}_label"))))
        if not powers:
            for k in currents:
                if f"in{k}_input" in files:
                    label = _read(os.path.join(d, f"in{k}_label")) or _read(os.path.join(d, f"curr{k}_label"))
                    out.append(HwmonCurrentVoltage(chip, k, d, label))
    # a board's total input rail first (Jetson INA3221: VDD_IN; "IN" in a label), then in file order
    out.sort(key=lambda s: 0 if re.search(r"(^|_)IN($|_)|VIN|input", s.rail, re.IGNORECASE) else 1)
    return out


def _natural(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


# ------------------------------------------------------------------------------ vcgencmd (Pi 5 PMIC)
_ADC_LINE = re.compile(r"^\s*(\S+)\s+(current|volt)\((\d+)\)=\s*([-+0-9.eE]+)\s*([AV])\s*$")


def parse_pmic_read_adc(text):
    """`vcgencmd pmic_read_adc` output -> {"currents": {rail: A}, "volts": {rail: V}} keyed by the rail name
    without its `_A` / `_V` suffix. Lines that do not parse are ignored."""
    currents, volts = {}, {}
    for line in (text or "").splitlines():
        m = _ADC_LINE.match(line)
        if not m:
            continue
        name, what, value = m.group(1), m.group(2), float(m.group(4))
        if what == "current":
            currents[name[:-2] if name.endswith("_A") else name] = value
        else:
            volts[name[:-2] if name.endswith("_V") else name] = value
    return {"currents": currents, "volts": volts}


def pmic_power(parsed):
    """Sum of V x I over the rails that have both (watts), and the rails summed; None when none pair."""
    rails = sorted(set(parsed["currents"]) & set(parsed["volts"]))
    if not rails:
        return None, []
    return sum(parsed["currents"][r] * parsed["volts"][r] for r in rails), rails


def find_vcgencmd():
    return shutil.which("vcgencmd") or next((p for p in ("/usr/bin/vcgencmd", "/opt/vc/bin/vcgencmd")
                                             if os.access(p, os.X_OK)), None)


class PmicAdc(Source):
    """Raspberry Pi 5 PMIC rails through `vcgencmd pmic_read_adc`."""

    kind = "pmic"
    unit_w = 1e-5

    def __init__(self, exe, rails):
        super().__init__("vcgencmd pmic_read_adc", "board rails after the PMIC (not the 5 V input)", exe)
        self.exe = exe
        self.rails = rails
        self.notes.append(f"sum of V x I over {len(rails)} PMIC rails; the 5 V input (EXT5V) has no current reading, "
                          "so USB devices and conversion losses are not included")

    @property
    def default_rate_hz(self):
        return PROCESS_RATE_HZ

    def read(self):
        try:
            proc = subprocess.run([self.exe, "pmic_read_adc"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  stdin=subprocess.DEVNULL, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        if proc.returncode != 0:
            return None
        watts, _ = pmic_power(parse_pmic_read_adc(proc.stdout.decode("utf-8", "replace")))
        return watts


def _pmic():
    exe = find_vcgencmd()
    if not exe:
        return []
    try:
        proc = subprocess.run([exe, "pmic_read_adc"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              stdin=subprocess.DEVNULL, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return []
    if proc.returncode != 0:
        return []  # a Pi before the 5 has no PMIC ADC ("error=...")
    watts, rails = pmic_power(parse_pmic_read_adc(proc.stdout.decode("utf-8", "replace")))
    return [PmicAdc(exe, rails)] if watts is not None else []


# ------------------------------------------------------------------------------------------- RAPL
class EnergyCounter(Source):
    """RAPL `energy_uj`: read() -> joules since the first read, unwrapped at `max_energy_range_uj`."""

    kind = "rapl"
    quantity = "energy"

    def __init__(self, name, path, max_range_uj):
        super().__init__(f"rapl:{name}", f"RAPL {name} domain (CPU package energy counter)", path)
        self.max_range_uj = max_range_uj
        self._last = None
        self._total = 0
        self.wraps = 0

    def read(self):
        v = _num(_read(self.path))
        if v is None:
            return None
        return self.update(int(v))

    def update(self, raw_uj):
        """Feed one raw counter value; returns the unwrapped total in joules since the first value."""
        if self._last is not None:
            delta = raw_uj - self._last
            if delta < 0:  # wrapped: the counter restarted from 0 after max_energy_range_uj
                if self.max_range_uj:
                    delta += self.max_range_uj
                    self.wraps += 1
                else:
                    delta = 0  # a wrap of unknown size: this interval is lost
                    self.notes.append("the counter wrapped and max_energy_range_uj is unknown: an interval was lost")
            self._total += max(delta, 0)
        self._last = raw_uj
        return self._total / 1e6


def _rapl(root):
    out = []
    for d in sorted(glob.glob(os.path.join(root, "class", "powercap", "intel-rapl:*")), key=_natural):
        if os.path.basename(d).count(":") != 1:
            continue  # sub-domains (core, uncore, dram) are parts of their package
        path = os.path.join(d, "energy_uj")
        if _num(_read(path)) is None:
            continue  # missing, or readable by root only (recent kernels)
        name = _read(os.path.join(d, "name")) or os.path.basename(d)
        out.append(EnergyCounter(name, path, _num(_read(os.path.join(d, "max_energy_range_uj")))))
    return out


# ------------------------------------------------------------------------------------ fuel gauges
def normalize_current_ua(raw, status):
    """A `current_now` value -> (discharge current in uA, positive while discharging; notes).

    The kernel's unit is uA; a magnitude below 20000 (20 mA would be too little for a device running a model;
    20 A in mA is the plausible reading) is taken as mA. The kernel's sign is negative while discharging, some
    vendors' the opposite: with `status` Discharging the sign is chosen so the current is positive."""
    notes = []
    value = float(raw)
    if value != 0 and abs(value) < 20000:
        value *= 1000.0
        notes.append("current_now read as mA (its magnitude is too small for uA)")
    st = (status or "").strip().lower()
    if st == "discharging":
        if value < 0:
            value = -value
            notes.append("current_now is negative while discharging (the kernel's convention): sign flipped")
    elif st == "charging":
        value = -abs(value)
        notes.append("the battery is charging: its discharge power is negative")
    else:
        value = abs(value)
        notes.append(f"battery status {status or 'unknown'}: the sign of current_now could not be checked")
    return value, notes


def normalize_voltage_uv(raw):
    """`voltage_now` -> uV: the kernel's unit; a value below 100 is taken as V and below 100000 as mV."""
    value = float(raw)
    if 0 < abs(value) < 100:
        return value * 1e6, ["voltage_now read as V"]
    if 0 < abs(value) < 100000:
        return value * 1e3, ["voltage_now read as mV"]
    return value, []


class PowerSupply(Source):
    """A battery fuel gauge: `power_now` (uW) or `current_now` x `voltage_now`; positive while discharging."""

    kind = "battery"
    unit_w = 1e-3

    def __init__(self, directory):
        name = os.path.basename(directory)
        super().__init__(f"power_supply:{name}", f"whole device, from the {name} fuel gauge", directory)
        self.dir = directory
        self.has_power = os.path.exists(os.path.join(directory, "power_now"))
        self._noted = False

    def status(self):
        return _read(os.path.join(self.dir, "status"))

    def read(self):
        status = self.status()
        if self.has_power:
            p = _num(_read(os.path.join(self.dir, "power_now")))
            if p is None:
                return None
            watts = abs(p) / 1e6
            if (status or "").lower() == "charging":
                watts = -watts
            return watts
        i = _num(_read(os.path.join(self.dir, "current_now")))
        v = _num(_read(os.path.join(self.dir, "voltage_now")))
        if i is None or v is None:
            return None
        ua, notes = normalize_current_ua(i, status)
        uv, vnotes = normalize_voltage_uv(v)
        if not self._noted:
            self.notes.extend(notes + vnotes)
            self._noted = True
        return ua * uv / 1e12

    def gauge(self):
        """The gauge now: status, capacity %, charge (uAh), energy (uWh), charge counter, voltage, current, temp."""
        d = self.dir

        def get(name):
            return _num(_read(os.path.join(d, name)))

        temp = get("temp")
        return {"status": self.status(), "capacity_pct": get("capacity"), "charge_uah": get("charge_now"),
                "charge_full_uah": get("charge_full"), "energy_uwh": get("energy_now"),
                "energy_full_uwh": get("energy_full"), "charge_counter_uah": get("charge_counter"),
                "voltage_uv": get("voltage_now"), "current_ua": get("current_now"),
                "temp_c": temp / 10.0 if temp is not None else None}


def _batteries(root):
    out = []
    for d in sorted(glob.glob(os.path.join(root, "class", "power_supply", "*")), key=_natural):
        kind = (_read(os.path.join(d, "type")) or "").lower()
        if kind and kind != "battery":
            continue  # mains / USB supplies say whether power is plugged in, not how much is used
        files = set(os.listdir(d)) if os.path.isdir(d) else set()
        if "power_now" in files or {"current_now", "voltage_now"} <= files or "capacity" in files:
            out.append(PowerSupply(d))
    return out


def batteries(root="/sys"):
    """The battery fuel gauges under `root` (for a battery soak), best first."""
    return _batteries(root)


def charging(root="/sys"):
    """True when a mains / USB supply is online or a battery says Charging; None when nothing tells."""
    seen = False
    for d in glob.glob(os.path.join(root, "class", "power_supply", "*")):
        kind = (_read(os.path.join(d, "type")) or "").lower()
        if kind == "battery":
            st = (_read(os.path.join(d, "status")) or "").lower()
            if st:
                seen = True
                if st == "charging":
                    return True
        elif kind in ("mains", "usb", "usb_c", "usb_pd", "wireless"):
            online = _read(os.path.join(d, "online"))
            if online is not None:
                seen = True
                if online == "1":
                    return True
    return False if seen else None


# ---------------------------------------------------------------------------------------- discover
def discover(root="/sys", pmic=True):
    """Every power source found, best first: hwmon, the Pi 5 PMIC, RAPL, battery gauges. Sources whose first
    reading fails are left out. `root`: where sysfs is (default /sys)."""
    found = _hwmon(root) + (_pmic() if pmic else []) + _rapl(root) + [b for b in _batteries(root)
                                                                         if b.has_power or os.path.exists(os.path.join(b.dir, "current_now"))]
    ok = []
    for s in found:
        try:
            if s.read() is not None:
                ok.append(s)
        except Exception:  # an odd driver: leave it out rather than fail the benchmark
            continue
    ok.sort(key=lambda s: PRIORITY.get(s.kind, 9))
    return ok


# ----------------------------------------------------------------------------------------- sampler
def _children_cpu():
    try:
        t = os.times()
        return t.children_user + t.children_system
    except (OSError, AttributeError):
        return 0.0


class Sampler:
    """Reads `source` every 1/rate_hz seconds in a daemon thread, timestamps on time.monotonic().

    `t` and `v` hold the samples (array of doubles); `cpu_s` the sampler's own CPU time (the thread's, plus
    its child processes' for a source that spawns one), `wall_s` how long it sampled."""

    def __init__(self, source, rate_hz=None, clock=time.monotonic):
        self.source = source
        self.rate_hz = float(rate_hz or source.default_rate_hz)
        self.clock = clock
        self.t = array("d")
        self.v = array("d")
        self.errors = 0
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="edgepool-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self

    def _loop(self):
        period = 1.0 / self.rate_hz
        thread_cpu = getattr(time, "thread_time", None)
        c0 = thread_cpu() if thread_cpu else 0.0
        k0 = _children_cpu()
        start = self.clock()
        nxt = start
        read, clock, t, v = self.source.read, self.clock, self.t, self.v
        while not self._stop.is_set():
            try:
                value = read()
            except Exception:
                value = None
            now = clock()
            if value is None:
                self.errors += 1
            else:
                t.append(now)
                v.append(float(value))
            nxt += period
            delay = nxt - clock()
            if delay < 0:
                nxt = clock()  # fell behind (a slow reader): do not try to catch up in a burst
                delay = 0
            if delay:
                time.sleep(delay)  # cheaper than Event.wait(timeout); stop() waits at most one period
        self.wall_s = self.clock() - start
        self.cpu_s = ((thread_cpu() - c0) if thread_cpu else 0.0) + (_children_cpu() - k0)

    def record(self):
        """What the host needs: the source, the samples and the sampler's cost."""
        s = self.source
        d = s.describe()
        d.update(rate_hz=self.rate_hz, achieved_hz=(len(self.t) / self.wall_s if self.wall_s > 0 else None),
                 t=list(self.t), v=list(self.v), errors=self.errors, cpu_s=self.cpu_s, wall_s=self.wall_s,
                 unit=s.unit_j if s.quantity == "energy" else s.unit_w, notes=list(s.notes))
        if isinstance(s, EnergyCounter):
            d["wraps"] = s.wraps
        return d


if __name__ == "__main__":  # pragma: no cover - a device-side convenience
    root = sys.argv[1] if len(sys.argv) > 1 else "/sys"
    print(json.dumps([s.describe() for s in discover(root)], indent=1))

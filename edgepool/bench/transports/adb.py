"""adb transport: measure a model on an Android phone with LiteRT's `benchmark_model` binary.

A phone has no Python, so the agent does not run there: the model and Google's prebuilt
`benchmark_model` for Android (a static arm64 binary; edgepool cannot download it, the path is given)
are pushed to a private folder under /data/local/tmp, run with the profile's threads, delegate
(XNNPACK / GPU / NNAPI) and `taskset` pinning, and its output is read into the agent's result fields
(`edgepool.bench.benchmark_model`). Battery and thermal state come from `dumpsys battery` and
`dumpsys thermalservice`, before and after; the device from `getprop`. The folder is removed in
`finally`, after a failure, a timeout or Ctrl-C too, so nothing is left on the phone.

Energy (a request with `energy`): the phone's fuel gauge (`/sys/class/power_supply/battery/current_now` x
`voltage_now`, units and sign normalized from `status`) is polled from the host every 0.5 s or slower
(`_gauge.GaugePoller`) through an idle window before the benchmark, the benchmark_model run (one loaded window:
its warmup and timed runs, lengthened to >= 10 s for the gauge) and an idle window after; the result's `power`
record is integrated on the host like the agent's. Battery soak (`soak`): benchmark_model runs at the requested
rate (`--run_delay`) for the requested time while `dumpsys battery` (level, `Charge counter` in uAh, voltage,
temperature, status) and the thermal status are polled; a phone that is charging is refused unless allowed.

Everything goes through the system `adb` (Debian package `adb`) as argument lists; the one command the
phone's shell runs is built from `shlex.quote`d words, never from an unquoted string.

What benchmark_model cannot give, the result says: inputs are random (no accuracy), there is one timed
phase (no windows, no raw latencies: `latency_ms` holds the binary's own mean / std / min / max and, on
newer releases, p5 / median / p95), and its memory figures are peak-RSS deltas.

No phone exists on the machine that runs edgepool's tests: `tests/devices/test_adb_transport.py` puts a
stand-in `adb` on PATH that records its arguments and replays `benchmark_model` output written from the
tool's documented format.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import DeviceError, InputError
from ...types import Transport
from .. import benchmark_model as bm
from . import AgentRun
from ._gauge import GaugePoller, power_record, sleep_idle, sysfs_battery_watts

REMOTE_BASE = "/data/local/tmp"
REMOTE_BINARY = "benchmark_model"
PROTOCOL_VERSION = 1
BINARY_NEEDED = "LiteRT's benchmark_model for Android (arm64) is needed"
BINARY_HINT = ("give its path (the device's or the profile's benchmark binary); download "
               "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/"
               "latest/android_aarch64_benchmark_model on a machine with internet and copy it here")
COMMAND_TIMEOUT_S = 60.0  # getprop, dumpsys, mkdir, rm
PUSH_TIMEOUT_S = 600.0
ELF_ABIS = {183: ("arm64-v8a",), 40: ("armeabi-v7a", "armeabi"), 62: ("x86_64",), 3: ("x86",)}
ELF_NAMES = {183: "arm64 (aarch64)", 40: "32-bit ARM", 62: "x86-64", 3: "x86"}

# dumpsys battery / thermalservice codes (android.os.BatteryManager, android.os.PowerManager, android.os.Temperature)
BATTERY_STATUS = {1: "unknown", 2: "charging", 3: "discharging", 4: "not-charging", 5: "full"}
BATTERY_HEALTH = {1: "unknown", 2: "good", 3: "overheat", 4: "dead", 5: "over-voltage", 6: "failure", 7: "cold"}
THERMAL_STATUS = {0: "none", 1: "light", 2: "moderate", 3: "severe", 4: "critical", 5: "emergency", 6: "shutdown"}
TEMPERATURE_TYPES = {-1: "unknown", 0: "cpu", 1: "gpu", 2: "battery", 3: "skin", 4: "usb-port", 5: "power-amplifier",
                     6: "bcl-voltage", 7: "bcl-current", 8: "bcl-percentage", 9: "npu", 10: "tpu", 11: "display",
                     12: "modem", 13: "soc", 14: "wifi", 15: "camera", 16: "flashlight", 17: "speaker",
                     18: "ambient", 19: "pogo"}
BATTERY_DIR = "/sys/class/power_supply/battery"
GAUGE_INTERVAL_S = 0.5  # fastest fuel-gauge polling over adb (phone gauges update about once a second)
GAUGE_MIN_WINDOW_S = 10.0  # the shortest loaded window a fuel gauge can measure
SOAK_INTERVAL_S = 5.0  # dumpsys battery during a soak


class _Meter:
    """What an energy measurement or a soak over adb keeps while benchmark_model runs."""

    def __init__(self, poller: GaugePoller | None, energy: dict[str, Any] | None = None,
                 soak: dict[str, Any] | None = None, notes: list[str] | None = None) -> None:
        self.poller = poller
        self.energy = energy or {}
        self.soak = soak
        self.notes = notes if notes is not None else []
        self.idle: dict[str, list[float]] = {}
        self.loaded_start = self.loaded_end = 0.0


_PROBE_SCRIPT = ("echo @cores; cat /sys/devices/system/cpu/possible 2>/dev/null; "
                 "echo @governor; cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null; "
                 f"echo @df; df -k {REMOTE_BASE} 2>/dev/null; "
                 "echo @current; cat /sys/class/power_supply/battery/current_now 2>/dev/null; "
                 "echo @voltage; cat /sys/class/power_supply/battery/voltage_now 2>/dev/null")


# ---------------------------------------------------------------- what the phone prints


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` output (`[ro.product.model]: [Pixel 8]` lines) -> {name: value}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^\[([^\]]+)\]: \[(.*)\]\s*$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def parse_dumpsys_battery(text: str) -> dict[str, Any]:
    """`dumpsys battery` (BatteryService.dumpInternal: `  level: 87`, `  temperature: 312` in tenths of a degree
    C, `  status: 2`, `  AC powered: false`, ...) -> level_pct, temperature_c, voltage_mv, status, charging,
    plugged, health, updates_stopped (values set by `dumpsys battery set` are not the real ones)."""
    kv: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and line.startswith("  "):
            key, _, value = line.strip().partition(":")
            kv[key.strip()] = value.strip()
    level, scale = _int(kv.get("level")), _int(kv.get("scale")) or 100
    temp, status, health = _int(kv.get("temperature")), _int(kv.get("status")), _int(kv.get("health"))
    plugged = [src for src in ("AC", "USB", "Wireless", "Dock") if kv.get(f"{src} powered") == "true"]
    return {
        "level_pct": None if level is None else round(level * 100.0 / scale, 1),
        "temperature_c": None if temp is None else temp / 10.0,
        "voltage_mv": _int(kv.get("voltage")),
        "status": BATTERY_STATUS.get(status, None if status is None else str(status)),
        "charging": status == 2 if status is not None else None,
        "plugged": plugged,
        "health": BATTERY_HEALTH.get(health, None if health is None else str(health)),
        "charge_counter_uah": _int(kv.get("Charge counter")),
        "updates_stopped": "(UPDATES STOPPED" in text,
    }


_TEMPERATURE = re.compile(r"Temperature\{mValue=([-0-9.eE]+|NaN), mType=(-?\d+), mName=([^,]*), mStatus=(-?\d+)\}")


def parse_dumpsys_thermalservice(text: str) -> dict[str, Any]:
    """`dumpsys thermalservice` (ThermalManagerService.dump: `Thermal Status: 0`, then `Cached temperatures:` and
    `Current temperatures from HAL:` with `Temperature{mValue=36.2, mType=3, mName=skin, mStatus=0}` lines) ->
    status (none | light | moderate | severe | critical | emergency | shutdown), temperatures, hottest_c."""
    status = None
    override = None
    section = None
    temps: dict[str, list[dict[str, Any]]] = {"hal": [], "cached": []}
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("Thermal Status:"):
            status = _int(s.split(":", 1)[1])
        elif s.startswith("IsStatusOverride:"):
            override = s.split(":", 1)[1].strip() == "true"
        elif s.startswith("Current temperatures from HAL"):
            section = "hal"
        elif s.startswith("Cached temperatures"):
            section = "cached"
        elif s.endswith(":") and not s.startswith("Temperature{"):
            section = None
        m = _TEMPERATURE.search(s)
        if m and section:
            try:
                value = float(m.group(1))
            except ValueError:
                continue
            kind = int(m.group(2))
            temps[section].append({"name": m.group(3), "type": TEMPERATURE_TYPES.get(kind, str(kind)),
                                   "value_c": value, "status": int(m.group(4))})
    chosen = temps["hal"] or temps["cached"]
    finite = [t["value_c"] for t in chosen if t["value_c"] == t["value_c"]]
    return {"status": THERMAL_STATUS.get(status, None if status is None else str(status)), "status_code": status,
            "status_overridden": override, "temperatures": chosen, "hottest_c": max(finite) if finite else None}


def _sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("@"):
            key = line[1:].strip()
            out[key] = []
        elif key is not None:
            out[key].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def _cpu_count(possible: str) -> int | None:
    """`0-7` or `0-3,4-7` (/sys/devices/system/cpu/possible) -> 8."""
    n = 0
    for part in possible.split(","):
        a, _, b = part.strip().partition("-")
        if not a.isdigit() or (b and not b.isdigit()):
            return None
        n += (int(b) - int(a) + 1) if b else 1
    return n or None


def _df_available(text: str) -> int | None:
    """Free bytes from `df -k PATH` (toybox: Filesystem 1K-blocks Used Available Use% Mounted on)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2 or "Available" not in lines[0]:
        return None
    tokens = " ".join(lines[1:]).split()
    if len(tokens) < 3 or not tokens[-3].isdigit():
        return None
    return int(tokens[-3]) * 1024


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of `path` (183 aarch64, 40 arm, 62 x86-64, 3 x86), None when it is not ELF."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def affinity_mask(cores: list[int]) -> str:
    """CPU cores -> toybox `taskset` hex mask: [4, 5, 6, 7] -> "f0"."""
    mask = 0
    for c in cores:
        if int(c) < 0:
            raise InputError(f"CPU core {c} is not a core number", "cores are numbered from 0")
        mask |= 1 << int(c)
    return format(mask, "x")


def shell_join(argv: list[str]) -> str:
    """One command line for the phone's shell: every word quoted (shlex.quote), nothing left to expand."""
    return " ".join(shlex.quote(str(a)) for a in argv)


# ---------------------------------------------------------------- the transport


class AdbTransport:
    """Runs `benchmark_model` on the phone `serial` (None: the one attached). See the module docstring.

    `benchmark_binary`: path of LiteRT's Android benchmark_model. `timeout_s`: limit for the benchmark itself
    (default 2 x max_seconds + 120 s). `delegates`: delegate names (xnnpack, gpu, nnapi) used when the
    request does not carry `delegate_names`. `runtime_version`: what to report as the runtime's version (the
    binary does not print it).
    """

    name = "adb"
    kind = Transport.ADB
    runs_agent = False  # benchmark_model: random inputs, no accuracy, one timed phase without raw latencies

    def __init__(self, serial: str | None = None, benchmark_binary: str | Path | None = None,
                 timeout_s: float | None = None, delegates: list[str] | None = None, runtime_version: str | None = None,
                 label: str | None = None, adb: str = "adb") -> None:
        self.serial = serial
        self.benchmark_binary = Path(benchmark_binary).expanduser() if benchmark_binary else None
        self.timeout_s = timeout_s
        self.delegates = list(delegates) if delegates is not None else None
        self.runtime_version = runtime_version
        self.label = label or ("adb://" + (serial or ""))
        self.adb = adb
        self._stop = threading.Event()
        self._running: str | None = None  # the remote binary while it runs

    def interrupt(self) -> None:
        """Stop the model being measured, from any thread (the multi-device runner's Ctrl-C): the binary on the
        phone is killed and `run` returns an AgentRun with `interrupted` set (benchmark_model reports nothing
        before its end, so nothing is kept)."""
        self._stop.set()
        remote_bin = self._running
        if remote_bin:
            self._quiet(["pkill", "-f", remote_bin])

    # ------------------------------------------------------------ adb plumbing

    def _adb_path(self) -> str:
        path = shutil.which(self.adb)
        if path is None:
            raise DeviceError(f"{self.label}: adb is not installed on this machine",
                              "apt-get install adb (Debian/Ubuntu), then connect the phone with USB debugging on")
        return path

    def _argv(self, *args: str) -> list[str]:
        head = [self._adb_path()]
        if self.serial:
            head += ["-s", self.serial]
        return [*head, *args]

    def _run(self, args: list[str], what: str, timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(self._argv(*args), capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, errors="replace")
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.label}: {what} timed out after {timeout:g} s",
                              "the phone stopped answering: check the cable, unlock it, and see `adb devices -l`") from None
        except OSError as e:
            raise DeviceError(f"{self.label}: cannot run adb: {e.strerror or e}", "apt-get install adb") from None

    def _ok(self, args: list[str], what: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
        proc = self._run(args, what, timeout)
        if proc.returncode != 0:
            raise self._adb_error(proc, what)
        return proc.stdout

    def shell(self, argv: list[str], what: str, timeout: float = COMMAND_TIMEOUT_S) -> str:
        """Run one command on the phone (words quoted for its shell); its stdout, or a DeviceError."""
        return self._ok(["shell", shell_join(argv)], what, timeout)

    def _quiet(self, argv: list[str], timeout: float = 30.0) -> None:
        with contextlib.suppress(DeviceError, subprocess.SubprocessError, OSError):
            self._run(["shell", shell_join(argv)], "cleanup", timeout)

    def _adb_error(self, proc: subprocess.CompletedProcess[str], what: str) -> DeviceError:
        text = ((proc.stderr or "") + "\n" + (proc.stdout or "")).strip()
        low = text.lower()
        first = next((line.strip() for line in text.splitlines() if line.strip()), f"exit code {proc.returncode}")
        if "no devices/emulators found" in low or "no devices found" in low:
            return DeviceError("no Android device is attached",
                               "connect the phone with USB debugging on and accept the prompt; `adb devices -l` lists it")
        if "not found" in low and "device" in low and self.serial:
            return DeviceError(f"Android device {self.serial} is not attached",
                               "`adb devices -l` lists the serials of the attached phones")
        if "unauthorized" in low:
            return DeviceError(f"{self.label}: the phone has not authorized this computer",
                               "unlock it and accept the 'Allow USB debugging' prompt")
        if "more than one device" in low:
            return DeviceError("several Android devices are attached", "name one: adb://SERIAL (from `adb devices -l`)")
        if "offline" in low:
            return DeviceError(f"{self.label}: the phone is offline", "reconnect the cable, or run `adb reconnect`")
        if "no space left" in low:
            return DeviceError(f"{self.label}: {what} failed: no space left on the phone", f"free space in {REMOTE_BASE}")
        return DeviceError(f"{self.label}: {what} failed: {first}", "see `adb devices -l` and the phone's screen")

    # ------------------------------------------------------------ facts

    def connect(self) -> None:
        """Check that the phone answers (adb get-state); a DeviceError saying why not."""
        state = self._ok(["get-state"], "adb get-state").strip()
        if state and state != "device":
            raise DeviceError(f"{self.label}: the phone is in state {state!r}, not ready",
                              "unlock it, accept USB debugging, and wait until `adb devices` says 'device'")

    def properties(self) -> dict[str, str]:
        return parse_getprop(self.shell(["getprop"], "getprop"))

    def battery(self) -> dict[str, Any] | None:
        try:
            return parse_dumpsys_battery(self.shell(["dumpsys", "battery"], "dumpsys battery"))
        except DeviceError:
            return None

    def thermal(self) -> dict[str, Any] | None:
        try:
            return parse_dumpsys_thermalservice(self.shell(["dumpsys", "thermalservice"], "dumpsys thermalservice"))
        except DeviceError:
            return None

    def _environment(self, props: dict[str, str]) -> dict[str, Any]:
        release, sdk = props.get("ro.build.version.release"), props.get("ro.build.version.sdk")
        soc = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware")
        return {
            "transport": self.name, "device": self.label,
            "serial": props.get("ro.serialno") or self.serial,
            "device_model": props.get("ro.product.model"), "manufacturer": props.get("ro.product.manufacturer"),
            "android_version": release, "sdk": _int(sdk),
            "soc": soc, "soc_manufacturer": props.get("ro.soc.manufacturer"),
            "os": f"Android {release}" + (f" (SDK {sdk})" if sdk else "") if release else None,
            "machine": props.get("ro.product.cpu.abi"), "cpu_model": soc,
            "build": props.get("ro.build.fingerprint"),
        }

    def probe(self) -> dict[str, Any]:
        """What `edgepool devices check` shows (devices.FACT_KEYS): the phone, its battery, thermal state, CPU, disk."""
        self.connect()
        props = self.properties()
        env = self._environment(props)
        sec = _sections(self.shell(["sh", "-c", _PROBE_SCRIPT], "probe"))
        battery, thermal = self.battery(), self.thermal()
        current, voltage = _int(sec.get("current")), _int(sec.get("voltage"))
        sensors = []
        if current is not None and voltage is not None:
            sensors.append({"name": "battery", "source": "/sys/class/power_supply/battery/current_now, voltage_now",
                            "quantity": "current+voltage"})
        binary = self.benchmark_binary if self.benchmark_binary and self.benchmark_binary.is_file() else None
        temps = {t["name"]: t["value_c"] for t in (thermal or {}).get("temperatures", [])}
        return {
            "device": self.label, "transport": self.name, "os": env["os"], "machine": env["machine"],
            "cpu_model": env["cpu_model"], "cpu_count": _cpu_count(sec.get("cores", "")),
            "governor": sec.get("governor") or None, "temperatures_c": temps or None,
            "free_disk_bytes": _df_available(sec.get("df", "")),
            "python": None, "numpy": None, "runtimes": {}, "edgetpu_delegate": None,
            "benchmark_binary": str(binary) if binary else None, "power_sensors": sensors,
            "android": {k: env[k] for k in ("serial", "device_model", "manufacturer", "android_version", "sdk", "soc",
                                            "soc_manufacturer", "build")},
            "battery": battery, "thermal": thermal,
        }

    # ------------------------------------------------------------ the run

    def check_ready(self) -> None:
        """What can be checked without the phone, before any work: benchmark_model was given and is an executable."""
        self._binary()

    def _binary(self) -> Path:
        if self.benchmark_binary is None:
            raise DeviceError(f"{self.label}: {BINARY_NEEDED}", BINARY_HINT)
        path = self.benchmark_binary
        if not path.is_file():
            raise InputError(f"benchmark_model binary {path} does not exist", BINARY_HINT)
        if elf_machine(path) is None:
            raise InputError(f"{path} is not an Android executable (no ELF header)",
                             "give the path of android_aarch64_benchmark_model, not a script or an archive")
        return path

    def _check_abi(self, binary: Path, props: dict[str, str]) -> None:
        machine = elf_machine(binary)
        abis = [a.strip() for a in (props.get("ro.product.cpu.abilist") or props.get("ro.product.cpu.abi") or "").split(",")
                if a.strip()]
        if machine in ELF_ABIS and abis and not set(ELF_ABIS[machine]) & set(abis):
            raise DeviceError(f"{binary.name} is built for {ELF_NAMES[machine]}, but {self.label} runs {', '.join(abis)}",
                              "use LiteRT's android_aarch64_benchmark_model for arm64 phones")

    def _delegate_names(self, request: dict[str, Any]) -> list[str]:
        if request.get("delegate_names") is not None:
            names = list(request["delegate_names"])
        elif self.delegates is not None:
            names = list(self.delegates)
        else:
            names = [d if isinstance(d, str) else (d.get("name") or d.get("library")) for d in request.get("delegates") or []]
        try:
            bm.delegate_flags(names)
        except ValueError as e:
            raise InputError(f"delegate {e.args[0]!r} cannot be applied by benchmark_model on Android",
                             "use xnnpack, gpu or nnapi (the Edge TPU runs on Coral boards, over ssh)") from None
        return names

    def _bench_timeout(self, request: dict[str, Any]) -> float:
        if self.timeout_s:
            return float(self.timeout_s)
        return 2.0 * float(request.get("max_seconds") or 150.0) + 120.0

    def run(self, request: dict[str, Any], on_event: Callable[[dict[str, Any]], None] | None = None) -> AgentRun:
        """Measure `request["model_path"]` on the phone; an AgentRun whose `result` has the agent's result fields.

        Infrastructure failures (adb missing, no phone, push failed, timeout) raise DeviceError; a model the
        binary cannot run comes back as the run's `error` (kind "input" or "device"), like the agent's.
        """
        emit = on_event or (lambda ev: None)
        out = AgentRun()
        model = Path(request["model_path"])
        if not model.is_file():
            raise InputError(f"{model} does not exist", "benchmark a .tflite file (benchmark_model runs TFLite models)")
        binary = self._binary()
        delegates = self._delegate_names(request)
        affinity = [int(c) for c in request.get("affinity") or []]
        mask = affinity_mask(affinity) if affinity else None
        self.connect()
        props = self.properties()
        self._check_abi(binary, props)
        env = self._environment(props)
        remote = f"{REMOTE_BASE}/edgepool-{secrets.token_hex(4)}"
        remote_bin = f"{remote}/{REMOTE_BINARY}"
        windows = max(1, int(request.get("windows") or 1))
        num_runs = int(request.get("runs") or 50) * windows
        energy, soak = request.get("energy"), request.get("soak")
        min_secs = float(request.get("min_seconds", 1.0)) * windows
        max_secs = float(request.get("max_seconds") or 150.0)
        delay = float(request.get("run_delay_s") or 0.0)
        if energy:  # one loaded window, long enough for the fuel gauge
            min_secs = max(min_secs, float(energy.get("window_seconds") or 10.0), GAUGE_MIN_WINDOW_S)
            max_secs = max(max_secs, 2 * min_secs)
        if soak:  # the requested rate for the requested time (the delay ignores the invoke's own time: a floor)
            min_secs = max_secs = float(soak["seconds"])
            num_runs = max(1, int(float(soak["seconds"]) * float(soak["fps"])))
            delay = 1.0 / float(soak["fps"])
        argv = bm.command_line(
            remote_bin, f"{remote}/{model.name}", threads=request.get("threads"), delegates=delegates,
            warmup_runs=int(request.get("warmup_runs", 1)), warmup_min_seconds=float(request.get("warmup_min_seconds", 0.5)),
            runs=num_runs, min_seconds=min_secs, max_seconds=max_secs, run_delay_s=delay,
        )
        if mask:
            argv = ["taskset", mask, *argv]
        running = False
        meter = None
        self._stop.clear()
        try:
            env["battery_before"], env["thermal_before"] = self.battery(), self.thermal()
            self.shell(["mkdir", "-p", remote], "mkdir on the phone")
            emit({"event": "progress", "phase": "push", "done": 0, "total": 2})
            self._ok(["push", str(model), remote + "/"], f"adb push {model.name}", PUSH_TIMEOUT_S)
            self._ok(["push", str(binary), remote_bin], "adb push benchmark_model", PUSH_TIMEOUT_S)
            self.shell(["chmod", "755", remote_bin], "chmod benchmark_model")
            emit({"event": "progress", "phase": "push", "done": 2, "total": 2})
            emit({"event": "hello", "runtime": bm.TOOL, "runtime_version": self.runtime_version, "transport": self.name,
                  "device": self.label, "protocol": PROTOCOL_VERSION})
            if self._stop.is_set():
                raise KeyboardInterrupt
            meter = self._start_meter(energy, soak, emit)
            running, self._running = True, remote_bin
            if meter is not None:
                meter.loaded_start = meter.poller.clock()
            proc = self._run(["shell", shell_join(argv)], "benchmark_model", self._bench_timeout(request))
            running, self._running = False, None
            if meter is not None:
                meter.loaded_end = meter.poller.clock()
                self._finish_meter(meter, emit)
            if self._stop.is_set():
                raise KeyboardInterrupt
            text = (proc.stdout or "") + "\n" + (proc.stderr or "")
            out.returncode = proc.returncode
            out.stderr_tail = "\n".join(text.strip().splitlines()[-20:])
            parsed = bm.parse_benchmark_model(text)
            env["battery_after"], env["thermal_after"] = self.battery(), self.thermal()
            if parsed["failed"] or proc.returncode != 0:
                out.error = self._failure(parsed, proc)
                out.events.append(out.error)
                emit(out.error)
            else:
                out.result = self._result(parsed, request, model, delegates, affinity, num_runs, env)
                if meter is not None:
                    self._meter_result(meter, parsed, out.result)
                out.events.append(out.result)
                emit(out.result)
        except KeyboardInterrupt:
            out.interrupted = True
        finally:
            self._running = None
            if meter is not None and meter.poller is not None:
                meter.poller.stop()
            if running:  # a timeout or Ctrl-C: the binary may still run on the phone
                self._quiet(["pkill", "-f", remote_bin])
            self._quiet(["rm", "-rf", remote])
        return out

    # ------------------------------------------------------------ energy and battery soak

    def battery_watts(self, notes: list[str]) -> float | None:
        """The phone's discharge power now, from its fuel gauge (None when the files cannot be read)."""
        text = self.shell(["cat", f"{BATTERY_DIR}/current_now", f"{BATTERY_DIR}/voltage_now", f"{BATTERY_DIR}/status"],
                          "read the fuel gauge", timeout=10.0)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if len(lines) < 2:
            return None
        return sysfs_battery_watts(lines[0], lines[1], lines[2] if len(lines) > 2 else None, notes)

    def soak_reading(self) -> dict[str, Any] | None:
        """One battery soak reading from `dumpsys battery` (the gauge's level, charge counter, voltage, temperature)."""
        b = self.battery()
        if not b:
            return None
        th = self.thermal() or {}
        return {"capacity_pct": b["level_pct"], "charge_counter_uah": b["charge_counter_uah"],
                "voltage_uv": b["voltage_mv"] * 1000 if b.get("voltage_mv") else None, "status": b["status"],
                "temp_c": b["temperature_c"], "charging": b["charging"], "plugged": b["plugged"],
                "thermal_status": th.get("status"), "hottest_c": th.get("hottest_c")}

    def _start_meter(self, energy: dict[str, Any] | None, soak: dict[str, Any] | None, emit: Any) -> Any:
        if soak:
            first = self.soak_reading()
            if first is None:
                raise DeviceError(f"{self.label}: `dumpsys battery` gave no reading", "a battery soak needs the phone's "
                                  "battery service; check `adb shell dumpsys battery`")
            if (first["charging"] or first["plugged"]) and not soak.get("allow_charging"):
                raise InputError(f"{self.label}: the phone is charging ({', '.join(first['plugged']) or 'charging'}): "
                                 "a battery soak measures the battery draining",
                                 "unplug the charger and use adb over Wi-Fi (adb tcpip), or allow charging")
            poller = GaugePoller(self.soak_reading, float(soak.get("gauge_interval_s") or SOAK_INTERVAL_S)).start()
            return _Meter(poller, soak=soak)
        if not energy:
            return None
        notes: list[str] = []
        if self.battery_watts(notes) is None:
            return _Meter(None, notes=[f"the fuel gauge ({BATTERY_DIR}) cannot be read on this phone"])
        interval = max(1.0 / float(energy.get("rate_hz") or 50.0), GAUGE_INTERVAL_S)
        meter = _Meter(GaugePoller(lambda: self.battery_watts(notes), interval).start(), energy=energy, notes=notes)
        meter.idle["before"] = self._idle(meter, "before", emit)
        return meter

    def _idle(self, meter: Any, when: str, emit: Any) -> list[float]:
        settle, seconds = float(meter.energy.get("settle_seconds") or 1.0), float(meter.energy.get("idle_seconds") or 5.0)
        seconds = max(seconds, GAUGE_MIN_WINDOW_S / 2)  # a few gauge updates at least
        emit({"event": "progress", "phase": f"idle {when}", "done": 0, "total": 1})
        if sleep_idle(settle, self._stop):
            raise KeyboardInterrupt
        t0 = meter.poller.clock()
        if sleep_idle(seconds, self._stop):
            raise KeyboardInterrupt
        emit({"event": "progress", "phase": f"idle {when}", "done": 1, "total": 1})
        return [t0, meter.poller.clock()]

    def _finish_meter(self, meter: Any, emit: Any) -> None:
        if meter.poller is None:
            return
        if meter.energy:
            meter.idle["after"] = self._idle(meter, "after", emit)
        meter.poller.stop()

    def _meter_result(self, meter: Any, parsed: dict[str, Any], result: dict[str, Any]) -> None:
        runs = int(parsed.get("runs") or 0) + int((parsed.get("warmup") or {}).get("runs") or 0)
        if meter.soak:
            p = meter.poller
            elapsed = meter.loaded_end - meter.loaded_start
            result["soak"] = {"seconds_requested": float(meter.soak["seconds"]), "seconds": elapsed,
                              "fps_requested": float(meter.soak["fps"]), "inferences": runs,
                              "fps": runs / elapsed if elapsed > 0 else None,
                              "gauge": {"source": "adb:battery (dumpsys battery)", "notes": []},
                              "readings": [dict(r, t=t - p.started) for t, r in p.samples],
                              "thermal": [{"t": t - p.started,
                                           "temperatures_c": {"hottest": r["hottest_c"]} if r.get("hottest_c") else None,
                                           "throttled": [f"thermal status {r['thermal_status']}"]
                                           if r.get("thermal_status") not in (None, "none") else []}
                                          for t, r in p.samples],
                              "allow_charging": bool(meter.soak.get("allow_charging"))}
            return
        if meter.poller is None:
            result["power"] = {"sources": [], "windows": [], "idle": {}, "notes": meter.notes}
            return
        notes = [*meter.notes, "one loaded window: benchmark_model's warmup and timed runs (its model loading "
                               "included); energy per inference is over both"]
        result["power"] = power_record(meter.poller, "adb:battery", "whole phone, from its fuel gauge", meter.idle,
                                       (meter.loaded_start, meter.loaded_end), runs, notes, GAUGE_MIN_WINDOW_S)

    def _failure(self, parsed: dict[str, Any], proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
        errors = [e for e in parsed["errors"] if "Benchmarking failed" not in e] or parsed["errors"]
        text = " ".join(errors).lower()
        first = errors[0] if errors else f"benchmark_model exited with code {proc.returncode}"
        if "didn't find op" in text or "custom op" in text or "unresolved" in text:
            kind, hint = "device", "this benchmark_model is older than the model's ops: use a newer binary, or export for an older runtime"
        elif "failed to load model" in text or "model loader" in text or "flatbuffer" in text:
            kind, hint = "input", "the model file is not a valid TFLite model; re-export it"
        elif "inaccessible or not found" in text or ("not found" in text and proc.returncode == 127):
            kind, hint = "device", "the phone could not execute benchmark_model: is it the Android arm64 build?"
        else:
            kind, hint = "device", "benchmark_model could not run this model on the phone; its output is in the stderr tail"
        return {"event": "error", "kind": kind, "message": f"benchmark_model failed on {self.label}: {first}", "hint": hint}

    def _result(self, parsed: dict[str, Any], request: dict[str, Any], model: Path, delegates: list[str],
                affinity: list[int], num_runs: int, env: dict[str, Any]) -> dict[str, Any]:
        env["affinity"] = affinity or None
        return bm.result_record(parsed, transport=self.name, model_size_bytes=model.stat().st_size,
                                threads=request.get("threads"), delegates=delegates, requested_runs=num_runs,
                                environment=env, runtime_version=self.runtime_version)

"""edgepool benchmark agent: one self-contained file, copied to a device and run there.

    python3 agent.py < request.json          (or: python3 agent.py request.json)
    python3 agent.py --probe                 (one `probe` event: what this device offers; needs no numpy)

Needs only the standard library, numpy (1.x or 2.x) and one TFLite runtime: `ai_edge_litert`,
`tflite_runtime` or `tensorflow.lite` (tried in that order unless the request names one). Python >= 3.9.
It imports nothing from edgepool. The smallest request is `{"model_path": "model.tflite"}`: every
other field has a default (DEFAULTS), so the agent can be run by hand on any device.

It reads one JSON request and writes JSON lines to stdout: progress events, one event per finished
timed window (with its raw latencies, so a host keeps them even if this process dies), then a final
`result` event, or an `error` event (kind "input" -> exit 2, kind "device" -> exit 3). Anything the
runtime itself prints goes to stderr, so stdout stays parseable.

The model is read as bytes and loaded with `model_content=` (which verifies the flatbuffer).

Protocol (see README, "Benchmark protocol"): init, first inference, warmup (>= warmup_runs and
>= warmup_min_seconds), then `windows` timed windows, each >= `runs` invokes and >= `min_seconds`;
only `invoke()` is inside the timed region. `max_seconds` caps the timed phase; SIGINT/SIGTERM stop
it: finished windows are always reported.

The result's `environment` is the context of the numbers: CPU, per-core governor and frequencies,
temperatures, the thermal state (and `vcgencmd` throttling bits on a Pi) before and after the timed
phase with a `throttled` verdict and its reasons, the delegates' node coverage (`delegate_nodes`,
`delegate_fallback` when a requested delegate took no node), and `emulated` ("qemu-user" when this ARM
process runs under qemu-user on another CPU: correct outputs, not the device's latency). Request
`stable: true` (--stable) pins the last core unless an affinity is given and waits for a steady
temperature first; `save_outputs: N` returns the raw outputs of the first N inputs (`outputs`).

Energy (`energy: {rate_hz, idle_seconds, window_seconds, ...}`, see ENERGY_DEFAULTS): `sensors.py`, copied beside
this file, finds the device's power sources; a sampler thread per source reads it (50 Hz; 10 Hz for a reader that
spawns a process) from an idle window before the load, through the timed windows (each >= the sensor's shortest
window), to an idle window after; the result's `power` holds the samples, the window bounds and each sampler's own
CPU time, and the host integrates them. Battery soak (`soak: {seconds, fps, allow_charging}`): inference at a fixed
rate for a fixed time, the fuel gauge and the thermal state read over time (`soak` in the result); it refuses a
device that is charging unless allowed.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import re
import signal
import sys
import time
from array import array

PROTOCOL_VERSION = 1

# Defaults (the host normally sends every field). Sources: TFLite benchmark_model (warmup_runs=1,
# warmup_min_secs=0.5, num_runs=50, min_secs=1, max_secs=150, run_delay=-1) and MLPerf loadgen
# (SingleStream reports the 90th percentile; several windows show repeatability).
DEFAULTS = {
    "runtime": "auto",
    "threads": None,
    "affinity": None,
    "delegates": [],
    "warmup_runs": 1,
    "warmup_min_seconds": 0.5,
    "runs": 50,
    "min_seconds": 1.0,
    "windows": 5,
    "max_seconds": 150.0,
    "run_delay_s": 0.0,
    "stable": False,
    "inputs": {"mode": "random", "seed": 0},
}

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")


class AgentError(Exception):
    """A failure to report as one clear line: kind "input" (exit 2) or "device" (exit 3)."""

    def __init__(self, kind: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.hint = hint


class Stop(Exception):
    """Raised by the agent's SIGINT/SIGTERM handler (a KeyboardInterrupt is treated the same)."""


# ----------------------------------------------------------------------------------------- output
_SIG = {"held": 0, "pending": False, "stopped": False}


def _on_stop_signal(signum, frame):
    """SIGINT/SIGTERM: stop the timed phase, but never inside a held section (see _SignalsHeld).

    A Python-level flag, not a signal mask: a process-directed signal may land on any runtime thread,
    yet Python runs this handler in the main thread, so holding it here always works."""
    if _SIG["stopped"]:
        return  # already stopping: let the agent send its result
    if _SIG["held"]:
        _SIG["pending"] = True
        return
    _SIG["stopped"] = True
    raise Stop()


class _SignalsHeld:
    """While held, a stop signal waits: a window is recorded and its line written whole, or neither."""

    def __enter__(self):
        _SIG["held"] += 1
        return self

    def __exit__(self, exc_type, exc, tb):
        _SIG["held"] -= 1
        if not _SIG["held"] and _SIG["pending"] and exc_type is None:
            _SIG["pending"] = False
            _SIG["stopped"] = True
            raise Stop()
        return False


class Emitter:
    """Writes one JSON object per line to the private copy of the original stdout."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def __call__(self, event: str, **fields) -> None:
        fields["event"] = event
        line = json.dumps(fields, default=_json_default, allow_nan=False) + "\n"
        with _SignalsHeld():
            self.stream.write(line)
            self.stream.flush()

    def window(self, win: dict) -> None:
        """A finished window; its latencies go as base64 of int64 nanoseconds (`byteorder` given),
        streamed in chunks so encoding them does not raise this process's peak memory."""
        head = {k: v for k, v in win.items() if k != "latencies_ns"}
        head.update(event="window", byteorder=sys.byteorder, encoding="base64-int64-ns")
        text = json.dumps(head, allow_nan=False)
        with _SignalsHeld():
            self._write_window(text, win)

    def _write_window(self, text: str, win: dict) -> None:
        self.stream.write(text[:-1] + ', "latencies": "')
        lat = win["latencies_ns"]
        mv = memoryview(lat).cast("B")
        step = 3 * 16384
        for i in range(0, len(mv), step):
            self.stream.write(base64.b64encode(mv[i : i + step]).decode("ascii"))
        self.stream.write('"}\n')
        self.stream.flush()


def _json_default(o):
    if isinstance(o, array):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _private_stdout():
    """Keep stdout for JSON: move fd 1 to a private fd and point fd 1 at stderr (runtime logs)."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", buffering=1)


# ---------------------------------------------------------------------------------------- runtime
def load_runtime(name: str = "auto"):
    """Return (runtime_name, version, Interpreter class, load_delegate function)."""
    names = RUNTIMES if name in (None, "", "auto") else (name,)
    errors = []
    for rt in names:
        try:
            if rt == "ai_edge_litert":
                from ai_edge_litert import interpreter as mod  # type: ignore

                return rt, _dist_version("ai-edge-litert", mod), mod.Interpreter, mod.load_delegate
            if rt == "tflite_runtime":
                from tflite_runtime import interpreter as mod  # type: ignore

                return rt, _dist_version("tflite-runtime", mod), mod.Interpreter, mod.load_delegate
            if rt == "tensorflow":
                import tensorflow as tf  # type: ignore  # noqa: TID251 (device side, last resort)

                return rt, tf.__version__, tf.lite.Interpreter, tf.lite.experimental.load_delegate
            raise ImportError(f"unknown runtime {rt!r}")
        except ImportError as e:
            errors.append(f"{rt}: {e}")
    raise AgentError(
        "device",
        f"no TFLite runtime found for {sys.executable} (" + "; ".join(errors) + ")",
        RUNTIME_HINT,
    )


RUNTIME_HINT = "pip install tflite-runtime (Python <= 3.11) or ai-edge-litert"


def _numpy():
    """numpy, or one device error saying what to install (numpy alone, or numpy and a runtime)."""
    try:
        import numpy as np
    except ImportError as e:
        import importlib.util

        if not any(importlib.util.find_spec(rt) for rt in RUNTIMES):
            raise AgentError("device", f"no TFLite runtime and no numpy for {sys.executable}",
                             "pip install tflite-runtime 'numpy<2' (Python <= 3.11) or ai-edge-litert") from None
        raise AgentError("device", f"numpy is missing for {sys.executable}: {e}",
                         "pip install numpy ('numpy<2' with tflite-runtime 2.14)") from None
    return np


def _dist_version(dist: str, mod) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        pkg = sys.modules.get(mod.__name__.split(".")[0])
        return str(getattr(pkg, "__version__", "unknown"))


# ------------------------------------------------------------------------------------ environment
def _read(path: str):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    dt = _read("/proc/device-tree/model")
    if dt:
        return dt.strip("\x00")
    return platform.processor() or platform.machine()


def _temperatures() -> dict:
    out = {}
    base = "/sys/class/thermal"
    try:
        zones = sorted(z for z in os.listdir(base) if z.startswith("thermal_zone"))
    except OSError:
        return out
    for z in zones:
        t = _read(f"{base}/{z}/temp")
        kind = _read(f"{base}/{z}/type") or z
        if t and t.lstrip("-").isdigit():
            out[kind] = int(t) / 1000.0
    return out


def _mhz(text):
    return int(text) / 1000.0 if text and text.isdigit() else None


def _cpu_ids() -> list:
    try:
        return sorted(int(n[3:]) for n in os.listdir("/sys/devices/system/cpu") if n[:3] == "cpu" and n[3:].isdigit())
    except OSError:
        return []


def cpufreq() -> list:
    """Per core: governor, current / maximum frequency and the policy's current cap (MHz); [] without cpufreq."""
    out = []
    for c in _cpu_ids():
        d = f"/sys/devices/system/cpu/cpu{c}/cpufreq"
        cur = _read(d + "/scaling_cur_freq") or _read(d + "/cpuinfo_cur_freq")
        gov = _read(d + "/scaling_governor")
        if cur is None and gov is None:
            continue
        out.append({"cpu": c, "governor": gov, "cur_mhz": _mhz(cur), "max_mhz": _mhz(_read(d + "/cpuinfo_max_freq")),
                    "limit_mhz": _mhz(_read(d + "/scaling_max_freq"))})
    return out


def _trip_points(zone: str) -> dict:
    """A thermal zone's lowest trip temperature of each kind (passive: where throttling starts), in deg C."""
    out = {}
    for i in range(32):
        kind = _read(f"{zone}/trip_point_{i}_type")
        if kind is None:
            break
        t = _read(f"{zone}/trip_point_{i}_temp")
        if t and t.lstrip("-").isdigit() and int(t) > 0:
            out[kind] = min(out.get(kind, 1e9), int(t) / 1000.0)
    return out


def _cooling_active() -> dict:
    """CPU cooling devices (frequency limits applied by the thermal framework) that are limiting now: type -> state/max."""
    out = {}
    base = "/sys/class/thermal"
    try:
        devs = sorted(d for d in os.listdir(base) if d.startswith("cooling_device"))
    except OSError:
        return out
    for d in devs:
        kind = _read(f"{base}/{d}/type") or d
        cur = _read(f"{base}/{d}/cur_state")
        if ("cpu" in kind.lower() or "processor" in kind.lower()) and cur and cur.isdigit() and int(cur) > 0:
            out[kind] = f"{cur}/{_read(f'{base}/{d}/max_state')}"
    return out


# `vcgencmd get_throttled` bits (Raspberry Pi documentation, "vcgencmd"): 0-3 now, 16-19 since boot.
THROTTLED_BITS = {0: "under_voltage", 1: "arm_freq_capped", 2: "throttled", 3: "soft_temp_limit",
                  16: "under_voltage_occurred", 17: "arm_freq_capped_occurred", 18: "throttled_occurred",
                  19: "soft_temp_limit_occurred"}


def parse_throttled(text):
    """`throttled=0x50005` -> {"raw": "0x50005", "flags": [names of the set bits]}; None if unparsable."""
    value = (text or "").strip().split("=")[-1]
    try:
        bits = int(value, 16)
    except ValueError:
        return None
    return {"raw": hex(bits), "flags": [name for bit, name in sorted(THROTTLED_BITS.items()) if bits >> bit & 1]}


def parse_measure_temp(text):
    """`temp=54.2'C` -> 54.2; None if unparsable."""
    value = (text or "").strip().split("=")[-1].rstrip("'C").rstrip()
    try:
        return float(value)
    except ValueError:
        return None


def vcgencmd(queries=("get_throttled", "measure_temp")):
    """Raspberry Pi firmware state (throttling bits, SoC temperature); None where there is no vcgencmd."""
    import shutil
    import subprocess

    exe = shutil.which("vcgencmd") or next((p for p in ("/usr/bin/vcgencmd", "/opt/vc/bin/vcgencmd")
                                             if os.access(p, os.X_OK)), None)
    if not exe:
        return None
    out = {"get_throttled": None, "measure_temp": None}
    for arg in queries:
        try:
            proc = subprocess.run([exe, arg], capture_output=True, timeout=5)
            out[arg] = proc.stdout.decode(errors="replace").strip() if proc.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            out[arg] = None
    return {"throttled": parse_throttled(out["get_throttled"]) if "get_throttled" in queries else None,
            "temp_c": parse_measure_temp(out["measure_temp"])}


def thermal_state() -> dict:
    """Temperatures, per-core frequencies, active CPU cooling and the Pi firmware's throttling bits, now."""
    zones = {}
    base = "/sys/class/thermal"
    try:
        names = sorted(z for z in os.listdir(base) if z.startswith("thermal_zone"))
    except OSError:
        names = []
    for z in names:
        trips = _trip_points(f"{base}/{z}")
        limit = trips.get("passive") or trips.get("hot")
        if limit is not None:
            zones[_read(f"{base}/{z}/type") or z] = limit
    return {"temperatures_c": _temperatures() or None, "trip_points_c": zones or None, "cpufreq": cpufreq() or None,
            "cooling_active": _cooling_active() or None, "vcgencmd": vcgencmd()}


def throttle_reasons(before: dict, after: dict) -> list:
    """Why the numbers measured between two thermal states may be throttled (empty: no sign of it)."""
    reasons = []
    flags_before = set((((before.get("vcgencmd") or {}).get("throttled")) or {}).get("flags") or [])
    for when, state in (("before", before), ("after", after)):
        flags = set((((state.get("vcgencmd") or {}).get("throttled")) or {}).get("flags") or [])
        for name in ("under_voltage", "arm_freq_capped", "throttled", "soft_temp_limit"):
            if name in flags:
                reasons.append(f"vcgencmd: {name.replace('_', ' ')} {when} the timed phase")
        if when == "after":
            for name in sorted(flags - flags_before):
                if name.endswith("_occurred"):
                    reasons.append(f"vcgencmd: {name[:-9].replace('_', ' ')} during the timed phase")
        for dev, st in sorted((state.get("cooling_active") or {}).items()):
            reasons.append(f"cooling device {dev} limiting the CPU ({st}) {when} the timed phase")
        temps, trips = state.get("temperatures_c") or {}, state.get("trip_points_c") or {}
        for zone, limit in sorted(trips.items()):
            if zone in temps and temps[zone] >= limit:
                reasons.append(f"{zone} at {temps[zone]:.1f} C reached its {limit:.1f} C trip point {when} the timed phase")
    return reasons


_ARM = ("aarch64", "arm64", "armv8l", "armv7l", "armv6l")


def emulation():
    """"qemu-user" when this process is an ARM binary run by qemu-user on another CPU (e.g. an x86 host
    via binfmt_misc), else None. qemu-user passes the host's /proc/cpuinfo through: an ARM kernel's lists
    `CPU implementer`/`Features`, an x86 one `vendor_id`/`flags`. Failing that, qemu hides itself from
    /proc/self/exe but not from /proc/<pid>/task/<tid>/exe, which names the qemu binary."""
    if platform.machine().lower() not in _ARM:
        return None
    text = _read("/proc/cpuinfo") or ""
    keys = {line.split(":", 1)[0].strip().lower() for line in text.splitlines() if ":" in line}
    if "vendor_id" in keys and "cpu implementer" not in keys:
        return "qemu-user"
    pid = os.getpid()
    try:
        exe = os.readlink(f"/proc/{pid}/task/{pid}/exe")
    except OSError:
        return None
    return "qemu-user" if "qemu-" in os.path.basename(exe) else None


def environment(runtime_name: str, runtime_version: str, cores) -> dict:
    """What the numbers were measured on; fields that cannot be read are null."""
    import numpy as np

    cpu0 = f"/sys/devices/system/cpu/cpu{cores[0] if cores else 0}/cpufreq"
    freq = _read(cpu0 + "/scaling_cur_freq")
    fmax = _read(cpu0 + "/cpuinfo_max_freq")
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "governor": _read(cpu0 + "/scaling_governor"),
        "cpu_freq_mhz": int(freq) / 1000.0 if freq and freq.isdigit() else None,
        "cpu_max_freq_mhz": int(fmax) / 1000.0 if fmax and fmax.isdigit() else None,
        "temperatures_c": _temperatures() or None,
        "cpufreq": cpufreq() or None,
        "load_average": load,
        "emulated": emulation(),
        "runtime": runtime_name,
        "runtime_version": runtime_version,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def memory() -> dict:
    """Current and peak resident set size in bytes (VmRSS / VmHWM; getrusage where /proc is missing)."""
    status = _read("/proc/self/status")
    out = {"rss_bytes": None, "peak_rss_bytes": None}
    if status:
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                out["rss_bytes"] = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                out["peak_rss_bytes"] = int(line.split()[1]) * 1024
    if out["peak_rss_bytes"] is None:
        try:
            import resource

            r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            out["peak_rss_bytes"] = r if sys.platform == "darwin" else r * 1024
        except Exception:
            pass
    return out


# ----------------------------------------------------------------------------------------- inputs
def _quantize(x, detail, np):
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zp = detail.get("quantization", (0.0, 0))
    if not scale:
        raise AgentError("input", f"integer input {detail.get('name')!r} has no quantization scale",
                         "real samples need a quantized (scale, zero point) input")
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float64) / scale + zp)
    return np.clip(q, info.min, info.max).astype(dtype)


def random_input(detail, normalization, rng, np):
    """Random input within the real range: raw pixels 0..255 normalized (then quantized) when the
    normalization is known; else uniform [-1, 1] for float and the full integer range for ints."""
    shape = [int(s) for s in detail["shape"]]
    dtype = np.dtype(detail["dtype"])
    if normalization:
        raw = rng.integers(0, 256, size=shape).astype(np.float32)
        x = raw * np.float32(normalization["scale"]) + np.float32(normalization["offset"])
        return _quantize(x, detail, np)
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(int(info.min), -(2**31)), min(int(info.max), 2**31 - 1)
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dtype)
    return np.zeros(shape, dtype)


def load_samples(path, detail, normalization, max_samples, np):
    """Real samples (x uint8 NHWC raw, y int64) -> list of model-ready inputs and labels."""
    try:
        with np.load(path) as z:
            x, y = z["x"], z["y"]
    except (OSError, KeyError, ValueError) as e:
        raise AgentError("input", f"cannot read test samples {path}: {e}",
                         "the run's data/test.npz must hold x and y") from None
    if max_samples:
        x, y = x[: int(max_samples)], y[: int(max_samples)]
    want = [int(s) for s in detail["shape"]]
    if x.ndim == len(want) - 1 and want[-1] == 1:
        x = x[..., None]
    if list(x.shape[1:]) != want[1:] or want[0] != 1:
        raise AgentError("input", f"test samples have shape {list(x.shape[1:])} but the model input is {want}",
                         "benchmark with random inputs, or export the model from this run")
    if not normalization:
        raise AgentError("input", "real samples need the input normalization (model.json)",
                         "benchmark with random inputs")
    xf = x.astype(np.float32) * np.float32(normalization["scale"]) + np.float32(normalization["offset"])
    q = _quantize(xf, detail, np)
    return [q[i : i + 1] for i in range(len(q))], [int(v) for v in y]


# ------------------------------------------------------------------------------------------ timing
def run_phase(invoke, clock, min_runs, min_ns, deadline_ns=None, set_input=None, delay_s=0.0, sleep=time.sleep,
              store=True):
    """Run invoke() until >= min_runs calls AND >= min_ns elapsed. Only invoke() is timed.

    Returns (latencies_ns, runs, elapsed_ns, finished). `finished` is False when `deadline_ns`
    (absolute, on `clock`) was reached first. `set_input(i)` (untimed) feeds input i before each
    call. With store=False (warmup) only the first latency is kept, so memory stays flat.
    KeyboardInterrupt/Stop propagate; the caller keeps the windows already finished.
    """
    lat = array("q")  # 8 bytes per run, no int objects kept: the agent's own memory stays flat
    append = lat.append
    start = clock()
    end = start + min_ns
    n = 0
    while True:
        if set_input is not None:
            set_input(n)
        t0 = clock()
        invoke()
        t1 = clock()
        if store or not n:
            append(t1 - t0)
        n += 1
        if n >= min_runs and t1 >= end:
            return lat, n, t1 - start, True
        if deadline_ns is not None and t1 >= deadline_ns:
            return lat, n, t1 - start, False
        if delay_s > 0:
            sleep(delay_s)


def run_windows(invoke, clock, windows, min_runs, min_seconds, max_seconds=None, set_input=None,
                delay_s=0.0, sleep=time.sleep, on_window=None):
    """The timed phase: `windows` windows of run_phase; returns (windows, stopped).

    Each window is a dict {index, runs, seconds, latencies_ns, partial}; with `on_window` the window
    is handed over and only its summary kept (latencies_ns=None). `stopped` is None when all
    windows finished, "max_seconds" when the cap was reached (a partial window is kept only if no
    window finished, so a very slow model still gets a number), or "interrupted" (SIGINT/SIGTERM:
    the unfinished window is dropped).
    """
    done = []
    start = clock()
    deadline = None if not max_seconds or max_seconds <= 0 else start + int(max_seconds * 1e9)
    counter = [0]

    def feed(i):
        set_input(counter[0])
        counter[0] += 1

    try:
        for w in range(windows):
            lat, _, elapsed, finished = run_phase(
                invoke, clock, min_runs, int(min_seconds * 1e9), deadline,
                feed if set_input is not None else None, delay_s, sleep,
            )
            if not finished:
                if not done:
                    _finish(done, w, lat, elapsed, True, on_window)
                return done, "max_seconds"
            _finish(done, w, lat, elapsed, False, on_window)
    except (KeyboardInterrupt, Stop):
        return done, "interrupted"
    return done, None


def _finish(done, index, lat, elapsed, partial, on_window):
    win = {"index": index, "runs": len(lat), "seconds": elapsed / 1e9, "latencies_ns": lat, "partial": partial}
    with _SignalsHeld():  # recorded here and sent to the host together, or neither
        if on_window:
            on_window(win)
            win = dict(win, latencies_ns=None)
        done.append(win)


# ------------------------------------------------------------------------------------------ energy
def load_sensors():
    """sensors.py, the sibling file copied beside this one (imported by path: the agent imports nothing from edgepool)."""
    mod = sys.modules.get("edgepool_agent_sensors")
    if mod is not None:
        return mod
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sensors.py")
    if not os.path.isfile(path):
        raise AgentError("device", f"sensors.py is missing beside {os.path.abspath(__file__)}",
                         "copy sensors.py with agent.py (edgepool stages both)")
    spec = importlib.util.spec_from_file_location("edgepool_agent_sensors", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["edgepool_agent_sensors"] = mod
    spec.loader.exec_module(mod)
    return mod


# Energy defaults (MLPerf Tiny's energy mode: loaded windows of >= 10 s; an idle baseline before and after).
ENERGY_DEFAULTS = {"rate_hz": 50.0, "process_rate_hz": 10.0, "idle_seconds": 5.0, "settle_seconds": 1.0,
                   "window_seconds": 10.0, "sysfs_root": "/sys", "sources": "all"}


class PowerRecorder:
    """Samples every power source found while the model is measured: an idle window before (after a settle
    pause), the loaded windows (their bounds marked as they end), an idle window after. The samples go to the host,
    which integrates them (edgepool.bench.energy)."""

    def __init__(self, cfg, emit, clock=time.monotonic, sleep=time.sleep) -> None:
        self.cfg = dict(ENERGY_DEFAULTS)
        self.cfg.update({k: v for k, v in (cfg if isinstance(cfg, dict) else {}).items() if v is not None})
        self.emit = emit
        self.clock = clock
        self.sleep = sleep
        self.samplers = []
        self.notes = []
        self.windows = []
        self.idle = {}
        self.sensors = load_sensors()
        sources = self.sensors.discover(self.cfg["sysfs_root"])
        if self.cfg.get("sources") == "best" and sources:
            sources = sources[:1]
        for src in sources:
            rate = self.cfg["process_rate_hz"] if src.kind == "pmic" else self.cfg["rate_hz"]
            self.samplers.append(self.sensors.Sampler(src, rate, clock))
        want = float(self.cfg["window_seconds"])
        need = max([s.source.min_window_s for s in self.samplers] or [0.0])
        if need > want:
            self.notes.append(f"loaded windows lengthened to {need:g} s: the sensor updates too slowly for {want:g} s")
        self.window_s = max(want, need)

    def start(self):
        """Start sampling and measure the idle window before the load. Returns "interrupted" or None."""
        for s in self.samplers:
            s.start()
        return self._idle("before")

    def _idle(self, when):
        settle, seconds = float(self.cfg["settle_seconds"]), float(self.cfg["idle_seconds"])
        if not self.samplers or seconds <= 0:
            return None
        try:
            self.emit("progress", phase=f"idle {when}", done=0, total=1)
            self.sleep(settle)
            t0 = self.clock()
            self.sleep(seconds)
            self.idle[when] = [t0, self.clock()]
            self.emit("progress", phase=f"idle {when}", done=1, total=1)
        except (KeyboardInterrupt, Stop):
            return "interrupted"
        return None

    def mark(self, win) -> None:
        end = self.clock()
        self.windows.append({"index": win["index"], "runs": win["runs"], "start": end - win["seconds"], "end": end,
                             "partial": win["partial"]})

    def finish(self, idle_after=True) -> None:
        if idle_after:
            self._idle("after")
        for s in self.samplers:
            s.stop()

    def record(self) -> dict:
        return {"sources": [s.record() for s in self.samplers], "windows": self.windows, "idle": self.idle,
                "clock": "monotonic", "notes": self.notes, "config": self.cfg}


# Battery soak defaults: a fuel-gauge reading every GAUGE_INTERVAL_S, the thermal state every THERMAL_INTERVAL_S.
GAUGE_INTERVAL_S, THERMAL_INTERVAL_S = 2.0, 10.0


def _soak_run(r, rt, model, inputs, accuracy, set_input, emit, settle):
    """Battery soak: inference at a fixed rate for a fixed time, the fuel gauge and the thermal state recorded
    over time. The latencies of the whole soak come back as one window."""
    cfg = dict(r["soak"])
    sensors = load_sensors()
    root = cfg.get("sysfs_root") or "/sys"
    gauges = sensors.batteries(root)
    if not gauges:
        raise AgentError("device", f"no battery fuel gauge on this device ({root}/class/power_supply has no battery)",
                         "a battery soak needs a battery-powered device; measure energy per inference instead")
    if sensors.charging(root) and not cfg.get("allow_charging"):
        raise AgentError("input", "the device is charging: a battery soak measures the battery draining",
                         "unplug the charger, or allow charging (the drain measured then is not the device's)")
    gauge = gauges[0]
    seconds, fps = float(cfg["seconds"]), float(cfg["fps"])
    interval = float(cfg.get("gauge_interval_s") or GAUGE_INTERVAL_S)
    period = 1.0 / fps
    lat = array("q")
    readings, thermal = [], []
    clock, invoke = time.monotonic, model.invoke
    start = clock()
    end = start + seconds
    next_run, next_gauge, next_thermal, next_note = start, start, start, start
    n = late = 0
    stopped = None
    thermal_before = thermal_state()
    try:
        while True:
            now = clock()
            if now >= next_gauge:
                readings.append(dict(gauge.gauge(), t=now - start, power_w=gauge.read()))
                next_gauge += interval
            if now >= next_thermal:
                th = thermal_state()
                thermal.append({"t": now - start, "temperatures_c": th["temperatures_c"],
                                "throttled": ((th.get("vcgencmd") or {}).get("throttled") or {}).get("flags")})
                next_thermal += THERMAL_INTERVAL_S
            if now >= next_note:
                emit("progress", phase="soak", done=int(now - start), total=int(seconds))
                next_note += 1.0
            if now >= end:
                break
            if set_input is not None:
                set_input(n)
            t0 = time.perf_counter_ns()
            invoke()
            lat.append(time.perf_counter_ns() - t0)
            n += 1
            next_run += period
            wait = next_run - clock()
            if wait > 0:
                time.sleep(min(wait, max(0.0, end - clock())))
            else:
                late += 1
                if wait < -period:
                    next_run = clock()  # too slow for the rate: run back to back, do not bunch up
    except (KeyboardInterrupt, Stop):
        stopped = "interrupted"
    elapsed = clock() - start
    readings.append(dict(gauge.gauge(), t=elapsed, power_w=gauge.read()))
    if n:
        emit.window({"index": 0, "runs": n, "seconds": elapsed, "latencies_ns": lat, "partial": stopped is not None})
    r["windows"] = 1
    windows = [{"partial": stopped is not None}] if n else []
    th = {"before": thermal_before, "after": thermal_state(), "settle": settle}
    result = _result(r, rt, model, inputs, accuracy, {"runs": 0, "seconds": 0.0}, windows, stopped, th)
    result["soak"] = {"seconds_requested": seconds, "seconds": elapsed, "fps_requested": fps,
                      "inferences": n, "fps": n / elapsed if elapsed > 0 else None, "late_runs": late,
                      "gauge": {"source": gauge.name, "path": gauge.dir, "notes": list(gauge.notes)},
                      "readings": readings, "thermal": thermal, "allow_charging": bool(cfg.get("allow_charging"))}
    return result


# ------------------------------------------------------------------------------------------ agent
def run(req: dict, emit) -> dict:
    """One request, phase by phase (each a function below); returns the fields of the `result` event."""
    np = _numpy()
    r = _request(req)
    _pin_cores(r.get("affinity") or (_last_core() if r.get("stable") else None))
    rt = _start_runtime(r, emit, np)
    model = _load_model(r, rt)
    inputs = _prepare_inputs(model, r.get("inputs") or {}, rt.rng, np)
    _first_inference(model, inputs, emit)
    accuracy = _accuracy_pass(model, inputs, emit, np)
    set_input = _input_feeder(model, inputs)
    settle = settle_temperature(emit) if r.get("stable") else None
    if r.get("soak"):
        return _soak_run(r, rt, model, inputs, accuracy, set_input, emit, settle)
    power = PowerRecorder(r["energy"], emit) if r.get("energy") else None
    stopped = None
    if power is not None:
        r["min_seconds"] = max(float(r["min_seconds"]), power.window_s)
        stopped = power.start()
    warm = {"runs": 0, "seconds": 0.0}
    if stopped is None:
        warm, stopped = _warmup(model, r, set_input, emit)
    windows = []
    thermal = {"before": thermal_state()}
    if stopped is None:
        windows, stopped = _timed_windows(model, r, set_input, emit, power)
    thermal["after"] = thermal_state()
    thermal["settle"] = settle
    if power is not None:
        power.finish(idle_after=stopped != "interrupted")
    result = _result(r, rt, model, inputs, accuracy, warm, windows, stopped, thermal)
    if power is not None:
        result["power"] = power.record()
    return result


def _last_core():
    """--stable without an affinity: the last core this process may use (on big.LITTLE usually a big one)."""
    return [max(os.sched_getaffinity(0))] if hasattr(os, "sched_getaffinity") else None


# Steady temperature for --stable: less than STEADY_DELTA_C change over STEADY_WINDOW_S, waiting at most STEADY_MAX_S.
STEADY_DELTA_C, STEADY_WINDOW_S, STEADY_MAX_S = 0.5, 5.0, 60.0


def _hottest():
    temps = list(_temperatures().values())
    vc = vcgencmd(("measure_temp",))
    if vc and vc.get("temp_c") is not None:
        temps.append(vc["temp_c"])
    return max(temps) if temps else None


def settle_temperature(emit, delta_c=STEADY_DELTA_C, window_s=STEADY_WINDOW_S, max_s=STEADY_MAX_S,
                       clock=time.monotonic, sleep=time.sleep, read=_hottest) -> dict:
    """Wait until the hottest sensor changes by less than `delta_c` over `window_s` seconds (at most
    `max_s`). Returns {"settled": bool | None (no sensor), "waited_s", "temp_c"}."""
    t0 = clock()
    first = read()
    if first is None:
        return {"settled": None, "waited_s": 0.0, "temp_c": None, "reason": "no temperature sensor"}
    history = [(t0, first)]
    while True:
        now = clock()
        recent = [t for ts, t in history if ts >= now - window_s]
        if now - t0 >= window_s and max(recent) - min(recent) < delta_c:
            return {"settled": True, "waited_s": round(now - t0, 1), "temp_c": history[-1][1]}
        if now - t0 >= max_s:
            return {"settled": False, "waited_s": round(now - t0, 1), "temp_c": history[-1][1]}
        emit("progress", phase="settle", done=int(now - t0), total=int(max_s))
        sleep(1.0)
        t = read()
        if t is not None:
            history.append((clock(), t))


class _Runtime:
    """The TFLite runtime in use, the input RNG, and the memory baseline taken before any model."""

    def __init__(self, name, version, interpreter, load_delegate, rng, mem0) -> None:
        self.name = name
        self.version = version
        self.Interpreter = interpreter
        self.load_delegate = load_delegate
        self.rng = rng
        self.mem0 = mem0


class _Model:
    """A loaded, allocated interpreter and what the later phases share: its tensors, timings, output checks."""

    def __init__(self, interp, content: bytes, init_ns: int, mem_init: dict) -> None:
        self.interp = interp
        self.content = content  # kept for the whole run, as the interpreter may read from it
        self.init_ns = init_ns
        self.first_ns = None
        self.mem_init = mem_init
        self.detail = interp.get_input_details()[0]
        self.out_detail = interp.get_output_details()[0]
        self.in_index, self.out_index = self.detail["index"], self.out_detail["index"]
        self.set_tensor, self.get_tensor, self.invoke = interp.set_tensor, interp.get_tensor, interp.invoke
        self.nonfinite = 0
        self.checked = 0
        self.delegate_nodes = None
        self.keep = 0  # outputs to keep (request "save_outputs"): the first N samples' raw outputs
        self.saved = []

    def keep_output(self, out) -> None:
        if len(self.saved) < self.keep:
            self.saved.append(out.copy())

    def check_output(self):
        """The output tensor, counted as checked, and as non-finite when a float output holds NaN/Inf."""
        import numpy as np

        out = self.get_tensor(self.out_index)
        self.checked += 1
        if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
            self.nonfinite += 1
        return out

    def safe_invoke(self) -> None:
        """invoke() outside the timed region: a runtime failure becomes one device error."""
        try:
            self.invoke()
        except (ValueError, RuntimeError) as e:
            raise AgentError("device", f"invoke() failed: {str(e).splitlines()[0] if str(e) else e}",
                             "the runtime could not execute this model") from None


class _Inputs:
    """What the model is fed: real test samples (with labels) or one random input."""

    def __init__(self, mode: str, first, samples=None, labels=None) -> None:
        self.mode = mode
        self.first = first
        self.samples = samples
        self.labels = labels


def _request(req: dict) -> dict:
    """The request over the defaults; a request for another protocol version is refused."""
    r = dict(DEFAULTS)
    r.update({k: v for k, v in req.items() if v is not None})
    if int(req.get("protocol", PROTOCOL_VERSION)) != PROTOCOL_VERSION:
        raise AgentError("input", f"request protocol {req.get('protocol')} not supported (agent speaks {PROTOCOL_VERSION})",
                         "use the agent shipped with this edgepool version")
    return r


def _pin_cores(cores) -> None:
    if not cores:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise AgentError("device", "CPU affinity is not supported on this OS", "run without pinning to CPU cores")
    try:
        os.sched_setaffinity(0, [int(c) for c in cores])
    except (OSError, ValueError) as e:
        raise AgentError("device", f"cannot pin to cores {cores}: {e}",
                         f"this device has cores {sorted(os.sched_getaffinity(0))}") from None


def _start_runtime(r: dict, emit, np) -> _Runtime:
    """Load the runtime and numpy.random, take the memory baseline (no model yet), say hello."""
    rt_name, rt_version, interpreter, load_delegate = load_runtime(r["runtime"])
    in_cfg = r.get("inputs") or {}
    rng = np.random.default_rng(int(in_cfg.get("seed") or 0))  # numpy.random costs ~6 MB: load it first
    mem0 = memory()  # baseline: Python, numpy and the runtime loaded, no model yet
    emit("hello", pid=os.getpid(), runtime=rt_name, runtime_version=rt_version, protocol=PROTOCOL_VERSION)
    return _Runtime(rt_name, rt_version, interpreter, load_delegate, rng, mem0)


def _read_model(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as e:
        raise AgentError("input", f"cannot read model {path}: {e.strerror or e}", "check the path") from None
    if not content:
        raise AgentError("input", f"{path} is empty, not a TFLite model", "re-export it")
    return content


def _load_delegates(specs, load_delegate) -> list:
    delegates = []
    for d in specs:
        lib = d["library"] if isinstance(d, dict) else str(d)
        opts = d.get("options") if isinstance(d, dict) else None
        try:
            delegates.append(load_delegate(lib, opts or {}))
        except (OSError, ValueError, RuntimeError) as e:
            raise AgentError("device", f"cannot load delegate {lib}: {str(e).splitlines()[0] if str(e) else e}",
                             "install the delegate library on the device (Edge TPU: libedgetpu1-std)") from None
    return delegates


def _load_model(r: dict, rt: _Runtime) -> _Model:
    """Read the model, load its delegates, then the timed init: interpreter, input resize, allocation."""
    content = _read_model(r["model_path"])
    delegates = _load_delegates(r.get("delegates") or [], rt.load_delegate)
    kwargs = {"model_content": content}
    if r.get("threads"):
        kwargs["num_threads"] = int(r["threads"])
    if delegates:
        kwargs["experimental_delegates"] = delegates
    with _Stderr() as log:  # where a runtime logs how many nodes each delegate took
        t0 = time.perf_counter_ns()
        try:
            interp = rt.Interpreter(**kwargs)
        except (ValueError, RuntimeError) as e:
            raise _classify_load_error(str(e)) from None
        # The requested delegates were applied by the constructor; the runtime's default CPU delegate
        # (XNNPACK) comes at allocation. The node count in between (one cheap call) tells their nodes apart.
        requested_end = _num_nodes(interp) if delegates else None
        _allocate(interp, (r.get("inputs") or {}).get("input_shape"))
        init_ns = time.perf_counter_ns() - t0
    model = _Model(interp, content, init_ns, memory())
    model.delegate_nodes = delegate_nodes(log.text, bool(delegates), _ops(interp) if delegates else None,
                                          requested_end)
    model.keep = int(r.get("save_outputs") or 0)
    return model


class _Stderr:
    """Copies what is written to fd 2 inside the block (C++ runtime logs included) into `.text`;
    the text is passed on to the real stderr afterwards, so nothing is lost."""

    def __enter__(self):
        import tempfile

        self.text = ""
        sys.stderr.flush()
        self._tmp = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._tmp.fileno(), 2)
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._tmp.seek(0)
        data = self._tmp.read()
        self._tmp.close()
        self.text = data.decode("utf-8", "replace")
        if data:
            try:
                os.write(2, data)
            except OSError:
                pass
        return False


# TFLite (Subgraph::ReplaceNodeSubsetsWithDelegateKernels): "Replacing 5 out of 7 node(s) with delegate
# (TfLiteXNNPackDelegate) node, yielding 2 partitions for subgraph 0 (...)." / "... for the whole graph."
_REPLACING = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\)")


def delegate_nodes(log: str, requested: bool, ops=None, requested_end=None):
    """How many of the graph's nodes the requested delegates took: {"replaced", "total", "partitions",
    "delegates", "source"}; None when no delegate was asked for.

    Counted from the graph (source "graph"): the DELEGATE nodes the requested delegates added (index <
    `requested_end`, i.e. before the default CPU delegate's) and, behind each, the original nodes between
    its inputs and its outputs. The runtime's own line ("Replacing X out of Y node(s) with delegate (NAME)
    node, ...", read from its stderr) names the delegates; it is the count only when the graph cannot be
    read (source "runtime log"). The Linux builds of tflite-runtime 2.14 and LiteRT 2.3 log that line at
    VERBOSE, below their default level, so it is often absent."""
    if not requested:
        return None
    lines = [(int(a), int(b), name) for a, b, name in _REPLACING.findall(log or "") if name != _DEFAULT_DELEGATE]
    names = sorted({name for _, _, name in lines})
    if ops is not None:
        return dict(graph_coverage(ops, requested_end), delegates=names, source="graph")
    if lines:
        return {"replaced": sum(a for a, _, _ in lines), "total": sum(b for _, b, _ in lines),
                "partitions": len(lines), "delegates": names, "source": "runtime log"}
    return {"replaced": None, "total": None, "partitions": None, "delegates": [], "source": None}


_DEFAULT_DELEGATE = "TfLiteXNNPackDelegate"  # the runtime's own CPU delegate, applied unless disabled


def graph_coverage(ops, requested_end=None) -> dict:
    """{"replaced", "total", "partitions"} from `_get_ops_details()`-style nodes: the original nodes are the
    non-DELEGATE ones (replaced nodes stay listed; delegate nodes are appended after them)."""
    original = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer = {int(t): int(o["index"]) for o in original for t in o["outputs"] if int(t) >= 0}
    inputs_of = {int(o["index"]): [int(t) for t in o["inputs"] if int(t) >= 0] for o in original}
    parts = [o for o in ops if o["op_name"] == "DELEGATE" and (requested_end is None or int(o["index"]) < requested_end)]
    replaced = set()
    for part in parts:
        boundary = {int(t) for t in part["inputs"]}
        stack = [int(t) for t in part["outputs"]]
        while stack:
            t = stack.pop()
            node = producer.get(t)
            if t in boundary or node is None or node in replaced:
                continue
            replaced.add(node)
            stack.extend(inputs_of[node])
    return {"replaced": len(replaced), "total": len(original), "partitions": len(parts)}


def _num_nodes(interp):
    try:
        return int(interp._interpreter.NumNodes())
    except Exception:
        return None


def _ops(interp):
    try:
        return interp._get_ops_details()
    except Exception:
        return None


def _allocate(interp, shape) -> None:
    """Check for one input, resize it to `shape` when asked, allocate the tensors."""
    inputs = interp.get_input_details()
    if len(inputs) != 1:
        raise AgentError("input", f"the model has {len(inputs)} inputs; edgepool benchmarks single-input classifiers",
                         "use benchmark_model for multi-input graphs")
    detail = inputs[0]
    if shape:
        try:
            interp.resize_tensor_input(detail["index"], [int(s) for s in shape], strict=False)
        except (ValueError, RuntimeError) as e:
            raise AgentError("input", f"the model cannot take input shape {list(shape)}: {str(e).splitlines()[0]}",
                             f"its input shape is {[int(s) for s in detail['shape']]}") from None
    try:
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        err = _classify_load_error(str(e))
        if shape and err.kind == "input":
            err = AgentError("input", f"the model cannot take input shape {list(shape)}: {str(e).splitlines()[0]}",
                             f"its input shape is {[int(s) for s in detail['shape']]}")
        raise err from None


def _prepare_inputs(model: _Model, in_cfg: dict, rng, np) -> _Inputs:
    norm = in_cfg.get("normalization")
    mode = in_cfg.get("mode", "random")
    if mode == "samples":
        samples, labels = load_samples(in_cfg["samples_path"], model.detail, norm, in_cfg.get("max_samples"), np)
        if not samples:
            raise AgentError("input", "the test split is empty", "benchmark with random inputs")
        return _Inputs(mode, samples[0], samples, labels)
    return _Inputs(mode, random_input(model.detail, norm, rng, np))


def _first_inference(model: _Model, inputs: _Inputs, emit) -> None:
    model.set_tensor(model.in_index, inputs.first)
    t0 = time.perf_counter_ns()
    model.safe_invoke()
    model.first_ns = time.perf_counter_ns() - t0
    out = model.check_output()
    if inputs.samples is None:
        model.keep_output(out)  # random input: the one output there is
    emit("init", init_ms=model.init_ns / 1e6, first_inference_ms=model.first_ns / 1e6, input=_detail(model.detail),
         output=_detail(model.out_detail))


def _accuracy_pass(model: _Model, inputs: _Inputs, emit, np):
    """Accuracy on the device: every sample once, untimed. None with random inputs."""
    if inputs.samples is None:
        return None
    correct = 0
    n = len(inputs.samples)
    step = max(1, n // 20)
    for i, x in enumerate(inputs.samples):
        model.set_tensor(model.in_index, x)
        model.safe_invoke()
        out = model.check_output()
        model.keep_output(out)
        if int(np.argmax(out.reshape(-1))) == inputs.labels[i]:
            correct += 1
        if (i + 1) % step == 0 or i + 1 == n:
            emit("progress", phase="accuracy", done=i + 1, total=n)
    return {"correct": correct, "samples": n, "accuracy": correct / n}


def _input_feeder(model: _Model, inputs: _Inputs):
    """set_input(i) cycling through the samples (untimed, before each run), or None: the random input stays set."""
    if inputs.samples is None:
        model.set_tensor(model.in_index, inputs.first)
        return None
    samples, ns = inputs.samples, len(inputs.samples)
    set_tensor, in_index = model.set_tensor, model.in_index

    def set_input(i):
        set_tensor(in_index, samples[i % ns])

    return set_input


def _warmup(model: _Model, r: dict, set_input, emit):
    """Returns (warmup summary, stopped): stopped is "interrupted" when a stop signal came during warmup."""
    stopped = None
    warm = {"runs": 0, "seconds": 0.0}
    try:
        emit("progress", phase="warmup", done=0, total=1)
        wl, wn, we, _ = run_phase(model.invoke, time.perf_counter_ns, int(r["warmup_runs"]),
                                  int(float(r["warmup_min_seconds"]) * 1e9), None, set_input, store=False)
        warm = {"runs": wn, "seconds": we / 1e9, "first_ms": wl[0] / 1e6 if wl else None}
        del wl
        emit("progress", phase="warmup", done=1, total=1)
    except (KeyboardInterrupt, Stop):
        stopped = "interrupted"
    model.check_output()
    return warm, stopped


def _timed_windows(model: _Model, r: dict, set_input, emit, power=None):
    """The timed phase; each finished window is sent as it ends (and its bounds noted for the power trace).
    Returns (windows, stopped)."""
    total = int(r["windows"])

    def on_window(win):
        if power is not None:
            power.mark(win)
        emit.window(win)
        emit("progress", phase="window", done=win["index"] + 1, total=total)

    windows, stopped = run_windows(
        model.invoke, time.perf_counter_ns, total, int(r["runs"]), float(r["min_seconds"]), r.get("max_seconds"),
        set_input, float(r.get("run_delay_s") or 0.0), time.sleep, on_window,
    )
    model.check_output()
    return windows, stopped


def _result(r: dict, rt: _Runtime, model: _Model, inputs: _Inputs, accuracy, warm, windows, stopped,
            thermal=None) -> dict:
    """The `result` event: what ran, the timings, memory and the environment it was measured on (with the
    thermal state before and after the timed phase, whether it throttled, and the delegates' node coverage)."""
    mem0, mem_init, mem_end = rt.mem0, model.mem_init, memory()
    size = len(model.content)
    env = environment(rt.name, rt.version, r.get("affinity"))
    nodes = model.delegate_nodes
    env["delegate_nodes"] = nodes
    env["delegate_fallback"] = bool(nodes) and nodes["replaced"] == 0  # asked for, took no node: all on the CPU
    if thermal:
        reasons = throttle_reasons(thermal["before"], thermal["after"])
        env.update(thermal=thermal, throttled=bool(reasons), throttle_reasons=reasons or None)
    out = _outputs(model)
    return {
        "protocol": PROTOCOL_VERSION,
        "runtime": rt.name,
        "runtime_version": rt.version,
        "model_size_bytes": size,
        "threads": r.get("threads"),
        "delegates": [d["library"] if isinstance(d, dict) else str(d) for d in r.get("delegates") or []],
        "input_mode": inputs.mode,
        "init_ms": model.init_ns / 1e6,
        "first_inference_ms": model.first_ns / 1e6,
        "warmup": warm,
        "windows_requested": int(r["windows"]),
        "windows_finished": sum(1 for w in windows if not w["partial"]),
        "stopped": stopped,
        "accuracy": accuracy,
        "nonfinite_outputs": model.nonfinite,
        "outputs_checked": model.checked,
        "memory": {
            "baseline_rss_bytes": mem0["rss_bytes"],
            "init_rss_delta_bytes": _delta(mem_init["rss_bytes"], mem0["rss_bytes"]),
            "init_peak_rss_bytes": mem_init["peak_rss_bytes"],
            "rss_delta_bytes": _delta(mem_end["rss_bytes"], mem0["rss_bytes"]),
            "peak_rss_bytes": mem_end["peak_rss_bytes"],
            "model_size_bytes": size,
        },
        "environment": env,
        **({"outputs": out} if out else {}),
    }


def _outputs(model: _Model):
    """The kept raw outputs (request "save_outputs"), as plain numbers: exact for ints and float32."""
    if not model.saved:
        return None
    first = model.saved[0]
    return {"dtype": str(first.dtype), "shape": [int(s) for s in first.shape],
            "scale": _detail(model.out_detail)["scale"], "zero_point": _detail(model.out_detail)["zero_point"],
            "values": [o.reshape(-1).tolist() for o in model.saved]}


def _classify_load_error(msg: str) -> AgentError:
    first = (msg.strip().splitlines() or ["unknown error"])[0]
    low = msg.lower()
    if "custom op" in low or "unresolved" in low or "edgetpu" in low:
        return AgentError("device", f"the model needs an op this runtime lacks: {first}",
                          "an Edge TPU model runs only with the libedgetpu delegate, on a device with a Coral Edge TPU")
    return AgentError("input", f"not a valid TFLite model: {first}", "re-export it; the file is corrupt or not a .tflite")


def _delta(a, b):
    return None if a is None or b is None else a - b


def _detail(d) -> dict:
    q = d.get("quantization") or (0.0, 0)
    return {"name": d.get("name"), "shape": [int(s) for s in d["shape"]], "dtype": str(d["dtype"].__name__),
            "scale": float(q[0]) or None, "zero_point": int(q[1]) if q[0] else None}


# Distributions that provide each runtime's module (for its version without importing it).
_DISTS = {"ai_edge_litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
          "tflite_runtime": ("tflite-runtime", "tflite-runtime-nightly"),
          "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64", "tf-nightly")}
_EDGETPU_USB = {("1a6e", "089a"), ("18d1", "9302")}  # Coral USB Accelerator before / after its firmware loads


def probe() -> dict:
    """What this device offers for benchmarks (`python3 agent.py --probe`): machine, Python, numpy, each
    TFLite runtime (version; importable or why not; tensorflow is only looked up, as importing it takes
    long), Edge TPU library and devices, CPU, governor, temperatures, free disk where the agent runs, emulation."""
    import importlib.util
    import shutil

    info = {"machine": platform.machine(), "python": platform.python_version(), "python_path": sys.executable,
            "os": platform.platform(), "hostname": platform.node(), "cpu_model": _cpu_model(),
            "cpu_count": os.cpu_count(), "cpufreq": cpufreq() or None, "temperatures_c": _temperatures() or None,
            "vcgencmd": vcgencmd(), "emulated": emulation()}
    govs = sorted({c["governor"] for c in info["cpufreq"] or [] if c["governor"]})
    info["governor"] = ",".join(govs) or None
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:
        info["numpy"] = None
    runtimes = {}
    for rt in RUNTIMES:
        if importlib.util.find_spec(rt) is None:
            runtimes[rt] = None
            continue
        entry = {"version": _first_version(_DISTS[rt]), "importable": None, "error": None}
        if rt != "tensorflow":
            try:
                __import__(rt + ".interpreter")
                entry["importable"] = True
            except Exception as e:  # e.g. tflite-runtime 2.14 under numpy 2: an ABI error, not an ImportError
                entry["importable"], entry["error"] = False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        runtimes[rt] = entry
    info["runtimes"] = runtimes
    info["usable_runtime"] = next((rt for rt in RUNTIMES if runtimes[rt] and runtimes[rt]["importable"] is not False), None) \
        if info["numpy"] else None
    info["edgetpu"] = _edgetpu()
    try:
        info["power_sensors"] = [src.describe() for src in load_sensors().discover()]
    except Exception as e:  # sensors.py missing or an odd driver: say so rather than fail the probe
        info["power_sensors"] = []
        info["power_sensors_error"] = f"{type(e).__name__}: {e}"
    try:
        usage = shutil.disk_usage(os.getcwd())
        info["disk"] = {"path": os.getcwd(), "free_bytes": usage.free, "total_bytes": usage.total}
    except OSError:
        info["disk"] = None
    return info


def _first_version(dists) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for d in dists:
        try:
            return version(d)
        except PackageNotFoundError:
            continue
    return None


def _edgetpu() -> dict:
    import ctypes.util
    import glob

    lib = ctypes.util.find_library("edgetpu") or next(iter(sorted(glob.glob("/usr/lib/*/libedgetpu.so.1*")
                                                                  + glob.glob("/usr/lib/libedgetpu.so.1*"))), None)
    usb = False
    for d in glob.glob("/sys/bus/usb/devices/*"):
        if ((_read(d + "/idVendor") or ""), (_read(d + "/idProduct") or "")) in _EDGETPU_USB:
            usb = True
    return {"library": lib, "pcie": os.path.exists("/dev/apex_0"), "usb": usb}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    emit = Emitter(_private_stdout())
    if argv and argv[0] == "--probe":
        emit("probe", **probe())
        return 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, _on_stop_signal)
        except (ValueError, OSError):
            pass
    try:
        if argv and argv[0] != "-":
            with open(argv[0]) as f:
                req = json.load(f)
        else:
            req = json.loads(sys.stdin.read())
        result = run(req, emit)
    except AgentError as e:
        emit("error", kind=e.kind, message=e.message, hint=e.hint)
        return 2 if e.kind == "input" else 3
    except (KeyboardInterrupt, Stop):
        emit("error", kind="interrupted", message="interrupted before the timed phase", hint="")
        return 130
    except json.JSONDecodeError as e:
        emit("error", kind="input", message=f"the request is not JSON: {e}", hint="")
        return 2
    except Exception as e:  # a runtime failing in a way not foreseen: still one line for the host
        import traceback

        traceback.print_exc()  # goes to stderr
        emit("error", kind="device", message=f"agent failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
             hint="the traceback is on the agent's stderr")
        return 3
    emit("result", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

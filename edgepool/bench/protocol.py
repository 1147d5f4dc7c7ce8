"""The benchmark protocol: options, the agent's request, and the result of one model.

Defaults follow TFLite's `benchmark_model` (warmup_runs=1, warmup_min_secs=0.5, num_runs=50,
min_secs=1, max_secs=150, run_delay=-1 i.e. none) and MLPerf's SingleStream scenario (the 90th
percentile is its headline latency; each model is measured in several windows so repeatability is
visible). Only `invoke()` is inside the timed region, as in both tools.
"""

from __future__ import annotations

import base64
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import stats

PROTOCOL_VERSION = 1
INPUT_MODES = ("auto", "random", "samples")
STABLE_WINDOWS, STABLE_MIN_SECONDS = 10, 2.0  # the --stable preset's floor for windows and window length

# Named delegates a profile or the caller may give -> the shared library the agent loads.
DELEGATE_LIBRARIES = {
    "edgetpu": {"linux": "libedgetpu.so.1", "darwin": "libedgetpu.1.dylib", "win32": "edgetpu.dll"},
}
BUILTIN_DELEGATES = ("xnnpack", "cpu")  # part of every runtime's CPU path; nothing to load


@dataclass
class BenchOptions:
    """How to benchmark. None means: take it from the profile, else the default noted."""

    device: str = "local"  # the first of `devices`
    devices: list[str] | None = None  # where to run, each measured on its own: local, URIs, registered names
    profile: str | None = None  # None: each registered device's own profile, else none
    runs: int = 50  # min runs per window (benchmark_model num_runs)
    min_seconds: float = 1.0  # min seconds per window (benchmark_model min_secs)
    windows: int = 5
    warmup_runs: int = 1  # benchmark_model warmup_runs
    warmup_min_seconds: float = 0.5  # benchmark_model warmup_min_secs
    max_seconds: float = 150.0  # cap on one model's timed phase (benchmark_model max_secs)
    threads: int | None = None  # profile threads, else 1 (benchmark_litert_model's default)
    affinity: list[int] | None = None  # pin the agent to these CPU cores
    delegates: list[str] | None = None  # profile delegates, else none
    run_delay_s: float = 0.0  # sleep between runs (benchmark_model run_delay)
    cooldown_s: float = 0.0  # sleep between models
    inputs: str = "auto"  # auto: real test samples when the run has them, else random
    max_samples: int | None = None  # cap on test samples used for accuracy
    seed: int = 0
    runtime: str = "auto"  # ai_edge_litert | tflite_runtime | tensorflow | auto
    python: str | None = None  # interpreter that runs the agent (local transport); default: this one
    timeout_s: float | None = None  # kill the agent after this long (None: no limit)
    benchmark_binary: str | None = None  # LiteRT's benchmark_model for adb devices (None: the registered device's)
    # Numbers worth publishing: >= STABLE_WINDOWS windows of >= STABLE_MIN_SECONDS; the agent waits for a steady
    # temperature (< 0.5 C change over 5 s, at most 60 s) and pins itself to the last core when no affinity is given.
    stable: bool = False
    # Energy (MLPerf Tiny's energy mode): sample the device's power sources (bench/sensors.py) from an idle window
    # before the load to one after; loaded windows of >= energy_window_s; no sensor: the profile's power model,
    # labelled estimated. See edgepool.bench.energy.
    energy: bool = False
    sample_rate_hz: float = 50.0  # sysfs sensors; a sensor read by spawning a process (vcgencmd) at 1/5 of it
    energy_window_s: float = 10.0  # the shortest loaded window when measuring energy (fuel gauges: >= 10 s)
    idle_seconds: float = 5.0  # each idle baseline window (before and after the load)
    fps: float | None = None  # battery projection / soak: the frame rate the model runs at
    battery_soak_s: float | None = None  # battery soak: inference at `fps` for this long, the fuel gauge recorded
    allow_charging: bool = False  # a soak on a device that is charging (its drain is then not the device's)
    sysfs_root: str | None = None  # where the device's sysfs tree is (None: /sys)

    def __post_init__(self) -> None:
        if isinstance(self.devices, str):
            self.devices = [self.devices]
        if self.devices:
            self.devices = list(self.devices)
            self.device = self.devices[0]
        else:
            self.devices = [self.device]
        if self.stable:
            self.windows = max(self.windows, STABLE_WINDOWS)
            self.min_seconds = max(self.min_seconds, STABLE_MIN_SECONDS)

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong with it) for each invalid option, in field order; empty when all are valid."""
        checks = [
            ("runs", self.runs >= 1, "must be >= 1"),
            ("min_seconds", self.min_seconds >= 0, "must be >= 0"),
            ("windows", self.windows >= 1, "must be >= 1"),
            ("warmup_runs", self.warmup_runs >= 0, "must be >= 0"),
            ("warmup_min_seconds", self.warmup_min_seconds >= 0, "must be >= 0"),
            ("max_seconds", self.max_seconds > 0, "must be > 0"),
            ("threads", self.threads is None or self.threads >= 1, "must be >= 1"),
            ("run_delay_s", self.run_delay_s >= 0, "must be >= 0"),
            ("cooldown_s", self.cooldown_s >= 0, "must be >= 0"),
            ("inputs", self.inputs in INPUT_MODES, f"must be one of {', '.join(INPUT_MODES)}"),
            ("max_samples", self.max_samples is None or self.max_samples >= 1, "must be >= 1"),
            ("timeout_s", self.timeout_s is None or self.timeout_s > 0, "must be > 0"),
            ("sample_rate_hz", 0 < self.sample_rate_hz <= 1000, "must be > 0 and <= 1000"),
            ("energy_window_s", self.energy_window_s > 0, "must be > 0"),
            ("idle_seconds", self.idle_seconds >= 0, "must be >= 0"),
            ("fps", self.fps is None or self.fps > 0, "must be > 0"),
            ("battery_soak_s", self.battery_soak_s is None or self.battery_soak_s > 0, "must be > 0"),
            ("battery_soak_s", self.battery_soak_s is None or self.fps is not None,
             "needs a frame rate (fps) to run the model at"),
        ]
        return [(name, f"{problem} (got {getattr(self, name)!r})") for name, ok, problem in checks if not ok]

    def validate(self) -> None:
        """Raise InputError naming the first invalid option."""
        from ..errors import InputError

        for name, problem in self.problems():
            raise InputError(f"benchmark option {name} {problem}", OPTION_HELP[name])


# What each option means, as the hint when its value is invalid.
OPTION_HELP = {
    "runs": "runs is the minimum number of runs in each timed window",
    "min_seconds": "min_seconds is the minimum length of each timed window",
    "windows": "windows is the number of timed windows",
    "warmup_runs": "warmup_runs is the minimum number of untimed runs before the first window",
    "warmup_min_seconds": "warmup_min_seconds is the minimum length of the warmup",
    "max_seconds": "max_seconds caps one model's timed phase",
    "threads": "threads is the number of interpreter threads",
    "run_delay_s": "run_delay_s is the pause between runs",
    "cooldown_s": "cooldown_s is the pause between models",
    "inputs": "auto uses the run's test samples when it has them, else random inputs",
    "max_samples": "max_samples caps the test samples used for accuracy",
    "timeout_s": "timeout_s stops a model's run on the device after that many seconds",
    "sample_rate_hz": "sample_rate_hz is how often the power sensors are read",
    "energy_window_s": "energy_window_s is the shortest loaded window of an energy measurement",
    "idle_seconds": "idle_seconds is the length of each idle baseline window",
    "fps": "fps is the frame rate of the battery projection and the battery soak",
    "battery_soak_s": "battery_soak_s is how long a battery soak runs the model, at fps frames per second",
}


def delegate_library(name: str) -> str | None:
    """Map a delegate name to the library to load (None for built-in CPU paths)."""
    from ..errors import InputError

    low = name.lower()
    if low in BUILTIN_DELEGATES:
        return None
    if low in DELEGATE_LIBRARIES:
        libs = DELEGATE_LIBRARIES[low]
        return libs.get(sys.platform, libs["linux"])
    if "/" in name or name.endswith((".so", ".dylib", ".dll")) or ".so." in name:
        return name
    raise InputError(
        f"unknown delegate {name!r}",
        f"use one of {', '.join([*DELEGATE_LIBRARIES, *BUILTIN_DELEGATES])} or a library path",
    )


def build_request(
    model_path: Path,
    options: BenchOptions,
    threads: int | None,
    delegates: list[str],
    inputs: dict[str, Any],
) -> dict[str, Any]:
    """The JSON request the agent reads."""
    libs = [lib for lib in (delegate_library(d) for d in delegates) if lib]
    return {
        "protocol": PROTOCOL_VERSION,
        "model_path": str(model_path),
        "runtime": options.runtime,
        "threads": threads,
        "affinity": list(options.affinity) if options.affinity else None,
        "delegates": [{"library": lib, "options": {}} for lib in libs],
        "warmup_runs": options.warmup_runs,
        "warmup_min_seconds": options.warmup_min_seconds,
        "runs": options.runs,
        "min_seconds": options.min_seconds,
        "windows": options.windows,
        "max_seconds": options.max_seconds,
        "run_delay_s": options.run_delay_s,
        "stable": options.stable,
        "inputs": inputs,
        **energy_request(options),
    }


def energy_request(options: BenchOptions) -> dict[str, Any]:
    """The agent's `energy` / `soak` request fields (none when neither is asked for)."""
    out: dict[str, Any] = {}
    root = options.sysfs_root or "/sys"
    if options.energy and not options.battery_soak_s:
        out["energy"] = {"rate_hz": options.sample_rate_hz, "process_rate_hz": min(options.sample_rate_hz / 5.0, 10.0),
                         "idle_seconds": options.idle_seconds, "window_seconds": options.energy_window_s,
                         "settle_seconds": 1.0, "sysfs_root": root}
    if options.battery_soak_s:
        out["soak"] = {"seconds": options.battery_soak_s, "fps": options.fps, "allow_charging": options.allow_charging,
                       "sysfs_root": root}
    return out


def decode_latencies_ms(event: dict[str, Any]) -> np.ndarray:
    """The latencies of an agent `window` event, in milliseconds."""
    raw = base64.b64decode(event["latencies"])
    order = "<" if event.get("byteorder", "little") == "little" else ">"
    ns = np.frombuffer(raw, dtype=f"{order}i8")
    if ns.size != int(event["runs"]):
        raise ValueError(f"window {event.get('index')}: {ns.size} latencies for {event['runs']} runs")
    return ns.astype(np.float64) / 1e6


@dataclass
class WindowResult:
    index: int
    runs: int
    seconds: float
    partial: bool
    latency: stats.LatencyStats

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "runs": self.runs, "seconds": self.seconds, "partial": self.partial,
                "latency_ms": self.latency.to_dict()}


@dataclass
class BenchmarkResult:
    """One model measured on one device. `latency_ms` is over all finished windows' runs."""

    name: str
    model_path: str
    format: str
    recipe: str | None
    device: str
    profile: str | None
    model_size_bytes: int
    threads: int | None
    delegates: list[str]
    input_mode: str
    transport: str | None = None  # how the device was reached: local | ssh | adb | ios
    runtime: str | None = None
    runtime_version: str | None = None
    latency_ms: dict[str, float] | None = None
    runs: int = 0
    fps_median: float | None = None  # 1000 / median ms: the throughput beside the median headline
    fps_mean: float | None = None  # 1000 / mean ms: runs per second of measured invoke time
    windows: list[WindowResult] = field(default_factory=list)
    window_spread: float | None = None
    init_ms: float | None = None
    first_inference_ms: float | None = None
    warmup: dict[str, Any] | None = None
    peak_rss_bytes: int | None = None
    memory: dict[str, Any] | None = None
    accuracy: float | None = None
    accuracy_samples: int | None = None
    nonfinite_outputs: int | None = None
    environment: dict[str, Any] | None = None
    complete: bool = False
    stopped: str | None = None  # None | "max_seconds" | "interrupted" | "crashed: ..."
    run_dir: str | None = None
    error: dict[str, Any] | None = None  # {"kind", "message", "hint", "exit_code"} when it failed
    skipped: str | None = None  # why it was not measured: this device cannot run its format
    measured_as: str | None = None  # the row whose measurement this is: the same model and settings, run once
    delegate_coverage: dict[str, float] | None = None  # delegate -> share of the model's nodes it took (benchmark_model)
    # --energy: {"kind": "measured" | "estimated", "mj_per_inference", "uncertainty_mj", "avg_power_w",
    # "idle_power_w", "source", "rail", "sample_rate_hz", "sampler_overhead": {"cpu_s_per_s"}, "windows_mj",
    # "notes"} (edgepool.bench.energy); "other_sources" lists further sensors measured at the same time
    energy: dict[str, Any] | None = None
    # {"kind", "battery_wh", "inferences_per_charge", "fps", "hours_at_fps"}: a battery projection (or a soak's)
    battery: dict[str, Any] | None = None
    soak: dict[str, Any] | None = None  # a battery soak's summary (energy.soak_summary) and its gauge readings
    power: dict[str, Any] | None = field(default=None, repr=False)  # the agent's raw power record, not saved
    latencies_ms: np.ndarray | None = field(default=None, repr=False)  # raw, not saved

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"

    @property
    def median_ms(self) -> float | None:
        return None if self.latency_ms is None else self.latency_ms.get("median")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("latencies_ms")
        d.pop("power")
        d["windows"] = [w.to_dict() for w in self.windows]
        return d

    def add_window(self, event: dict[str, Any]) -> None:
        lat = decode_latencies_ms(event)
        if lat.size == 0:
            return
        self.windows.append(WindowResult(int(event["index"]), int(event["runs"]), float(event["seconds"]),
                                         bool(event.get("partial")), stats.summarize(lat)))
        self.latencies_ms = lat if self.latencies_ms is None else np.concatenate([self.latencies_ms, lat])
        self.summarize()

    def summarize(self) -> None:
        if self.latencies_ms is None or self.latencies_ms.size == 0:
            return
        s = stats.summarize(self.latencies_ms)
        self.latency_ms = s.to_dict()
        self.runs = s.runs
        self.fps_median = s.fps_median
        self.fps_mean = s.fps_mean
        self.window_spread = stats.window_spread([w.latency.median for w in self.windows])

    def apply_result(self, res: dict[str, Any]) -> None:
        """Fill in what the agent's final `result` event reports."""
        self.runtime = res.get("runtime")
        self.runtime_version = res.get("runtime_version")
        self.model_size_bytes = int(res.get("model_size_bytes") or self.model_size_bytes)
        self.init_ms = res.get("init_ms")
        self.first_inference_ms = res.get("first_inference_ms")
        self.warmup = res.get("warmup")
        self.memory = res.get("memory")
        self.peak_rss_bytes = (res.get("memory") or {}).get("peak_rss_bytes")
        acc = res.get("accuracy")
        if acc:
            self.accuracy = float(acc["accuracy"])
            self.accuracy_samples = int(acc["samples"])
        self.nonfinite_outputs = res.get("nonfinite_outputs")
        self.environment = res.get("environment")
        self.stopped = res.get("stopped")
        self.transport = res.get("transport") or self.transport
        self.input_mode = res.get("input_mode") or self.input_mode
        if res.get("delegate_coverage") is not None:
            self.delegate_coverage = res.get("delegate_coverage")
        self.power = res.get("power") or self.power
        if res.get("soak"):
            self.soak = {"record": res["soak"]}
        if not self.windows and res.get("latency_ms"):
            self._tool_latency(res)
        self.complete = self.stopped is None and len(self.windows) == int(res.get("windows_requested", 0))

    def _tool_latency(self, res: dict[str, Any]) -> None:
        """A result without windows (benchmark_model over adb): its own statistics, no raw latencies. FPS comes
        from the median when the tool printed one, and the mean-based rate from the mean."""
        lat = {k: (float(v) if isinstance(v, int | float) else None) for k, v in res["latency_ms"].items()}
        self.latency_ms = lat
        self.runs = int(res.get("runs") or 0)
        median, mean = lat.get("median"), lat.get("mean")
        self.fps_mean = 1000.0 / mean if mean else None
        self.fps_median = 1000.0 / median if median else None

    @property
    def headline_ms(self) -> float | None:
        """The row's headline latency: the median, or the mean when the tool gave no median (benchmark_model)."""
        lat = self.latency_ms or {}
        return lat.get("median") if lat.get("median") is not None else lat.get("mean")

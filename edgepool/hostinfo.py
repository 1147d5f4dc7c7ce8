"""This machine's CPU as Linux describes it (ISA flags, usable cores, clock) and the peak MAC/s they allow.

The `host-cpu` profile's peaks are derived here when it is loaded, so an estimate on this machine starts
from this machine. `read_cpu(root)` reads `<root>/proc/cpuinfo` and `<root>/sys/devices/system/cpu/`
(tests pass a fake tree); `derive_peaks(cpu)` turns what it read into a roofline; `host_peaks()` does
both for the real machine (cached). Standard library only.

The formula, per core and cycle, then times cores and clock. A roofline is an upper bound, so where a
number cannot be read the generous assumption is made, and said:

    peak_gmacs_fp32 = cores x GHz x lanes x FMA units
    peak_gmacs_int8 = cores x GHz x (lanes x FMA units x int8 factor + AMX int8 MACs)

- lanes (fp32 per vector): 16 with `avx512f`, 8 with `avx`/`avx2`, 4 with SSE (any x86-64) or NEON
  (`asimd`), else 1 (scalar).
- FMA units: 2 per core where the ISA has fused multiply-add (`fma`, `avx512f`, `asimd`): Intel cores
  with two FMA ports, AMD Zen 2/3/4 (two 256-bit pipes; Zen 4 runs a 512-bit FMA on both, so the
  AVX-512 figure is twice its real peak), Cortex-A72/A76 (two 128-bit NEON pipes). Assumed, not
  readable: some parts have one (Xeon Silver/Bronze, Cortex-A53/A55), for which the peak is too high,
  which a roofline tolerates. Without FMA, a multiply and an add unit make 1 MAC per lane per cycle.
- int8 factor: 4 with VNNI (`avx512_vnni` / `avx_vnni`: VPDPBUSD does 4 int8 MACs per 32-bit lane) or
  the ARM dot product (`asimddp`: SDOT, 4 per lane); 2 with `avx2`/`ssse3`/`asimd` (VPMADDUBSW /
  SMLAL: 2 int8 MACs per 16-bit lane, widening costs the rest); else 1.
- AMX (`amx_int8`): + 1024 int8 MACs per cycle per core (one TDPBUSD tile multiply, 16 x 16 x 64 MACs,
  per 16 cycles). LiteRT reaches it only through XNNPACK's AMX kernels; counted, since a roofline must
  not be beaten.
- cores: physical cores among the CPUs this process may run on (`os.sched_getaffinity`): SMT siblings
  share their core's units (`physical id` + `core id` in /proc/cpuinfo; without them each CPU counts).
- clock: `cpufreq/cpuinfo_max_freq` (the highest clock, boost included); else the highest of
  /proc/cpuinfo's `cpu MHz` (the clock when read: boost may go higher) and the model name's
  "@ x.xxGHz" (the base clock).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/")  # where /proc and /sys are (tests point this at a fake tree)

CPUINFO = "proc/cpuinfo"
CPUFREQ_MAX = "sys/devices/system/cpu/cpu{n}/cpufreq/cpuinfo_max_freq"  # kHz

AMX_INT8_MACS_PER_CYCLE = 1024  # TDPBUSD: 16 x 16 x 64 MACs per 16 cycles
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "asimddp")
PAIRWISE_INT8_FLAGS = ("avx2", "ssse3", "asimd")  # VPMADDUBSW / SMLAL
_GHZ_IN_NAME = re.compile(r"@\s*([0-9]+(?:\.[0-9]+)?)\s*GHz", re.IGNORECASE)


@dataclass(frozen=True)
class HostCpu:
    """What Linux says about this machine's CPU."""

    model: str | None
    arch: str  # "x86" (a "flags" line) | "arm" (a "Features" line) | "unknown"
    flags: frozenset[str]
    cpus: tuple[int, ...]  # logical CPUs this process may run on
    cores: int  # physical cores among them
    ghz: float | None
    clock_source: str | None  # where `ghz` came from


@dataclass(frozen=True)
class Peaks:
    """The roofline of `cores` cores of this CPU (module doc: the formula and its assumptions)."""

    fp32_gmacs: float
    int8_gmacs: float
    cores: int
    ghz: float
    lanes: int
    fma_units: int
    int8_factor: int
    amx_int8_macs: int  # per cycle per core, 0 without AMX
    isa: tuple[str, ...]  # the flags that decided the figures
    clock_source: str
    cores_note: str  # "2 cores", "2 cores (the profile's 2 threads; 8 usable)"

    @property
    def fp32_macs_per_cycle(self) -> int:
        return self.lanes * self.fma_units

    @property
    def int8_macs_per_cycle(self) -> int:
        return self.fp32_macs_per_cycle * self.int8_factor + self.amx_int8_macs

    @property
    def summary(self) -> str:
        """'<flags>, <n> cores, <GHz> GHz (<where the clock came from>)'."""
        return f"{' '.join(self.isa) or 'no SIMD flags'}, {self.cores_note}, {self.ghz:.2f} GHz ({self.clock_source})"

    def fp32_source(self) -> str:
        unit = f"{self.fma_units} FMA units" if self.fma_units > 1 else "1 multiply + 1 add unit"
        return (f"derived: {self.summary}: {self.cores} x {self.ghz:.2f} GHz x {self.fp32_macs_per_cycle} fp32 "
                f"MAC/cycle ({self.lanes} lanes x {unit}, assumed) = {_g(self.fp32_gmacs)}")

    def int8_source(self) -> str:
        why = {4: "4 int8 MACs per 32-bit lane (dot product)", 2: "2 int8 MACs per 16-bit lane (pairwise)",
               1: "no int8 SIMD speed-up"}[self.int8_factor]
        amx = f" + {self.amx_int8_macs} AMX" if self.amx_int8_macs else ""
        return (f"derived: {self.summary}: {self.cores} x {self.ghz:.2f} GHz x {self.int8_macs_per_cycle} int8 "
                f"MAC/cycle ({self.fp32_macs_per_cycle} fp32 x {self.int8_factor}: {why}{amx}) = {_g(self.int8_gmacs)}")


def _g(x: float) -> str:
    return f"{x:.4g}"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _blocks(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo -> one dict per blank-line separated block ("processor: 0", ...)."""
    blocks: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if cur:
                blocks.append(cur)
                cur = {}
            continue
        if ":" in line:
            k, v = line.split(":", 1)
            cur[k.strip().lower()] = v.strip()
    if cur:
        blocks.append(cur)
    return blocks


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def read_cpu(root: Path | str | None = None, affinity: set[int] | None = None) -> HostCpu | None:
    """This machine's CPU from `<root>/proc/cpuinfo` and cpufreq; None when /proc/cpuinfo cannot be read.
    `affinity`: the logical CPUs to count (default: those this process may run on)."""
    root = Path(root) if root is not None else ROOT
    text = _read(root / CPUINFO)
    if text is None:
        return None
    blocks = _blocks(text)
    procs = {int(b["processor"]): b for b in blocks if b.get("processor", "").isdigit()}
    allowed = affinity if affinity is not None else _affinity()
    cpus = tuple(sorted(n for n in procs if n in allowed)) or tuple(sorted(procs))
    info = [procs[n] for n in cpus] or blocks
    first = next((b for b in info if "flags" in b or "features" in b), info[0] if info else {})
    if "flags" in first:
        arch, flags = "x86", frozenset(first["flags"].split())
    elif "features" in first:
        arch, flags = "arm", frozenset(first["features"].split())
    else:
        arch, flags = "unknown", frozenset()
    model = next((b[k] for b in info + blocks for k in ("model name", "hardware", "cpu model") if b.get(k)), None)
    # physical cores: SMT siblings share one core's units
    ids = {(b.get("physical id"), b.get("core id")) for b in info}
    cores = len(ids) if info and all(b.get("core id") is not None for b in info) else max(len(cpus), 1)
    ghz, source = _clock(root, cpus, info, model)
    return HostCpu(model, arch, flags, cpus, cores, ghz, source)


def _clock(root: Path, cpus: tuple[int, ...], info: list[dict[str, str]], model: str | None) -> tuple[float | None, str | None]:
    khz = [_float(_read(root / CPUFREQ_MAX.format(n=n))) for n in cpus or (0,)]
    khz_ok = [k for k in khz if k and k > 0]
    if khz_ok:
        return max(khz_ok) / 1e6, "cpufreq cpuinfo_max_freq"
    candidates: list[tuple[float, str]] = []
    mhz = [m for m in (_float(b.get("cpu mhz")) for b in info) if m and m > 0]
    if mhz:
        candidates.append((max(mhz) / 1000, "/proc/cpuinfo cpu MHz, the clock when read: boost may be higher"))
    m = _GHZ_IN_NAME.search(model or "")
    if m and float(m.group(1)) > 0:
        candidates.append((float(m.group(1)), "the model name's base clock"))
    if not candidates:
        return None, None
    return max(candidates)


def _isa(cpu: HostCpu) -> tuple[int, int, int, int, tuple[str, ...]]:
    """(lanes, FMA units, int8 factor, AMX int8 MACs per cycle, the deciding flags)."""
    f = cpu.flags
    used: list[str] = []
    if "avx512f" in f:
        lanes = 16
        used.append("avx512f")
    elif "avx2" in f or "avx" in f:
        lanes = 8
        used.append("avx2" if "avx2" in f else "avx")
    elif cpu.arch == "x86" or "sse2" in f:
        lanes = 4
        used.append("sse2")
    elif "asimd" in f:
        lanes = 4
        used.append("asimd")
    else:
        lanes = 1
    fused = "fma" in f or "avx512f" in f or "asimd" in f
    if "fma" in f:
        used.append("fma")
    units = 2 if fused else 1
    vnni = [x for x in VNNI_FLAGS if x in f]
    if vnni:
        factor = 4
        used.extend(vnni)
    elif any(x in f for x in PAIRWISE_INT8_FLAGS):
        factor = 2
        if not any(x in used for x in PAIRWISE_INT8_FLAGS):
            used.append(next(x for x in PAIRWISE_INT8_FLAGS if x in f))
    else:
        factor = 1
    amx = AMX_INT8_MACS_PER_CYCLE if "amx_int8" in f else 0
    if amx:
        used.append("amx_int8")
    return lanes, units, factor, amx, tuple(used)


def why_not(cpu: HostCpu | None) -> str | None:
    """Why no peak can be derived for `cpu`, or None when one can."""
    if cpu is None:
        return f"/{CPUINFO} cannot be read"
    if cpu.ghz is None:
        return "no clock frequency is readable (no cpufreq, no cpu MHz, none in the model name)"
    return None


def derive_peaks(cpu: HostCpu | None, max_cores: int | None = None) -> Peaks | None:
    """The roofline of `cpu` (module doc), over at most `max_cores` of its cores (a profile's threads);
    None when `why_not(cpu)` says it cannot be derived."""
    if why_not(cpu) is not None:
        return None
    assert cpu is not None and cpu.ghz is not None and cpu.clock_source is not None
    lanes, units, factor, amx, isa = _isa(cpu)
    cores = cpu.cores if not max_cores else max(1, min(cpu.cores, max_cores))
    note = f"{cores} cores"
    if cores < cpu.cores:
        note += f" (the profile's {max_cores} threads; {cpu.cores} usable)"
    fp32 = cores * cpu.ghz * lanes * units
    int8 = cores * cpu.ghz * (lanes * units * factor + amx)
    return Peaks(round(fp32, 3), round(int8, 3), cores, cpu.ghz, lanes, units, factor, amx, isa,
                 cpu.clock_source, note)


@functools.lru_cache(maxsize=16)
def _host(root: Path, max_cores: int | None) -> tuple[Peaks | None, str | None]:
    cpu = read_cpu(root)
    return derive_peaks(cpu, max_cores), why_not(cpu)


def host_peaks(max_cores: int | None = None) -> tuple[Peaks | None, str | None]:
    """(this machine's roofline over at most `max_cores` cores, None) or (None, why it cannot be derived)."""
    return _host(Path(ROOT), max_cores)

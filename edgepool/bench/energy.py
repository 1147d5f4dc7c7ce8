"""Energy per inference and battery life, on the host, from what the device recorded.

Measured (`measured_energy`): the agent's `power` record holds, for each power source it found, the samples
(time.monotonic() seconds, watts or cumulative joules), the bounds of its idle windows (before and after the load)
and of each loaded window with its inferences. Following MLPerf Tiny's energy mode:

- idle baseline: the mean power of the idle window before the load (averaged with the one after when there is
  one; their difference, the drift, is part of the uncertainty);
- each loaded window: energy = integral of (power - idle) over the window (trapezoids, interpolated at the bounds;
  an energy counter is interpolated and differenced; RAPL wrap-around is undone on the device), divided by the
  window's inferences;
- the result is the median over the windows (`mj_per_inference`), with an uncertainty (`uncertainty_mj`, 3 sigma:
  about 99.7 %) combining the sample spread within a window (standard error of the mean power), the sensor's
  resolution (its quantization step, a uniform error), the idle baseline's own error and drift, and the
  interpolation at the window edges; how much the windows differ from each other (the model's rate varied) is
  `window_spread`, (max - min) / median, as for latency.

Estimated (`estimated_energy`): no sensor: (active_power_w - idle_power_w) of the profile x the measured median
latency, labelled "estimated" everywhere it appears.

Battery (`battery_projection`, `soak_summary`): inferences per full charge and hours at a frame rate from the
energy per inference and the idle power; a battery soak's fuel-gauge readings turned into drain per hour and per
1000 inferences and hours to empty, the gauge's resolution as the uncertainty.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

COVERAGE_K = 3.0  # the uncertainty is k x the combined standard uncertainty (about 99.7 %)
ESTIMATE_RELATIVE_UNCERTAINTY = 0.5  # a profile's power figures marked "estimate": +-50 % is assumed


# --------------------------------------------------------------------------------- integration
def _interp(t: np.ndarray, v: np.ndarray, x: float) -> float:
    return float(np.interp(x, t, v))


def integrate_power(t: Any, v: Any, t0: float, t1: float) -> float:
    """Joules of a power trace (seconds, watts) between t0 and t1: trapezoids over the samples inside, the
    trace interpolated at the bounds (held at its first / last value beyond them)."""
    t, v = np.asarray(t, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if t.size == 0 or t1 <= t0:
        return 0.0
    inside = (t > t0) & (t < t1)
    ts = np.concatenate([[t0], t[inside], [t1]])
    vs = np.concatenate([[_interp(t, v, t0)], v[inside], [_interp(t, v, t1)]])
    return float(np.sum((vs[1:] + vs[:-1]) * np.diff(ts)) / 2.0)


def counter_energy(t: Any, e: Any, t0: float, t1: float) -> float:
    """Joules of a cumulative energy counter (seconds, joules so far, already unwrapped) between t0 and t1."""
    t, e = np.asarray(t, dtype=np.float64), np.asarray(e, dtype=np.float64)
    if t.size == 0 or t1 <= t0:
        return 0.0
    return _interp(t, e, t1) - _interp(t, e, t0)


def unwrap_counter(raw: Any, max_range: float) -> np.ndarray:
    """Raw counter values (e.g. RAPL energy_uj) -> a monotonic series: each drop adds `max_range`."""
    raw = np.asarray(raw, dtype=np.float64)
    if raw.size == 0:
        return raw
    d = np.diff(raw)
    d[d < 0] += max_range
    return np.concatenate([[raw[0]], raw[0] + np.cumsum(d)])


def as_power(src: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """A source's samples as (times, watts): a power sensor's as they are, an energy counter's as the mean power
    over each interval between readings (placed at the interval's middle)."""
    t, v = np.asarray(src["t"], dtype=np.float64), np.asarray(src["v"], dtype=np.float64)
    if src.get("quantity") != "energy":
        return t, v
    if t.size < 2:
        return t[:0], v[:0]
    dt = np.diff(t)
    ok = dt > 0
    return ((t[1:] + t[:-1]) / 2.0)[ok], (np.diff(v)[ok] / dt[ok])


def resolution(v: Any, unit: float = 0.0, min_steps: int = 8) -> float:
    """The sensor's step: the smallest difference between two distinct readings (when they show at least
    `min_steps` steps: a few levels of a load step say nothing of it), at least `unit` (the file's)."""
    u = np.unique(np.round(np.asarray(v, dtype=np.float64), 12))
    steps = np.diff(u)
    steps = steps[steps > 0]
    step = float(steps.min()) if steps.size >= min_steps else 0.0
    return max(step, float(unit or 0.0))


def _segment(t: np.ndarray, v: np.ndarray, t0: float, t1: float) -> np.ndarray:
    return v[(t >= t0) & (t <= t1)]


def window_power(src: dict[str, Any], t0: float, t1: float, res: float) -> tuple[float, float, int]:
    """(mean watts, its standard uncertainty, samples) of one source between t0 and t1."""
    span = t1 - t0
    if span <= 0:
        return float("nan"), float("nan"), 0
    if src.get("quantity") == "energy":
        mean = counter_energy(src["t"], src["v"], t0, t1) / span
    else:
        mean = integrate_power(src["t"], src["v"], t0, t1) / span
    pt, pv = as_power(src)
    seg = _segment(pt, pv, t0, t1)
    n = int(seg.size)
    spread = float(np.std(seg, ddof=1)) / math.sqrt(n) if n > 1 else (abs(mean) if n == 0 else 0.0)
    quant = res / math.sqrt(12.0)
    # the bounds fall between samples: the trace is interpolated over the gap at each edge
    edge = 0.0
    if pt.size > 1:
        period = float(np.median(np.diff(pt)))
        for x in (t0, t1):
            i = int(np.searchsorted(pt, x))
            if 0 < i < pt.size:
                edge += abs(float(pv[i] - pv[i - 1])) * min(period, float(pt[i] - pt[i - 1])) / 2.0
    return mean, math.sqrt(spread**2 + quant**2 + (edge / span) ** 2), n


def source_energy(src: dict[str, Any], windows: list[dict[str, Any]], idle: dict[str, list[float]]) -> dict[str, Any] | None:
    """Energy per inference from one source: the idle baseline, each loaded window's mJ per inference and the
    median with its uncertainty. None when the source has no sample in a loaded window."""
    t = np.asarray(src["t"], dtype=np.float64)
    if t.size < 2:
        return None
    res = resolution(as_power(src)[1], 0.0 if src.get("quantity") == "energy" else float(src.get("unit") or 0.0))
    notes: list[str] = []
    baselines = {}
    for when, bounds in (idle or {}).items():
        if bounds and len(bounds) == 2:
            p, u, n = window_power(src, float(bounds[0]), float(bounds[1]), res)
            if n > 0 or src.get("quantity") == "energy":
                baselines[when] = (p, u)
    if baselines:
        idle_w = float(np.mean([p for p, _ in baselines.values()]))
        idle_u = math.sqrt(sum(u**2 for _, u in baselines.values())) / len(baselines)
        if len(baselines) == 2:
            drift = baselines["after"][0] - baselines["before"][0]
            if abs(drift) > max(3 * idle_u, 0.02 * abs(idle_w)):
                notes.append(f"idle power drifted by {drift:+.3f} W from before to after the load")
            idle_u = math.sqrt(idle_u**2 + (drift / 2.0) ** 2)
    else:
        idle_w, idle_u = 0.0, 0.0
        notes.append("no idle baseline: energy includes the idle power")
    per: list[float] = []
    unc: list[float] = []
    loaded_j = loaded_s = 0.0
    for w in windows:
        if w.get("partial") or not w.get("runs"):
            continue
        t0, t1 = float(w["start"]), float(w["end"])
        p, u, n = window_power(src, t0, t1, res)
        if not math.isfinite(p) or (n == 0 and src.get("quantity") != "energy"):
            continue
        span = t1 - t0
        per.append((p - idle_w) * span / int(w["runs"]) * 1e3)
        unc.append(math.sqrt(u**2 + idle_u**2) * span / int(w["runs"]) * 1e3)
        loaded_j += p * span
        loaded_s += span
    if not per:
        return None
    values = np.asarray(per)
    median = float(np.median(values))
    # the measurement's uncertainty (a window's: within-window spread, resolution, edges, idle baseline); how
    # much the windows differ (the model ran at a different rate in each) is `window_spread`, as for latency
    uncertainty = COVERAGE_K * float(np.sqrt(np.mean(np.square(unc))))
    spread = float((values.max() - values.min()) / abs(median)) if values.size > 1 and median else None
    if median <= uncertainty:
        notes.append("the model's energy is within the sensor's uncertainty of the idle power")
    rate = src.get("achieved_hz") or src.get("rate_hz")
    wall = float(src.get("wall_s") or 0.0)
    return {
        "mj_per_inference": median, "uncertainty_mj": uncertainty, "avg_power_w": loaded_j / loaded_s,
        "idle_power_w": idle_w if baselines else None, "source": src.get("name"), "rail": src.get("rail"),
        "sample_rate_hz": float(rate) if rate else None,
        "sampler_overhead": {"cpu_s_per_s": float(src.get("cpu_s") or 0.0) / wall} if wall > 0 else None,
        "windows_mj": [float(x) for x in per], "window_spread": spread,
        "resolution_w": res if src.get("quantity") != "energy" else None,
        "notes": [*notes, *(src.get("notes") or [])],
    }


def measured_energy(power: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `energy` field from the agent's `power` record: the first (best) source that gives a number, the others
    under `other_sources`. None when no source gave one."""
    if not power:
        return None
    found = []
    for src in power.get("sources") or []:
        e = source_energy(src, power.get("windows") or [], power.get("idle") or {})
        if e is not None:
            found.append(e)
    if not found:
        return None
    best = dict(found[0], kind="measured")
    best["notes"] = [*(power.get("notes") or []), *best["notes"]]
    if len(found) > 1:
        best["other_sources"] = [{k: e[k] for k in ("source", "rail", "mj_per_inference", "uncertainty_mj",
                                                    "avg_power_w", "idle_power_w")} for e in found[1:]]
    return best


# ----------------------------------------------------------------------------------- estimates
def estimated_energy(active_power_w: float, idle_power_w: float, latency_ms: float,
                     latency_spread_ms: float = 0.0, power_is_estimate: bool = True,
                     source: str = "profile power model", why: str | None = None) -> dict[str, Any]:
    """Energy per inference from a power model: (active - idle) watts x the measured latency. Labelled
    "estimated"; the uncertainty carries the latency spread and, for power figures that are themselves estimates,
    ESTIMATE_RELATIVE_UNCERTAINTY of the value."""
    delta = float(active_power_w) - float(idle_power_w)
    mj = delta * float(latency_ms)  # W x ms = mJ
    unc = abs(delta) * float(latency_spread_ms or 0.0)
    notes = ["estimated, not measured: (active_power_w - idle_power_w) of the profile x the measured median latency"]
    if power_is_estimate:
        unc = math.sqrt(unc**2 + (ESTIMATE_RELATIVE_UNCERTAINTY * mj) ** 2)
        notes.append(f"the profile's power figures are estimates: +-{ESTIMATE_RELATIVE_UNCERTAINTY:.0%} assumed")
    if why:
        notes.insert(0, why)
    return {"kind": "estimated", "mj_per_inference": mj, "uncertainty_mj": unc, "avg_power_w": float(active_power_w),
            "idle_power_w": float(idle_power_w), "source": source, "rail": "whole device (profile figures)",
            "sample_rate_hz": None, "sampler_overhead": None, "windows_mj": [], "notes": notes}


# ------------------------------------------------------------------------------------- battery
def battery_projection(energy: dict[str, Any], battery_wh: float, latency_ms: float | None,
                       fps: float | None = None) -> dict[str, Any]:
    """Inferences per full charge (back to back: each costs its energy plus the idle power over its latency) and
    hours of continuous use at `fps` (idle power plus fps x energy per inference). Labelled like `energy`."""
    joules = float(battery_wh) * 3600.0
    e_j = float(energy["mj_per_inference"]) / 1e3
    idle = float(energy.get("idle_power_w") or 0.0)
    lat_s = float(latency_ms) / 1e3 if latency_ms else 0.0
    per_inference = e_j + idle * lat_s
    out: dict[str, Any] = {"kind": energy["kind"], "battery_wh": float(battery_wh),
                           "inferences_per_charge": joules / per_inference if per_inference > 0 else None,
                           "fps": float(fps) if fps else None, "hours_at_fps": None}
    if fps:
        if lat_s and fps * lat_s > 1.0:
            out["note"] = f"{fps:g} FPS is more than this model runs ({1 / lat_s:.1f} FPS back to back)"
        else:
            watts = idle + float(fps) * e_j
            out["hours_at_fps"] = float(battery_wh) / watts if watts > 0 else None
    return out


# Which gauge reading a soak uses, finest first: (key, unit, per-hour unit label)
_GAUGE_KEYS = (("energy_uwh", 1e-6, "Wh"), ("charge_counter_uah", 1e-3, "mAh"), ("charge_uah", 1e-3, "mAh"),
               ("capacity_pct", 1.0, "%"))


def soak_summary(soak: dict[str, Any]) -> dict[str, Any] | None:
    """A battery soak's readings -> drain per hour and per 1000 inferences (in the gauge's finest quantity: Wh,
    mAh or %), hours to empty at that rate, with the gauge's resolution over the soak's length as the uncertainty;
    plus temperatures and throttling seen. None when the gauge gave nothing usable."""
    readings = soak.get("readings") or []
    chosen = None
    for key, scale, unit in _GAUGE_KEYS:
        pts = [(float(r["t"]), float(r[key])) for r in readings if r.get(key) is not None]
        if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
            chosen = key, scale, unit, pts
            break
    if chosen is None:
        return None
    key, scale, unit, pts = chosen
    t = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts]) * scale
    hours = (t[-1] - t[0]) / 3600.0
    res = resolution(y, scale if key != "capacity_pct" else 1.0, min_steps=1)  # a gauge moves in whole steps
    drained = float(y[0] - y[-1])
    per_hour = drained / hours
    # least squares slope where the gauge moved more than one step: less sensitive to where its steps fall
    if np.unique(y).size > 2:
        per_hour = float(-np.polyfit(t / 3600.0, y, 1)[0])
    unc_per_hour = res / hours  # one gauge step over the soak's length
    n = int(soak.get("inferences") or 0)
    seconds = float(soak.get("seconds") or (t[-1] - t[0]))
    rate_per_hour = n / seconds * 3600.0 if n and seconds > 0 else None  # inferences per hour
    per_k = per_hour / rate_per_hour * 1000.0 if rate_per_hour else None
    level = float(y[-1])
    notes = []
    if drained <= 0:
        notes.append("the gauge did not drop during the soak: run it longer for a drain figure")
    if res >= abs(drained) and drained > 0:
        notes.append("the drain is within one gauge step: run the soak longer")
    temps = [max(th["temperatures_c"].values()) for th in soak.get("thermal") or [] if th.get("temperatures_c")]
    throttled = sorted({f for th in soak.get("thermal") or [] for f in (th.get("throttled") or [])
                        if not f.endswith("_occurred")})
    volts = [float(r["voltage_uv"]) for r in readings if r.get("voltage_uv")]
    energy_mj = None
    if unit == "Wh" and n:
        energy_mj = drained * 3600.0 * 1e3 / n
    elif unit == "mAh" and n and volts:
        v = float(np.mean(volts))
        v = v / 1e6 if v > 1000 else v
        energy_mj = drained / 1e3 * v * 3600.0 * 1e3 / n
    return {
        "gauge": soak.get("gauge", {}).get("source"), "quantity": key, "unit": unit, "resolution": res,
        "seconds": seconds, "inferences": n,
        "fps": soak.get("fps"), "fps_requested": soak.get("fps_requested"),
        "drain_per_hour": per_hour, "drain_per_hour_uncertainty": unc_per_hour,
        "drain_per_1000_inferences": per_k,
        "drain_per_1000_inferences_uncertainty": unc_per_hour / rate_per_hour * 1000.0 if rate_per_hour else None,
        "hours_to_empty": level / per_hour if per_hour > 0 else None,
        "level_start": float(y[0]), "level_end": level, "mj_per_inference_total": energy_mj,
        "max_temperature_c": max(temps) if temps else None, "throttled": throttled or None, "notes": notes,
    }


def soak_battery(summary: dict[str, Any], battery_wh: float | None) -> dict[str, Any] | None:
    """The `battery` field from a soak: hours at the soak's rate from the measured drain."""
    if not summary or not summary.get("drain_per_hour") or summary["drain_per_hour"] <= 0:
        return None
    fps = summary.get("fps")
    if summary["unit"] == "%":
        hours = 100.0 / summary["drain_per_hour"]
    elif summary["unit"] == "Wh" and battery_wh:
        hours = float(battery_wh) / summary["drain_per_hour"]
    else:
        hours = summary.get("hours_to_empty")
    if hours is None:
        return None
    return {"kind": "measured", "battery_wh": float(battery_wh) if battery_wh else None,
            "inferences_per_charge": hours * 3600.0 * float(fps) if fps else None, "fps": fps, "hours_at_fps": hours}

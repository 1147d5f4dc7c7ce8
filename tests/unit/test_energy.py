"""Host-side energy arithmetic (edgepool/bench/energy.py) on synthetic traces of known energy: integration,
energy counters with wrap-around, idle baseline subtraction, the median over windows and its uncertainty, the
estimated path and its label, battery projection, battery soak summary; and how the table labels them."""

from __future__ import annotations

import numpy as np
import pytest

from edgepool.bench import energy
from edgepool.bench.protocol import BenchmarkResult, BenchOptions, build_request


def test_integrate_constant_step_and_bounds_between_samples():
    t = np.arange(0, 10.001, 0.02)
    assert energy.integrate_power(t, np.full(t.size, 2.0), 0.0, 10.0) == pytest.approx(20.0)
    assert energy.integrate_power(t, np.full(t.size, 2.0), 1.013, 3.517) == pytest.approx(2.0 * 2.504)
    step = np.where(t < 5.0, 1.0, 3.0)  # 1 W then 3 W from t=5 s
    assert energy.integrate_power(t, step, 0.0, 10.0) == pytest.approx(5 * 1.0 + 5 * 3.0, rel=0.005)
    assert energy.integrate_power(t, step, 6.0, 8.0) == pytest.approx(6.0)
    assert energy.integrate_power(t, step, 3.0, 3.0) == 0.0


def test_noisy_trace_integrates_to_its_mean_power():
    rng = np.random.default_rng(0)
    t = np.arange(0, 20, 0.02)
    v = 4.0 + rng.normal(0, 0.4, t.size)
    assert energy.integrate_power(t, v, 0.0, 19.98) == pytest.approx(4.0 * 19.98, rel=0.01)


def test_counter_energy_and_unwrap():
    t = np.arange(0, 5.001, 0.1)
    e = 2.5 * t  # 2.5 W as a cumulative counter in joules
    assert energy.counter_energy(t, e, 1.05, 3.05) == pytest.approx(5.0)
    max_range = 1000.0
    raw = np.mod(e * 1e6 / 1e4, max_range)  # a counter (1e-4 J units) that wraps at 1000 several times
    unwrapped = energy.unwrap_counter(raw, max_range)
    assert np.all(np.diff(unwrapped) >= 0)
    assert unwrapped[-1] - unwrapped[0] == pytest.approx(e[-1] * 100)
    pt, pv = energy.as_power({"quantity": "energy", "t": t, "v": e})
    assert np.allclose(pv, 2.5)


def _trace(idle_w=2.0, load_w=3.5, noise=0.0, seed=0, rate=50.0, runs=(1000, 1000, 1000), window_s=2.0):
    """Idle 2 s, then loaded windows back to back (0.1 s apart), then idle 2 s, sampled at `rate`."""
    rng = np.random.default_rng(seed)
    windows, start = [], 3.0
    for i, n in enumerate(runs):
        windows.append({"index": i, "runs": n, "start": start, "end": start + window_s, "partial": False})
        start += window_s + 0.1
    end_load = start - 0.1
    t = np.arange(0.0, end_load + 3.5, 1.0 / rate) + 0.0037
    v = np.where((t >= 2.9) & (t < end_load + 0.05), load_w, idle_w) + rng.normal(0, noise, t.size)
    src = {"name": "hwmon:test power1", "rail": "test rail", "quantity": "power", "t": t.tolist(), "v": v.tolist(),
           "unit": 1e-6, "rate_hz": rate, "achieved_hz": rate, "cpu_s": 0.01, "wall_s": float(t[-1])}
    idle = {"before": [0.5, 2.5], "after": [end_load + 1.0, end_load + 3.0]}
    truth = [(load_w - idle_w) * window_s / n * 1e3 for n in runs]
    return {"sources": [src], "windows": windows, "idle": idle, "notes": []}, truth


@pytest.mark.parametrize("noise", [0.0, 0.05, 0.3])
def test_baseline_subtraction_median_and_uncertainty_cover_the_truth(noise):
    power, truth = _trace(noise=noise, runs=(1000, 1200, 900))
    e = energy.measured_energy(power)
    assert e["kind"] == "measured" and e["source"] == "hwmon:test power1" and e["rail"] == "test rail"
    assert e["idle_power_w"] == pytest.approx(2.0, abs=0.05 + noise / 10)
    assert e["windows_mj"] == pytest.approx(truth, rel=0.01 + noise / 10)
    true_median = float(np.median(truth))
    assert abs(e["mj_per_inference"] - true_median) <= e["uncertainty_mj"]
    assert e["uncertainty_mj"] < 0.2 * true_median
    assert e["avg_power_w"] == pytest.approx(3.5, rel=0.02)
    assert e["sample_rate_hz"] == 50.0 and e["sampler_overhead"]["cpu_s_per_s"] > 0


def test_idle_drift_is_noted_and_widens_the_uncertainty():
    power, _ = _trace()
    steady = energy.measured_energy(power)
    src = power["sources"][0]
    t, v = np.asarray(src["t"]), np.asarray(src["v"])
    src["v"] = np.where(t > power["idle"]["after"][0] - 0.5, v + 0.3, v).tolist()  # idle 0.3 W higher after
    drifted = energy.measured_energy(power)
    assert any("drifted" in n for n in drifted["notes"])
    assert drifted["uncertainty_mj"] > steady["uncertainty_mj"]


def test_energy_counter_source_and_other_sources():
    power, truth = _trace()
    src = power["sources"][0]
    t, v = np.asarray(src["t"]), np.asarray(src["v"])
    joules = np.concatenate([[0.0], np.cumsum((v[1:] + v[:-1]) / 2 * np.diff(t))])
    rapl = {"name": "rapl:package-0", "rail": "RAPL", "quantity": "energy", "t": t.tolist(), "v": joules.tolist(),
            "unit": 1e-6, "rate_hz": 50.0, "cpu_s": 0.0, "wall_s": 10.0}
    power["sources"].append(rapl)
    e = energy.measured_energy(power)
    assert e["source"] == "hwmon:test power1"
    other = e["other_sources"][0]
    assert other["source"] == "rapl:package-0"
    assert other["mj_per_inference"] == pytest.approx(float(np.median(truth)), rel=0.02)


def test_no_usable_source_gives_none():
    assert energy.measured_energy(None) is None
    assert energy.measured_energy({"sources": [], "windows": [], "idle": {}}) is None
    power, _ = _trace()
    for w in power["windows"]:
        w["partial"] = True
    assert energy.measured_energy(power) is None


def test_estimate_is_labelled_and_its_arithmetic():
    e = energy.estimated_energy(7.6, 3.0, 2.0, power_is_estimate=False, source="profile raspberry-pi-5 power model")
    assert e["kind"] == "estimated" and e["mj_per_inference"] == pytest.approx(9.2)  # 4.6 W x 2 ms
    assert e["uncertainty_mj"] == 0.0 and e["avg_power_w"] == 7.6 and e["idle_power_w"] == 3.0
    assert "estimated, not measured" in e["notes"][0]
    est = energy.estimated_energy(7.6, 3.0, 2.0, latency_spread_ms=0.1, why="no power sensor was found")
    assert est["uncertainty_mj"] == pytest.approx(np.hypot(4.6 * 0.1, 0.5 * 9.2))
    assert est["notes"][0] == "no power sensor was found"


def test_battery_projection_arithmetic():
    e = {"kind": "measured", "mj_per_inference": 10.0, "idle_power_w": 0.5}
    b = energy.battery_projection(e, battery_wh=10.0, latency_ms=20.0, fps=30)
    # back to back: 10 mJ + 0.5 W x 20 ms = 20 mJ per inference; 36000 J / 0.02 J
    assert b["inferences_per_charge"] == pytest.approx(1.8e6)
    # at 30 FPS: 0.5 W + 30 x 0.01 J/s = 0.8 W -> 10 Wh / 0.8 W
    assert b["hours_at_fps"] == pytest.approx(12.5) and b["kind"] == "measured" and b["fps"] == 30
    too_fast = energy.battery_projection(e, 10.0, latency_ms=50.0, fps=30)
    assert too_fast["hours_at_fps"] is None and "more than this model runs" in too_fast["note"]
    est = energy.battery_projection(dict(e, kind="estimated"), 10.0, 20.0)
    assert est["kind"] == "estimated" and est["hours_at_fps"] is None


def test_soak_summary_from_charge_counter():
    # 10 minutes at 30 FPS; the gauge's charge counter drops 1000 uAh steps, 5000 uAh in total
    readings = [{"t": float(t), "charge_counter_uah": 3_000_000 - 1000 * int(t // 120), "capacity_pct": 80,
                 "voltage_uv": 3_900_000} for t in range(0, 601, 2)]
    soak = {"seconds": 600.0, "inferences": 18000, "fps": 30.0, "fps_requested": 30.0, "readings": readings,
            "gauge": {"source": "power_supply:battery"},
            "thermal": [{"t": 0, "temperatures_c": {"cpu": 41.0}, "throttled": []},
                        {"t": 600, "temperatures_c": {"cpu": 47.5}, "throttled": ["throttled"]}]}
    s = energy.soak_summary(soak)
    assert s["quantity"] == "charge_counter_uah" and s["unit"] == "mAh" and s["resolution"] == pytest.approx(1.0)
    assert s["drain_per_hour"] == pytest.approx(30.0, rel=0.15)  # 5 mAh in 10 min
    assert s["drain_per_hour_uncertainty"] == pytest.approx(6.0)  # one 1 mAh step over 1/6 h
    assert s["drain_per_1000_inferences"] == pytest.approx(s["drain_per_hour"] / 6 / 18, rel=1e-6)
    assert s["hours_to_empty"] == pytest.approx(2995 / s["drain_per_hour"])
    assert s["max_temperature_c"] == 47.5 and s["throttled"] == ["throttled"]
    assert s["mj_per_inference_total"] == pytest.approx(5.0 / 1e3 * 3.9 * 3600 * 1e3 / 18000)
    b = energy.soak_battery(s, None)
    assert b["kind"] == "measured" and b["hours_at_fps"] == pytest.approx(s["hours_to_empty"])


def test_soak_summary_falls_back_to_percent_and_says_when_nothing_moved():
    readings = [{"t": float(t), "capacity_pct": 90} for t in range(0, 61, 10)]
    s = energy.soak_summary({"seconds": 60, "inferences": 600, "fps": 10, "readings": readings})
    assert s["unit"] == "%" and s["drain_per_hour"] == 0 and s["hours_to_empty"] is None
    assert any("did not drop" in n for n in s["notes"])
    assert energy.soak_summary({"readings": [{"t": 0.0}]}) is None


def test_request_fields_and_option_checks():
    opts = BenchOptions(energy=True, sample_rate_hz=40, idle_seconds=2, energy_window_s=3)
    req = build_request("m.tflite", opts, 1, [], {"mode": "random"})
    assert req["energy"]["rate_hz"] == 40 and req["energy"]["process_rate_hz"] == 8
    assert req["energy"]["window_seconds"] == 3 and "soak" not in req
    soak = build_request("m.tflite", BenchOptions(battery_soak_s=600, fps=30), 1, [], {"mode": "random"})
    assert soak["soak"] == {"seconds": 600, "fps": 30, "allow_charging": False, "sysfs_root": "/sys"}
    assert "energy" not in build_request("m.tflite", BenchOptions(), 1, [], {"mode": "random"})
    assert [n for n, _ in BenchOptions(battery_soak_s=60).problems()] == ["battery_soak_s"]
    assert [n for n, _ in BenchOptions(sample_rate_hz=0, fps=-1).problems()] == ["sample_rate_hz", "fps"]


def _result(**kw):
    return BenchmarkResult(name="m", model_path="m.tflite", format="tflite", recipe=None, device="local",
                           profile=None, model_size_bytes=1, threads=1, delegates=[], input_mode="random", **kw)


def test_table_cells_never_show_an_estimate_as_a_measurement():
    from edgepool.cli._bench_view import battery_cell, energy_cells

    est = energy.estimated_energy(7.6, 3.0, 2.0)
    cells = energy_cells(_result(energy=est))
    assert all("estimated" in c for c in cells)
    power, _ = _trace()
    measured = energy.measured_energy(power)
    cells = energy_cells(_result(energy=measured))
    assert not any("estimated" in c for c in cells) and "measured" in cells[2] and "±" in cells[0]
    b = energy.battery_projection(est, 12.7, 2.0, 30)
    assert "estimated" in battery_cell(_result(battery=b)) and "at 30 FPS" in battery_cell(_result(battery=b))
    assert "power" not in _result(energy=measured, power={"sources": []}).to_dict()

"""The sweep's plain logic: the grid, device assignment, seeds averaged, the Pareto set, the recommendation,
the table, and the checks a sweep directory gets before any work (no training here)."""

from __future__ import annotations

import csv
import io

import pytest

from edgepool.errors import InputError
from edgepool.profiles import resolve
from edgepool.sweep import SweepSpec, parse_list
from edgepool.sweep.results import decide, pareto, points, recommend, table_csv, table_markdown, table_rows
from edgepool.sweep.runner import SWEEP_FILE, prepare
from edgepool.sweep.spec import assign_devices


def test_grid_ids_and_model_spec():
    spec = SweepSpec(data="digits", pools=["max", "l2"], profiles=["host-cpu"], models=["tiny"], windows=[2, 3],
                     widths=[0.5, 1.0], seeds=2)
    configs = spec.configs()
    assert len(configs) == 2 * 2 * 2 * 2
    ids = [c.id for c in configs]
    assert len(set(ids)) == len(ids) and "tiny-l2-w3-x0.5-s1" in ids
    c = next(c for c in configs if c.id == "tiny-l2-w3-x0.5-s1")
    assert c.group == "tiny-l2-w3-x0.5"
    ms = spec.model_spec(c)
    assert ms.width == 0.5 and all(b.pool == "l2" and b.pool_size == 3 and b.pool_stride is None for b in ms.blocks)
    assert spec.train_config(c).seed == 1


def test_parse_list_and_validation_messages():
    assert parse_list("max, avg,", str, "pool") == ["max", "avg"]
    assert parse_list("2,3", int, "window") == [2, 3]
    with pytest.raises(InputError, match="window 'x' is not an integer"):
        parse_list("2,x", int, "window")
    for kw, match in (({"pools": ["max", "bogus"]}, "unknown pool 'bogus'"), ({"pools": ["max", "max"]}, "listed twice"),
                      ({"windows": [0]}, "window must be >= 1"), ({"widths": [0.0]}, "width must be > 0"),
                      ({"seeds": 0}, "seeds must be >= 1"), ({"models": ["huge"]}, "unknown model")):
        args = {"data": "digits", "pools": ["max"], "profiles": ["host-cpu"], **kw}
        with pytest.raises(InputError, match=match):
            SweepSpec(**args).validate()


def test_devices_are_assigned_to_profiles():
    host, pi5, pi4 = resolve("host-cpu"), resolve("raspberry-pi-5"), resolve("raspberry-pi-4")
    # no device: host-cpu is measured on this machine, the Pi is estimated
    a = {x.profile: x for x in assign_devices([host, pi5], [])}
    assert (a["host-cpu"].device, a["host-cpu"].kind) == ("local", "measured")
    assert (a["raspberry-pi-5"].device, a["raspberry-pi-5"].kind) == (None, "estimated")
    # an ssh device goes to the one ssh profile; with two ssh profiles it must be named
    a = {x.profile: x for x in assign_devices([host, pi5], ["ssh://pi@pi5.local"])}
    assert a["raspberry-pi-5"].device == "ssh://pi@pi5.local"
    with pytest.raises(InputError, match="PROFILE=DEVICE"):
        assign_devices([pi4, pi5], ["ssh://pi@pi5.local"])
    a = {x.profile: x for x in assign_devices([pi4, pi5], ["raspberry-pi-4=ssh://pi@pi4.local"])}
    assert a["raspberry-pi-4"].device == "ssh://pi@pi4.local" and a["raspberry-pi-5"].device is None
    with pytest.raises(InputError, match="not in the sweep"):
        assign_devices([pi5], ["coral-usb=local"])
    with pytest.raises(InputError, match="two devices"):
        assign_devices([pi5], ["raspberry-pi-5=ssh://a", "raspberry-pi-5=ssh://b"])


def _config(pool: str, seed: int, acc: float, lat: float, size: int = 1000, status: str = "pass") -> dict:
    group = f"small-{pool}-w2-x1"
    return {"id": f"{group}-s{seed}", "group": group, "pool": pool, "model": "small", "window": 2, "width": 1.0,
            "seed": seed, "status": "done", "accuracy": acc + 0.001,
            "exports": {"p": {"accuracy": acc, "latency_ms": lat, "size_bytes": size, "status": status,
                              "latency_kind": "measured"}}}


def test_seeds_are_averaged_and_pareto_is_the_non_dominated_set():
    configs = [
        _config("max", 0, 0.97, 1.0), _config("max", 1, 0.95, 1.2),   # mean 0.96 @ 1.1
        _config("avg", 0, 0.96, 0.9), _config("avg", 1, 0.96, 0.9),   # 0.96 @ 0.9: dominates max
        _config("none", 0, 0.99, 5.0), _config("none", 1, 0.985, 5.2),  # most accurate, slow
        _config("l2", 0, 0.90, 2.0), _config("l2", 1, 0.90, 2.0),     # dominated by avg
        _config("strided", 0, 0.999, 0.5, status="fail"),              # failed verification: never chosen
    ]
    pts = {p.group: p for p in points(configs, "p")}
    mx = pts["small-max-w2-x1"]
    assert mx.mean("accuracy") == pytest.approx(0.96) and mx.mean("latency_ms") == pytest.approx(1.1)
    assert mx.spread("accuracy") == pytest.approx(0.01414, abs=1e-4)
    assert [p.pool for p in pareto(list(pts.values()))] == ["avg", "none"]
    # target 2 ms: none is too slow, so avg; no target: none (the most accurate beyond the tolerance)
    pick, why = recommend(list(pts.values()), 2.0)
    assert pick.pool == "avg" and "meet the 2 ms target" in why
    pick, _ = recommend(list(pts.values()), None)
    assert pick.pool == "none"


def test_recommendation_prefers_the_faster_of_two_within_noise():
    configs = [_config("max", 0, 0.981, 1.0), _config("avg", 0, 0.980, 0.6), _config("none", 0, 0.95, 0.5)]
    pick, why = recommend(points(configs, "p"), None)
    assert pick.pool == "avg" and "within 0.2 pp" in why


def test_decision_shape_and_tables():
    class P:
        name, latency_target_ms = "p", None

    configs = [_config("max", 0, 0.97, 1.0), _config("max", 1, 0.96, 1.1), _config("avg", 0, 0.99, 2.0),
               _config("avg", 1, 0.985, 2.1), {**_config("l2", 0, 0.5, 1.0), "status": "failed", "exports": {}}]
    d = decide(configs, [P()])
    assert d["pareto"]["p"] == ["small-max-w2-x1-s0", "small-max-w2-x1-s1", "small-avg-w2-x1-s0", "small-avg-w2-x1-s1"]
    assert d["recommendation"]["p"] == "small-avg-w2-x1-s0"  # the group's most accurate seed
    rows = list(csv.DictReader(io.StringIO(table_csv(d))))
    assert [r["group"] for r in rows] == ["small-max-w2-x1", "small-avg-w2-x1", "small-l2-w2-x1"]
    assert rows[1]["recommended"] == "True" and rows[2]["seeds"] == "0"
    shown = {r["group"]: r for r in table_rows(d)}
    assert shown["small-max-w2-x1"]["accuracy"] == "96.50 ± 0.71"
    assert "recommend `small-avg-w2-x1`" in table_markdown(d)


def test_sweep_directory_checks(tmp_path):
    spec = SweepSpec(data="digits", pools=["max"], profiles=["host-cpu"], models=["tiny"], seeds=1, epochs=1)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a sweep directory"):
        prepare(spec, other)
    assert (other / "notes.txt").read_text() == "mine"
    sweep, tasks = prepare(spec, tmp_path / "sw")
    assert [t.kind for t in tasks] == ["train"]
    (tmp_path / "sw" / SWEEP_FILE).write_text('{"settings": {"data": "digits", "epochs": 3}}')
    with pytest.raises(InputError, match=r"epochs 3 -> 1"):
        prepare(spec, tmp_path / "sw")
    with pytest.raises(InputError, match="neither a built-in set"):
        prepare(SweepSpec(data=str(tmp_path / "nope"), pools=["max"], profiles=["host-cpu"]), tmp_path / "sw2")


def test_plan_reuses_markers_and_runs(tmp_path, tiny_run):
    """A done marker means nothing to do; a trained run means no training; a new profile adds its work only."""
    import json
    import shutil

    spec = SweepSpec(data="digits", pools=["max", "avg"], profiles=["host-cpu"], models=["tiny"], seeds=1, epochs=1)
    sweep, tasks = prepare(spec, tmp_path / "sw")
    assert sorted((t.kind, t.config) for t in tasks) == [("train", "tiny-avg-w2-x1-s0"), ("train", "tiny-max-w2-x1-s0")]
    # max: trained and finished (marker); avg: trained only
    for cid in ("tiny-max-w2-x1-s0", "tiny-avg-w2-x1-s0"):
        shutil.copytree(tiny_run.path, sweep.run_dir(cid))
    done = {**sweep.records["tiny-max-w2-x1-s0"], "status": "done", "exports": {"host-cpu": {
        "recipe": "int8", "size_bytes": 9000, "accuracy": 0.9, "status": "pass", "export_dir": "exports/host-cpu",
        "latency_ms": 0.01, "latency_kind": "measured", "device_uri": "local"}}}
    sweep.marker("tiny-max-w2-x1-s0").write_text(json.dumps(done))
    sweep, tasks = prepare(spec, tmp_path / "sw")
    assert [(t.kind, t.config, t.profile) for t in tasks] == [("convert", "tiny-avg-w2-x1-s0", "host-cpu")]
    assert sweep.counts["reused"] == 1 and sweep.records["tiny-max-w2-x1-s0"]["status"] == "done"
    # a profile added later: the finished configuration keeps host-cpu and only converts for the new one
    spec.profiles = ["host-cpu", "raspberry-pi-5"]
    sweep, tasks = prepare(spec, tmp_path / "sw")
    assert sorted((t.config, t.profile) for t in tasks) == [
        ("tiny-avg-w2-x1-s0", "host-cpu"), ("tiny-avg-w2-x1-s0", "raspberry-pi-5"), ("tiny-max-w2-x1-s0", "raspberry-pi-5")]
    assert sweep.records["tiny-max-w2-x1-s0"]["exports"]["host-cpu"]["latency_ms"] == 0.01

"""Metrics export: `benchmark --prometheus/--jsonl` on a real LiteRT benchmark, parsed back with
prometheus_client's own parser; the Grafana dashboard only queries metrics and labels the exporter writes.

The dashboard test also feeds the exporter rows carrying what a Raspberry Pi with a power sensor and an
Edge TPU reports (energy, temperatures, throttling, delegate coverage): that hardware does not exist here,
so those fields are stand-ins written into real benchmark rows."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from edgepool import runs
from tests._gate_runs import bench_doc, prepared_pair

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "grafana" / "edgepool.json"
FAST = ["--runs", "5", "--windows", "2", "--min-seconds", "0.02", "--warmup-seconds", "0", "--max-samples", "40"]


def families(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def test_benchmark_writes_prometheus_and_jsonl(tiny_run, tmp_path, cli):
    run = tmp_path / "digits-run"
    shutil.copytree(prepared_pair(tiny_run)[1], run)
    prom, jsonl = tmp_path / "m" / "edgepool.prom", tmp_path / "results.jsonl"
    r = cli("benchmark", run / "exports" / "int8", *FAST, "--prometheus", prom, "--jsonl", jsonl)
    assert r.exit_code == 0, r.stderr
    fams = families(prom.read_text())
    lat = fams["edgepool_inference_latency_seconds"]
    assert lat.type == "summary"
    quantiles = {s.labels["quantile"]: s.value for s in lat.samples if s.name == lat.name}
    assert set(quantiles) == {"0.5", "0.9", "0.95", "0.99"}
    assert 0 < quantiles["0.5"] <= quantiles["0.95"] <= quantiles["0.99"] < 1
    count = [s for s in lat.samples if s.name.endswith("_count")][0]
    labels = count.labels
    assert labels == {"model": "digits-run", "export": "int8", "device": "local", "profile": "", "recipe": "int8",
                      "pooling": "max"}
    saved = max((run / "benchmarks").glob("*.json"), key=lambda p: p.stat().st_mtime)
    result = runs.read_json(saved)["results"][0]
    assert count.value == result["runs"]
    assert fams["edgepool_model_size_bytes"].samples[0].value == result["model_size_bytes"]
    assert fams["edgepool_accuracy_ratio"].samples[0].value == pytest.approx(result["accuracy"])
    windows = {s.labels["window"] for s in fams["edgepool_window_latency_seconds"].samples}
    assert windows == {"0", "1"}
    line = json.loads(jsonl.read_text().splitlines()[-1])
    assert line["kind"] == "benchmark" and line["labels"] == labels
    assert line["session"] == runs.read_json(saved)["session"]["id"]
    assert line["result"]["latency_ms"] == result["latency_ms"]


def test_benchmark_refuses_a_foreign_metrics_file_before_measuring(tiny_run, tmp_path, cli):
    base = prepared_pair(tiny_run)[1]
    mine = tmp_path / "prometheus.yml"
    mine.write_text("scrape_configs: []\n")
    r = cli("benchmark", base / "exports" / "int8", *FAST, "--no-save", "--prometheus", mine)
    assert r.exit_code == 2 and "not a metrics file edgepool wrote" in r.stderr
    assert mine.read_text() == "scrape_configs: []\n"


# ------------------------------------------------------------------------------------------ the dashboard


def hardware_row(row: dict) -> dict:
    """A real benchmark row plus what a Pi with a power sensor and an Edge TPU reports (stand-ins)."""
    row = json.loads(json.dumps(row))
    row.update(device="pi5", profile="raspberry-pi-5", delegate_coverage={"edgetpu": 0.9})
    row["energy"] = {"kind": "measured", "mj_per_inference": 0.8, "uncertainty_mj": 0.05, "avg_power_w": 3.1,
                     "idle_power_w": 2.4, "source": "hwmon:ina226 power1", "rail": "board rails",
                     "sample_rate_hz": 50.0, "sampler_overhead": None, "windows_mj": [0.8, 0.81], "notes": []}
    env = row.setdefault("environment", {}) or {}
    env["thermal"] = {"before": {"temperatures_c": {"cpu-thermal": 48.2}}, "after": {"temperatures_c": {"cpu-thermal": 55.0}}}
    env["throttled"] = False
    row["environment"] = env
    return row


def exporter_output(tiny_run) -> dict[str, set[str]]:
    """Every sample name the exporter writes (benchmark and gate) -> the label names it carries."""
    from edgepool import metrics
    from edgepool.gate import compare

    cand, base = prepared_pair(tiny_run)
    rows = bench_doc(cand)[1]["results"] + bench_doc(base)[1]["results"]
    text = metrics.exposition(metrics.benchmark_families(rows + [hardware_row(rows[0])]))
    text += metrics.exposition(metrics.gate_families(compare(cand, base)))
    out: dict[str, set[str]] = {}
    for fam in families(text).values():
        for s in fam.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


METRIC = re.compile(r"\b(edgepool_[a-z0-9_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")
LEGEND = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def dashboard_queries(dash: dict) -> list[tuple[str, str]]:
    """(expression, legend format) of every panel target and every templating query."""
    out = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            out.append((t["expr"], t.get("legendFormat", "")))
        for sub in panel.get("panels", []):
            out.extend((t["expr"], t.get("legendFormat", "")) for t in sub.get("targets", []))
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q)
            assert m, q
            out.append((f"{m.group(1)}{{{m.group(2)}=\"x\"}}", ""))
    return out


def test_every_dashboard_query_names_metrics_and_labels_the_exporter_writes(tiny_run):
    written = exporter_output(tiny_run)
    dash = json.loads(DASHBOARD.read_text())
    queries = dashboard_queries(dash)
    assert len(queries) >= 12
    for expr, legend in queries:
        found = METRIC.findall(expr)
        assert found, f"query names no edgepool metric: {expr}"
        labels_here: set[str] = set()
        for name, selector in found:
            assert name in written, f"{name} (in {expr!r}) is not written by the exporter"
            used = {m[0] for m in MATCHER.findall(selector or "")}
            missing = used - written[name]
            assert not missing, f"{expr!r}: {name} has no label {sorted(missing)} (it has {sorted(written[name])})"
            labels_here |= written[name]
        for group in BY.findall(expr):
            assert {g.strip() for g in group.split(",") if g.strip()} <= labels_here, expr
        assert set(LEGEND.findall(legend)) <= labels_here, f"legend {legend!r} names a label {expr!r} lacks"


def test_dashboard_has_the_overview_and_debug_views():
    dash = json.loads(DASHBOARD.read_text())
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Overview", "Debug"]
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    for metric in ("edgepool_inference_latency_seconds", "edgepool_accuracy_delta_ratio", "edgepool_model_size_bytes",
                   "edgepool_energy_per_inference_joules", "edgepool_window_latency_seconds",
                   "edgepool_memory_peak_rss_bytes", "edgepool_temperature_celsius", "edgepool_throttled",
                   "edgepool_delegate_coverage_ratio"):
        assert metric in exprs, metric
    for q in ("0.5", "0.95", "0.99"):
        assert f'quantile="{q}"' in exprs
    # importable as is: no unresolved ${DS_...} inputs; every panel reads the dashboard's datasource variable
    assert dash["__inputs"] == [] and dash["uid"] and dash["id"] is None
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dash["panels"] if p["type"] != "row")
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))

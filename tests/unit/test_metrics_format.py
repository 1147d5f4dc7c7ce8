"""The metrics exporter's format rules on results built from known latencies (the formatter alone; the real
benchmark -> Prometheus path is tested in tests/integration/test_metrics.py)."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgepool import metrics
from edgepool.bench.protocol import BenchmarkResult
from edgepool.bench.stats import summarize
from edgepool.errors import InputError


def result(run_dir: str, ms: list[float]) -> BenchmarkResult:
    s = summarize(ms)
    return BenchmarkResult(name="int8", model_path=f"{run_dir}/exports/int8/model.tflite", format="tflite",
                           recipe="int8", device="local", profile="host-cpu", model_size_bytes=1000, threads=1,
                           delegates=[], input_mode="random", latency_ms=s.to_dict(), runs=s.runs, run_dir=run_dir,
                           complete=True)


def parse(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_latency_summary_is_in_seconds_with_sum_and_count():
    ms = [1.0, 2.0, 3.0, 4.0, 10.0]
    fams = parse(metrics.exposition(metrics.benchmark_families([result("/x/runA", ms)])))
    lat = fams["edgepool_inference_latency_seconds"]
    q = {s.labels["quantile"]: s.value for s in lat.samples if "quantile" in s.labels}
    assert q["0.5"] == pytest.approx(0.003) and q["0.99"] == pytest.approx(summarize(ms).p99 / 1000)
    total = {s.name: s.value for s in lat.samples if "quantile" not in s.labels}
    assert total["edgepool_inference_latency_seconds_count"] == 5
    assert total["edgepool_inference_latency_seconds_sum"] == pytest.approx(sum(ms) / 1000)


def test_two_runs_of_one_folder_name_stay_two_series():
    rows = [result("/x/run", [1.0, 2.0]), result("/y/run", [3.0, 4.0])]
    fams = parse(metrics.exposition(metrics.benchmark_families(rows)))
    models = {s.labels["model"] for s in fams["edgepool_model_size_bytes"].samples}
    assert models == {"run", "/y/run"}


def test_skipped_and_failed_rows_are_left_out_and_an_empty_file_is_still_ours(tmp_path):
    r = result("/x/run", [1.0])
    r.error = {"kind": "DeviceError", "message": "gone", "hint": None, "exit_code": 3}
    assert metrics.benchmark_families([r]) == []
    path = tmp_path / "m.prom"
    metrics.write_prometheus(path, [])
    assert parse(path.read_text()) is not None
    metrics.write_prometheus(path, metrics.benchmark_families([result("/x/run", [1.0, 2.0])]))  # replaced: ours
    assert "edgepool_model_size_bytes" in parse(path.read_text())


def test_jsonl_appends_and_refuses_a_file_that_is_not_json_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    for _ in range(2):
        metrics.append_jsonl(path, metrics.benchmark_records([result("/x/run", [1.0, 2.0])], session="s1"))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 2 and lines[0]["session"] == "s1" and lines[0]["labels"]["recipe"] == "int8"
    other = tmp_path / "notes.md"
    other.write_text("# notes\n")
    with pytest.raises(InputError, match="not a JSON-lines file"):
        metrics.append_jsonl(other, [{"a": 1}])
    assert other.read_text() == "# notes\n"


def test_pooling_label():
    spec = {"blocks": [{"pool": "max"}, {"pool": "l2"}, {"pool": "max"}]}
    assert metrics.pooling_of(spec) == "max+l2" and metrics.pooling_of(None) == ""

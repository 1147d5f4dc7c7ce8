"""`edgepool gate`: every check failing and passing, on real runs (tiny digits, a real int8 export verified
by edgepool, a real LiteRT benchmark of both in one call); edits go through edgepool's own writers.

Energy per inference and delegate coverage need a power sensor and a delegate (an Edge TPU), which do not
exist here: those tests write the `energy` / `delegate_coverage` fields such a device reports into the
real benchmark rows (stand-ins for that hardware, nothing else)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgepool import runs
from edgepool.errors import InputError
from edgepool.gate import CHECKS, compare, load_config
from tests._gate_runs import bench_doc, edit_rows, prepared_pair, scale_latency, variant


@pytest.fixture
def pair(tiny_run, tmp_path):
    return variant(prepared_pair(tiny_run), tmp_path)


def statuses(report, check):
    return [c.status for c in report.checks if c.check == check]


def only(report, check, subject=None):
    rows = [c for c in report.checks if c.check == check and subject in (None, c.subject)]
    assert len(rows) == 1, [(c.check, c.subject, c.status) for c in report.checks]
    return rows[0]


def set_manifest(run: Path, **metrics):
    m = runs.read_json(run / runs.MANIFEST)
    m["metrics"].update(metrics)
    runs.atomic_write_json(run / runs.MANIFEST, m)


def set_verify(run: Path, **fields):
    export = runs.load_export(run / "exports" / "int8")
    record = {**export.verification(), **fields}
    runs.save_verification(export, record)


def test_identical_candidate_passes_every_check_that_has_data(pair):
    cand, base = pair
    report = compare(cand, base)
    assert report.passed, [(c.check, c.subject, c.reason) for c in report.failed]
    for check in ("accuracy", "class_accuracy", "exports", "quantized_accuracy", "parity", "size", "latency", "memory"):
        assert PASS_ in statuses(report, check), check
    assert statuses(report, "energy") == ["skip"] and "no energy" in only(report, "energy").reason
    assert statuses(report, "delegate") == ["skip"]
    assert report.session is not None and len(report.session["files"]) == 2


PASS_ = "pass"


def test_accuracy_drop(pair):
    cand, base = pair
    acc = runs.read_json(base / runs.MANIFEST)["metrics"]["test_accuracy"]
    set_manifest(cand, test_accuracy=acc - 0.005)  # 0.5 pp: within the default 1 pp
    assert only(compare(cand, base), "accuracy").status == "pass"
    set_manifest(cand, test_accuracy=acc - 0.05)
    report = compare(cand, base)
    row = only(report, "accuracy")
    assert row.status == "fail" and "5.00 pp" in row.reason and not report.passed


def test_class_accuracy_needs_pp_and_samples(pair):
    cand, base = pair
    m = runs.read_json(base / runs.MANIFEST)["metrics"]
    n3 = sum(m["confusion_matrix"][3])
    per = list(m["per_class_accuracy"])
    one = list(per)
    one[3] -= 1 / n3  # one sample: more than 5 pp, but a single sample is noise
    set_manifest(cand, per_class_accuracy=one)
    assert statuses(compare(cand, base), "class_accuracy") == ["pass"]
    three = list(per)
    three[3] -= 3 / n3
    set_manifest(cand, per_class_accuracy=three)
    row = only(compare(cand, base), "class_accuracy")
    assert row.status == "fail" and row.subject == "class 3" and f"(3 of {n3} test samples)" in row.reason


def test_quantized_accuracy_and_parity(pair):
    cand, base = pair
    acc = runs.read_json(base / "exports" / "int8" / runs.VERIFY)["accuracy"]
    set_verify(cand, accuracy=acc - 0.03)
    report = compare(cand, base)
    assert only(report, "quantized_accuracy", "int8").status == "fail"
    assert only(report, "parity").status == "pass"
    set_verify(cand, accuracy=acc, status="fail", reason="agreement 0.9000 < 0.98")
    row = only(compare(cand, base), "parity")
    assert row.status == "fail" and "agreement 0.9000" in row.reason


def test_unverified_export_fails_unless_allowed(pair, tmp_path):
    cand, base = pair
    (cand / "exports" / "int8" / runs.VERIFY).unlink()
    assert only(compare(cand, base), "parity").status == "fail"
    cfg = tmp_path / "gate.toml"
    cfg.write_text("schema_version = 1\nallow_unverified = true\n")
    report = compare(cand, base, load_config(cfg))
    assert only(report, "parity").status == "skip" and report.passed


def test_missing_baseline_export_fails(pair):
    cand, base = pair
    shutil.move(cand / "exports" / "int8", cand / "exports" / "int8-renamed")
    report = compare(cand, base)
    row = only(report, "exports", "int8")
    assert row.status == "fail" and "the candidate does not" in row.reason and not report.passed


def test_size_growth(pair):
    cand, base = pair
    model = cand / "exports" / "int8" / "model.tflite"
    size = model.stat().st_size
    runs.atomic_write_bytes(model, model.read_bytes() + b"\0" * (size // 20))  # +5%
    assert only(compare(cand, base), "size", "int8").status == "pass"
    runs.atomic_write_bytes(model, model.read_bytes() + b"\0" * (size // 5))
    row = only(compare(cand, base), "size", "int8")
    assert row.status == "fail" and row.candidate > row.baseline


def test_latency_regression_fails_and_noise_is_allowed(pair):
    cand, base = pair
    orig = bench_doc(base)[1]["results"][0]["latency_ms"]

    def times(factor, windows=None):  # the baseline's measured statistics times `factor`
        return lambda r: scale_latency({**r, "latency_ms": orig}, factor, windows)

    edit_rows(base, latency_ms=times(1.0))  # windows alike: no noise allowance
    edit_rows(cand, latency_ms=times(1.5), measured_as=None)
    row = only(compare(cand, base), "latency")
    assert row.status == "fail" and row.change.startswith("+50.0%") and "noise 0.0%" in row.limit
    edit_rows(cand, latency_ms=times(1.08))  # +8%: within the 10% allowed
    assert only(compare(cand, base), "latency").status == "pass"
    # +50% again, with baseline windows that scatter ((3 - 1) / 2 = 100% spread): within the noise, so it passes
    edit_rows(cand, latency_ms=times(1.5))
    edit_rows(base, latency_ms=times(1.0, [1.0, 3.0, 2.0]))
    row = only(compare(cand, base), "latency")
    assert row.status == "pass" and "noise 100.0%" in row.limit


def test_latency_from_another_benchmark_run_is_not_compared(pair):
    cand, base = pair
    path, doc = bench_doc(base)
    doc["session"] = {"id": "another-run", "runs": [str(base)]}
    runs.atomic_write_json(path, doc)
    report = compare(cand, base)
    assert statuses(report, "latency") == ["skip"]
    assert "together" in only(report, "latency").reason and report.session is None


def test_candidate_failing_on_the_device_fails(pair):
    cand, base = pair
    edit_rows(cand, error={"kind": "DeviceError", "message": "the agent died", "hint": None, "exit_code": 3})
    row = only(compare(cand, base), "latency")
    assert row.status == "fail" and "the agent died" in row.reason


def test_memory_growth(pair):
    cand, base = pair
    edit_rows(cand, memory=lambda r: {**r["memory"], "peak_rss_bytes": r["memory"]["peak_rss_bytes"] + 100_000})
    assert only(compare(cand, base), "memory").status == "pass"  # under the 1 MiB noise floor
    edit_rows(cand, memory=lambda r: {**r["memory"], "peak_rss_bytes": r["memory"]["peak_rss_bytes"] + 50_000_000})
    assert only(compare(cand, base), "memory").status == "fail"


def energy(mj, unc=0.01, kind="measured"):
    return {"kind": kind, "mj_per_inference": mj, "uncertainty_mj": unc, "avg_power_w": 2.0, "idle_power_w": 1.5,
            "source": "hwmon:ina226 power1", "rail": "board rails", "sample_rate_hz": 50.0,
            "sampler_overhead": None, "windows_mj": [mj, mj], "notes": []}


def test_energy_growth_where_both_have_it(pair):
    cand, base = pair
    edit_rows(base, energy=energy(1.0))
    assert only(compare(cand, base), "energy").status == "skip"  # the candidate has none
    edit_rows(cand, energy=energy(1.05))
    assert only(compare(cand, base), "energy").status == "pass"
    edit_rows(cand, energy=energy(1.5))
    assert only(compare(cand, base), "energy").status == "fail"
    edit_rows(cand, energy=energy(1.5, kind="estimated"))
    assert only(compare(cand, base), "energy").status == "skip"


def test_delegate_coverage_drop(pair):
    cand, base = pair
    edit_rows(base, delegate_coverage={"edgetpu": 1.0})
    edit_rows(cand, delegate_coverage={"edgetpu": 1.0})
    assert only(compare(cand, base), "delegate").status == "pass"
    edit_rows(cand, delegate_coverage={"edgetpu": 0.75})
    row = only(compare(cand, base), "delegate")
    assert row.status == "fail" and "25.0 pp" in row.reason


def test_exports_compared_directly(pair):
    cand, base = pair
    report = compare(cand / "exports" / "int8", base / "exports" / "int8")
    assert report.passed and "latency" in {c.check for c in report.checks if c.status == "pass"}


def test_config_is_strict_and_partial(tmp_path):
    full = load_config()
    assert full.max_accuracy_drop_pp == 1.0 and full.latency_percentile == "p95"
    cfg = tmp_path / "gate.toml"
    cfg.write_text("schema_version = 1\nmax_latency_regresion_pct = 5\n")
    with pytest.raises(InputError) as e:
        load_config(cfg)
    assert "max_latency_regresion_pct" in e.value.message and "max_latency_regression_pct" in e.value.hint
    cfg.write_text('schema_version = 1\nmax_size_growth_pct = 2\ndisabled = ["energy"]\n')
    c = load_config(cfg)
    assert c.max_size_growth_pct == 2 and c.disabled == ("energy",) and c.max_accuracy_drop_pp == 1.0
    cfg.write_text('schema_version = 1\ndisabled = ["enrgy"]\n')
    with pytest.raises(InputError, match="not allowed"):
        load_config(cfg)
    assert set(CHECKS) >= {"accuracy", "latency", "energy", "delegate"}


def test_disabled_checks_are_left_out(pair, tmp_path):
    cand, base = pair
    set_manifest(cand, test_accuracy=0.1)
    cfg = tmp_path / "gate.toml"
    cfg.write_text('schema_version = 1\ndisabled = ["accuracy", "class_accuracy"]\n')
    report = compare(cand, base, load_config(cfg))
    assert report.passed and "accuracy" not in {c.check for c in report.checks}


# ------------------------------------------------------------------------------------------ the command


def test_cli_exit_codes_json_and_table(pair, cli):
    cand, base = pair
    ok = cli("gate", cand, "--baseline", base)
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "PASSED" in ok.stdout and "latency" in ok.stdout
    set_manifest(cand, test_accuracy=0.1)
    bad = cli("gate", cand, "--baseline", base, "--json")
    assert bad.exit_code == 1
    doc = json.loads(bad.stdout)
    assert doc["passed"] is False and doc["counts"]["fail"] >= 1
    assert {c["check"] for c in doc["checks"] if c["status"] == "fail"} >= {"accuracy"}
    assert "gate failed" in bad.stderr
    table = cli("gate", cand, "--baseline", base)
    assert table.exit_code == 1 and "FAIL" in table.stdout and "test accuracy dropped" in table.stdout


def test_cli_bad_input_is_one_line_exit_2(pair, cli, tmp_path):
    cand, base = pair
    r = cli("gate", cand, "--baseline", tmp_path / "nope")
    assert r.exit_code == 2 and "does not exist" in r.stderr
    cfg = tmp_path / "gate.toml"
    cfg.write_text("schema_version = 1\nmax_acuracy_drop_pp = 2\n")
    r = cli("gate", cand, "--baseline", base, "--config", cfg)
    assert r.exit_code == 2 and "did you mean max_accuracy_drop_pp" in r.stderr


def test_cli_metrics_files(pair, cli, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    cand, base = pair
    prom, jsonl = tmp_path / "gate.prom", tmp_path / "gate.jsonl"
    for _ in range(2):
        r = cli("gate", cand, "--baseline", base, "--prometheus", prom, "--jsonl", jsonl)
        assert r.exit_code == 0, r.stderr
    fams = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    assert fams["edgepool_gate_passed"].samples[0].value == 1.0
    assert fams["edgepool_gate_passed"].samples[0].labels["model"] == "candidate"
    checks = {s.labels["check"] for s in fams["edgepool_gate_check_passed"].samples}
    assert {"accuracy", "latency", "parity"} <= checks
    deltas = fams["edgepool_accuracy_delta_ratio"].samples
    assert deltas and all(s.labels["reference"] == "baseline" and s.value == 0.0 for s in deltas)
    lines = jsonl.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["kind"] == "gate" and json.loads(lines[1])["passed"] is True
    # a file edgepool did not write is refused, and left as it was
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    r = cli("gate", cand, "--baseline", base, "--prometheus", other)
    assert r.exit_code == 2 and "not a metrics file edgepool wrote" in r.stderr
    assert other.read_text() == "my notes\n"
    r = cli("gate", cand, "--baseline", base, "--jsonl", other)
    assert r.exit_code == 2 and other.read_text() == "my notes\n"


def test_results_from_a_benchmark_out_file(pair, tmp_path):
    """`benchmark --out FILE` writes one file for both runs: the gate reads it when named (`benchmarks=`)."""
    cand, base = pair
    (cpath, cdoc), (bpath, bdoc) = bench_doc(cand), bench_doc(base)
    for run, doc in ((cand, cdoc), (base, bdoc)):
        for row in doc["results"]:
            row["model_path"] = str(run / "exports" / "int8" / "model.tflite")
            row["run_dir"] = str(run)
    merged = {**bdoc, "results": cdoc["results"] + bdoc["results"]}
    out = tmp_path / "bench.json"
    runs.atomic_write_json(out, merged)
    cpath.unlink()
    bpath.unlink()
    assert statuses(compare(cand, base), "latency") == ["skip"]
    report = compare(cand, base, benchmarks=[out])
    assert statuses(report, "latency") == ["pass"] and report.session["files"] == [str(out)]

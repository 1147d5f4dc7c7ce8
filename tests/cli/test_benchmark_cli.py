"""`edgepool benchmark`: the table, --json, saved results, and one clear line per bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests._bench_models import broken_corpus, cached_digits_run

FAST = ["--runs", "10", "--min-seconds", "0.05", "--windows", "2", "--warmup-seconds", "0.05"]


@pytest.fixture(scope="module")
def app():
    from edgepool.cli import benchmark as cmd
    from edgepool.cli import main

    if "benchmark" not in [c.name for c in main.app.registered_commands]:  # until main lists it
        cmd.register(main.app)
    return main.app


@pytest.fixture(scope="module")
def digits():
    return cached_digits_run()


def invoke(app, *args):
    return CliRunner().invoke(app, ["benchmark", *map(str, args)])


def test_import_does_not_load_tensorflow():
    code = "import sys, edgepool.cli.benchmark, edgepool.bench.runner; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_run_directory_gives_one_leaderboard_and_saves(app, digits):
    before = set((digits.path / "benchmarks").glob("*.json")) if (digits.path / "benchmarks").exists() else set()
    res = invoke(app, digits.path, *FAST)
    assert res.exit_code == 0, res.output
    for text in ("float32", "int8", "median", "p95", "FPS", "peak mem", "accuracy", "tflite"):
        assert text in res.output
    new = set((digits.path / "benchmarks").glob("*.json")) - before
    assert len(new) == 1
    assert [m["name"] for m in json.loads(new.pop().read_text())["results"]] == ["float32", "int8"]


@pytest.mark.slow
def test_json_output(app, digits, tmp_path):
    out = tmp_path / "b.json"
    res = invoke(app, digits.int8_export, *FAST, "--json", "--threads", "1", "--out", out)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    (m,) = doc["results"]
    assert m["name"] == "int8" and m["latency_ms"]["median"] > 0 and m["accuracy"] > 0.5
    assert doc["saved"] == [str(out)] and json.loads(out.read_text())["results"][0]["name"] == "int8"


@pytest.mark.slow
def test_broken_files_one_line_exit_2(app, digits, tmp_path):
    corpus = broken_corpus((digits.int8_export / "model.tflite").read_bytes(), tmp_path)
    for name, path in corpus.items():
        res = invoke(app, path, *FAST)
        assert res.exit_code == 2, (name, res.output)
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and path.stem in lines[0], (name, res.output)


@pytest.mark.slow
def test_several_exports_one_broken_still_measures_the_others(app, digits, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    res = invoke(app, digits.int8_export, bad, *FAST, "--no-save")
    assert res.exit_code == 2
    assert "int8" in res.output and "ModelError" in res.output and "error: bad:" in res.output


def test_transport_of_a_later_issue_is_a_device_error(app, digits):
    res = invoke(app, digits.int8_export, "--device", "ssh:pi@raspberrypi.local")
    assert res.exit_code == 3 and "transport ssh lands in a later issue" in res.output


def test_non_local_profile_is_a_device_error(app, digits):
    res = invoke(app, digits.int8_export, "--profile", "raspberry-pi-5")
    assert res.exit_code == 3 and "lands in a later issue" in res.output


def test_bad_arguments(app, tmp_path):
    assert invoke(app, tmp_path / "nope.tflite").exit_code == 2
    res = invoke(app, tmp_path, "--runs", "0")
    assert res.exit_code == 2 and "--runs" in res.output
    res = invoke(app, tmp_path, "--affinity", "x")
    assert res.exit_code == 2 and "--affinity" in res.output


def test_relative_run_path_finds_its_test_samples(app, digits, monkeypatch):
    """`edgepool benchmark runs/x` from the run's parent folder (what `make demo` does) measures accuracy."""
    monkeypatch.chdir(digits.path.parent)
    res = invoke(app, digits.path.name, *FAST, "--json", "--no-save")
    assert res.exit_code == 0, res.output
    assert all(m["accuracy"] is not None and m["error"] is None for m in json.loads(res.stdout)["results"])

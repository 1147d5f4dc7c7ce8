"""`edgepool benchmark`: the table, --json, saved results, and one clear line per bad input."""

from __future__ import annotations

import json
import shutil
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


def test_table_fps_is_the_median_one_and_says_so(capsys):
    """A row reads median 17.9 µs: its FPS column is 1000 / median (55,866), labelled "FPS (median)",
    not 1000 / mean (which a few preempted runs drag down)."""
    from edgepool.bench.protocol import BenchmarkResult
    from edgepool.bench.stats import summarize
    from edgepool.cli._bench_view import benchmark_table

    s = summarize([0.0179] * 95 + [0.4] * 5)
    r = BenchmarkResult(name="int8", model_path="m.tflite", format="tflite", recipe="int8", device="local",
                        profile=None, model_size_bytes=1000, threads=1, delegates=[], input_mode="random",
                        latency_ms=s.to_dict(), runs=s.runs, fps_median=s.fps_median, fps_mean=s.fps_mean,
                        complete=True)
    benchmark_table([r])
    out = capsys.readouterr().out
    assert "FPS (median)" in out and "55,866" in out and f"{s.fps_mean:,.0f}" not in out


def test_table_says_which_rows_share_one_measurement(capsys):
    from dataclasses import replace

    from edgepool.bench.protocol import BenchmarkResult
    from edgepool.bench.stats import summarize
    from edgepool.cli._bench_view import benchmark_table

    s = summarize([0.05, 0.06, 0.07])
    first = BenchmarkResult(name="host-cpu", model_path="a/model.tflite", format="tflite", recipe="int8",
                            device="local", profile=None, model_size_bytes=1000, threads=1, delegates=[],
                            input_mode="samples", latency_ms=s.to_dict(), runs=3, fps_median=s.fps_median,
                            fps_mean=s.fps_mean, complete=True)
    benchmark_table([first, replace(first, name="pixel-8", model_path="b/model.tflite", measured_as="host-cpu")])
    rows = [ln for ln in capsys.readouterr().out.splitlines() if "pixel-8" in ln or "host-cpu" in ln]
    assert len(rows) == 2 and "same model as host-cpu" in rows[1] and "same model" not in rows[0]


def test_import_does_not_load_tensorflow():
    code = "import sys, edgepool.cli.benchmark, edgepool.bench.runner; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_run_directory_gives_one_leaderboard_and_saves(app, digits):
    before = set((digits.path / "benchmarks").glob("*.json")) if (digits.path / "benchmarks").exists() else set()
    res = invoke(app, digits.path, *FAST)
    assert res.exit_code == 0, res.output
    for text in ("float32", "int8", "median", "p95", "FPS (median)", "peak mem", "accuracy", "tflite"):
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


def test_malformed_device_address_is_bad_input(app, digits):
    res = invoke(app, digits.int8_export, "--device", "ssh:pi@raspberrypi.local")
    assert res.exit_code == 2 and "ssh://" in res.output and "later issue" not in res.output


def test_profile_this_machine_cannot_benchmark_for_is_a_device_error(app, digits):
    res = invoke(app, digits.int8_export, "--profile", "raspberry-pi-5")
    assert res.exit_code == 3 and "needs the ssh transport" in res.output and "later issue" not in res.output
    res = invoke(app, digits.int8_export, "--profile", "iphone-15-pro")
    assert res.exit_code == 3 and "Core ML" in res.output and "later issue" not in res.output


def test_bad_arguments(app, tmp_path):
    assert invoke(app, tmp_path / "nope.tflite").exit_code == 2
    res = invoke(app, tmp_path, "--runs", "0")  # the library names the option, the CLI its flag
    assert res.exit_code == 2 and "--runs must be >= 1" in res.output
    res = invoke(app, tmp_path, "--warmup-seconds", "-1")
    assert res.exit_code == 2 and "--warmup-seconds must be >= 0" in res.output
    res = invoke(app, tmp_path, "--affinity", "x")
    assert res.exit_code == 2 and "--affinity" in res.output


@pytest.mark.slow
def test_run_with_a_core_ml_export_notes_the_skip_and_measures_the_rest(app, digits, tmp_path):
    """The README tour's last step: `edgepool benchmark RUN` after `convert` made a Core ML export."""
    run = tmp_path / "run"
    shutil.copytree(digits.path, run, ignore=shutil.ignore_patterns("benchmarks"))
    exp = run / "exports" / "coreml-fp16"
    (exp / "model.mlpackage" / "Data").mkdir(parents=True)
    (exp / "model.mlpackage" / "Data" / "weight.bin").write_bytes(b"\0" * 3000)
    (exp / "model.mlpackage" / "Manifest.json").write_text("{}")
    (exp / "model.json").write_text(json.dumps({"format": "coreml", "file": "model.mlpackage", "recipe": "coreml-fp16"}))
    res = invoke(app, run, *FAST)
    assert res.exit_code == 0, res.output
    notes = [ln for ln in res.output.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "coreml-fp16" in notes[0] and "Core ML" in notes[0], res.output
    assert "float32" in res.output and "int8" in res.output and "error" not in res.output
    res = invoke(app, run, *FAST, "--json", "--no-save")
    assert res.exit_code == 0
    by_name = {m["name"]: m for m in json.loads(res.stdout)["results"]}
    assert by_name["coreml-fp16"]["skipped"] and by_name["coreml-fp16"]["model_size_bytes"] == 3002
    assert by_name["int8"]["latency_ms"]["median"] > 0
    res = invoke(app, exp, *FAST)  # named on its own: an error
    assert res.exit_code == 3 and "Core ML" in res.output


def test_relative_run_path_finds_its_test_samples(app, digits, monkeypatch):
    """`edgepool benchmark runs/x` from the run's parent folder (what `make demo` does) measures accuracy."""
    monkeypatch.chdir(digits.path.parent)
    res = invoke(app, digits.path.name, *FAST, "--json", "--no-save")
    assert res.exit_code == 0, res.output
    assert all(m["accuracy"] is not None and m["error"] is None for m in json.loads(res.stdout)["results"])

"""`edgepool inspect` / `edgepool estimate` through the real command functions (own Typer app, main's error group)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner


@pytest.fixture
def run():
    from edgepool.cli import estimate as estimate_cli
    from edgepool.cli import inspect as inspect_cli
    from edgepool.cli.main import _Group

    app = typer.Typer(cls=_Group, add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        pass

    inspect_cli.register(app)
    estimate_cli.register(app)
    runner = CliRunner()
    return lambda *a: runner.invoke(app, [str(x) for x in a], catch_exceptions=False)


def test_inspect_table_and_json(run, tflite_models):  # noqa: F811
    p = tflite_models.path("fused-pool")
    r = run("inspect", p, "--profile", "coral-usb")
    assert r.exit_code == 0, r.output
    assert "MAX_POOL_2D" in r.output and "Edge TPU (predicted)" in r.output and "fused RELU" in r.output
    r = run("inspect", p, "--json")
    d = json.loads(r.stdout)
    assert d["totals"]["macs"] > 0 and d["ops"][0]["op"] == "CONV_2D"


def test_estimate_json_and_help(run, tflite_models):  # noqa: F811
    r = run("estimate", tflite_models.path("mixed"), "--profile", "raspberry-pi-4", "--json")
    d = json.loads(r.stdout)
    assert d["kind"] == "estimate" and d["latency_ms"] == pytest.approx(d["macs"] / 96e9 * 1000)
    help_text = run("estimate", "--help").output
    assert "energy_mj" in help_text and "battery_wh" in help_text and "peak_gmacs" in help_text
    assert "bandwidth" not in help_text and "bandwidth" not in r.stdout
    text = run("estimate", tflite_models.path("mixed"), "--profile", "raspberry-pi-4")
    assert text.exit_code == 0 and "estimate" in text.output and "memory term" not in text.output


def test_export_folder(run, tflite_models, tmp_path):  # noqa: F811
    exp = tmp_path / "int8"
    exp.mkdir()
    (exp / "model.tflite").write_bytes(tflite_models.path("mixed").read_bytes())
    for cmd in (("inspect", exp, "--json"), ("estimate", exp, "--profile", "raspberry-pi-4", "--json")):
        r = run(*cmd)
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["macs" if cmd[0] == "estimate" else "totals"]


def test_estimate_of_a_core_ml_export_is_one_line_exit_2(run, tmp_path):
    exp = tmp_path / "coreml-fp16"
    (exp / "model.mlpackage" / "Data").mkdir(parents=True)
    (exp / "model.mlpackage" / "Manifest.json").write_text("{}")
    (exp / "model.json").write_text(json.dumps({"format": "coreml", "file": "model.mlpackage"}))
    r = run("estimate", exp, "--profile", "iphone-15-pro")
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert "Core ML" in lines[0] and "estimates exist only for .tflite models" in lines[0]
    assert "holds no exported model" not in r.output


def test_bad_input_exit_2(run, tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"garbage" * 10)
    r = run("inspect", bad)
    assert r.exit_code == 2 and "not a TFLite flatbuffer" in r.output
    r = run("inspect", tmp_path / "missing.tflite")
    assert r.exit_code == 2 and "does not exist" in r.output

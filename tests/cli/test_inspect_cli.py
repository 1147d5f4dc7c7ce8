"""`edgepool inspect` / `edgepool estimate` through the real command functions (own Typer app, main's error group)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from conftest_inspect import tflite_models  # noqa: E402,F401


@pytest.fixture
def run():
    from edgepool.cli import inspect as inspect_cli
    from edgepool.cli.main import _Group

    app = typer.Typer(cls=_Group, add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def _root() -> None:
        pass

    inspect_cli.register(app)
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


def test_bad_input_exit_2(run, tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"garbage" * 10)
    r = run("inspect", bad)
    assert r.exit_code == 2 and "not a TFLite flatbuffer" in r.output
    r = run("inspect", tmp_path / "missing.tflite")
    assert r.exit_code == 2 and "does not exist" in r.output

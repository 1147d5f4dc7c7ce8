from __future__ import annotations

import json
import shutil

import pytest


@pytest.fixture
def run_dir(tiny_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(tiny_run.path, dst)
    return dst


def test_recipes_list_and_show(cli):
    r = cli("recipes", "list", "--json")
    assert r.exit_code == 0 and "int8-qat" in {x["name"] for x in json.loads(r.stdout)}
    r = cli("recipes", "show", "edgetpu-int8")
    assert r.exit_code == 0 and "uint8" in r.stdout and "per_channel" in r.stdout
    assert "compute_precision" not in r.stdout  # only the keys that apply to a tflite recipe
    r = cli("recipes", "list")
    assert "int8 per-tensor" in r.stdout and "int8 per-channel" in r.stdout
    r = cli("recipes", "show", "nope")
    assert r.exit_code == 2 and "unknown recipe" in r.stderr


def test_export_verify_and_bad_inputs(cli, run_dir, tmp_path):
    r = cli("export", run_dir, "--recipe", "int8", "--json")
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)
    assert row["status"] == "pass" and row["format"] == "tflite"
    r = cli("verify", run_dir / "exports" / "int8", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["agreement"] == row["agreement"]
    r = cli("export", run_dir, "--recipe", "int8")
    assert r.exit_code == 2 and "already exists" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('schema_version = 1\ndescription = "x"\nformat = "tflite"\nwieghts = "int8"\n')
    r = cli("export", run_dir, "--recipe", bad)
    assert r.exit_code == 2 and "wieghts: unknown key" in r.stderr
    r = cli("export", tmp_path / "none", "--recipe", "int8")
    assert r.exit_code == 2 and "does not exist" in r.stderr
    (run_dir / "model.keras").unlink()
    r = cli("export", run_dir, "--recipe", "float16")
    assert r.exit_code == 2 and "no model.keras" in r.stderr
    assert not (run_dir / "exports" / "float16").exists()
    r = cli("quantize", run_dir, "--recipe", "int8")
    assert r.exit_code == 2 and "post-training" in r.stderr
    r = cli("verify", tmp_path)
    assert r.exit_code == 2 and "not an edgepool export" in r.stderr


@pytest.mark.slow
def test_convert_every_builtin_profile(cli, run_dir):
    r = cli("convert", run_dir, "--all", "--json")
    assert r.exit_code == 0, r.output
    rows = {x["target"]: x for x in json.loads(r.stdout)}
    assert {"host-cpu", "raspberry-pi-4", "raspberry-pi-5", "coral-usb", "coral-dev-board", "iphone-12", "iphone-15-pro", "pixel-8"} <= set(rows)
    for name, row in rows.items():
        assert row["status"] in ("pass", "not-compiled"), (name, row)
    assert rows["iphone-15-pro"]["format"] == "coreml"
    assert rows["coral-usb"]["recipe"] == "edgetpu-int8"
    # honest: no Edge TPU compiler here, so the Coral rows say so
    assert rows["coral-usb"]["status"] == "not-compiled" and "edgetpu_compiler" in rows["coral-usb"]["reason"]
    assert any("not compiled for Edge TPU" in n for n in rows["coral-usb"]["notes"])
    # without the compiler the op counts are edgepool's prediction, and say so
    assert any(n.startswith("Edge TPU (edgepool's prediction):") for n in rows["coral-usb"]["notes"])
    assert not any(n.startswith("Edge TPU: ") for n in rows["coral-usb"]["notes"])
    # a real .mlpackage reads back in inspect: its ops and the parameters Keras has after BN folding
    r = cli("inspect", run_dir / "exports" / "iphone-15-pro", "--json")
    assert r.exit_code == 0, r.output
    cm = json.loads(r.stdout)["coreml"]
    assert cm["kind"] == "mlProgram" and {"conv", "relu", "classify"} <= set(cm["op_counts"]) and cm["params"] > 0
    r = cli("convert", run_dir, "--profile", "iphone-12", "--image-input", "--force", "--json")
    assert r.exit_code == 0, r.output
    side = json.loads((run_dir / "exports" / "iphone-12" / "model.json").read_text())
    assert json.loads(r.stdout)[0]["status"] == "pass" and "image" in json.dumps(side["input"]).lower()
    r = cli("convert", run_dir, "--profile", "no-such-device")
    assert r.exit_code == 2 and "no-such-device" in r.stderr
    r = cli("convert", run_dir)
    assert r.exit_code == 2 and "--profile" in r.stderr


def test_coral_export_with_a_compiler_on_path(cli, run_dir, tmp_path, monkeypatch):
    """With edgetpu_compiler on PATH the export keeps model_edgetpu.tflite + log and points the sidecar at it.

    The compiler cannot be installed here (x86-64 Debian packages from Coral's own repository), so a
    stand-in on PATH copies the model and prints a log in the compiler's documented format; this checks
    edgepool's artifact layout, not the compiler.
    """
    from pathlib import Path

    log = Path(__file__).resolve().parents[1] / "fixtures" / "edgetpu" / "full_map_ops.log"
    exe = tmp_path / "bin" / "edgetpu_compiler"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\nout="$3"; model="$4"\ncp "$model" "$out/model_edgetpu.tflite"\ncat {log}\n')
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{exe.parent}:{__import__('os').environ['PATH']}")
    r = cli("convert", run_dir, "--profile", "coral-usb", "--json")
    assert r.exit_code == 0, r.output
    d = run_dir / "exports" / "coral-usb"
    side = json.loads((d / "model.json").read_text())
    assert side["format"] == "edgetpu-tflite" and side["file"] == "model_edgetpu.tflite" and side["cpu_file"] == "model.tflite"
    assert (d / "model_edgetpu.tflite").exists() and (d / side["edgetpu"]["log_path"]).exists()
    assert json.loads(r.stdout)[0]["status"] == "pass"

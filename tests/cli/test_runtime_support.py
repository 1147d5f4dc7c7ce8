"""An op version newer than a profile's runtime is a failure, not "fine": `inspect --profile`, `convert`,
`pipeline.export(profile=...)`; and where that runtime is installed here (the tflite-runtime 2.14 venv of
`tests/_tflite_runtime_env.py`), verification loads and runs the export in it too.

A dynamic-int8 export from TF 2.21 holds FULLY_CONNECTED v12, which needs TFLite 2.17; the Raspberry Pi
profiles run tflite-runtime 2.14, which refuses it ("Didn't find op for builtin opcode ...").
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgepool import pipeline
from edgepool.inspect import read_tflite
from edgepool.inspect.support import min_runtime_for_op, model_min_runtime
from edgepool.profiles import resolve
from edgepool.recipes import load_recipe
from edgepool.runs import load_run
from edgepool.types import Status

REPO = Path(__file__).resolve().parents[2]
PI4 = REPO / "edgepool" / "data" / "device_profiles" / "raspberry-pi-4.toml"


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """A copy of the tiny run with unverified dynamic-int8 and int8 exports (no profile)."""
    dst = tmp_path_factory.mktemp("rt") / "tiny"
    shutil.copytree(tiny_run.path, dst)
    run = load_run(dst)
    for name in ("dynamic-int8", "int8"):
        pipeline.export(run, load_recipe(name), verify=False)
    return run


def _copy_run(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run.path, dst, ignore=shutil.ignore_patterns("exports"))
    return load_run(dst)


def test_table_is_tflites_own_and_agrees_with_the_converter(exported):
    assert min_runtime_for_op("FULLY_CONNECTED", 12) == "2.17.0"
    assert min_runtime_for_op("FULLY_CONNECTED", 11) == "2.15.0"
    assert min_runtime_for_op("CONV_2D", 8) == "2.15.0"
    assert min_runtime_for_op("BROADCAST_TO", 1) is None  # version 1 does not exist
    m = read_tflite(exported.export_dir("dynamic-int8") / "model.tflite")
    # the converter writes the same map's answer into the file's metadata
    assert model_min_runtime(m) == m.min_runtime_version == "2.17.0"


def test_support_of_a_dynamic_int8_export_on_the_pi(exported):
    from edgepool.inspect.support import check_profile_support

    m = read_tflite(exported.export_dir("dynamic-int8") / "model.tflite")
    sup = check_profile_support(m, resolve("raspberry-pi-4"))
    (bad,) = [s for s in sup if s.supported is False]
    assert (bad.op, bad.version, bad.min_runtime) == ("FULLY_CONNECTED", 12, "2.17.0")
    assert "FULLY_CONNECTED v12 needs tflite-runtime >= 2.17.0" in bad.reason and "2.14" in bad.reason
    assert all(s.supported for s in sup if s is not bad)
    # ai-edge-litert numbers its releases apart from TensorFlow: not placed in the table, not "fine"
    host = check_profile_support(m, resolve("host-cpu"))
    assert all(s.supported is None for s in host) and "unknown" in host[-1].reason


def test_inspect_reports_the_unsupported_op_and_no_all_ops_run_line(exported, cli):
    r = cli("inspect", exported.export_dir("dynamic-int8"), "--profile", "raspberry-pi-4")
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "not supported on raspberry-pi-4" in text and "FULLY_CONNECTED v12 needs tflite" in text
    assert ">= 2.17.0, the profile has 2.14" in text
    assert "all ops" not in text
    d = json.loads(cli("inspect", exported.export_dir("dynamic-int8"), "--profile", "raspberry-pi-4", "--json").stdout)
    fc = [s for s in d["support"] if s["op"] == "FULLY_CONNECTED"]
    assert fc and fc[0]["supported"] is False and fc[0]["min_runtime"] == "2.17.0"
    ok = cli("inspect", exported.export_dir("int8"), "--profile", "raspberry-pi-4")
    assert "all ops run on raspberry-pi-4 (runtime 2.14)" in " ".join(ok.output.split())


def test_inspect_does_not_call_unknown_ops_fine(exported, cli, tmp_path, monkeypatch):
    """An op whose version the table does not know: reported as unknown, no "all ops run" sentence."""
    from edgepool.inspect import support

    monkeypatch.delitem(support._TABLE, "RESHAPE")
    r = cli("inspect", exported.export_dir("int8"), "--profile", "raspberry-pi-4")
    text = " ".join(r.output.split())
    assert r.exit_code == 0 and "all ops" not in text
    assert "unknown on raspberry-pi-4" in text and "RESHAPE v1" in text


@pytest.fixture
def pi4_dynamic(tmp_path, monkeypatch):
    """A user profile `raspberry-pi-4` (shadowing the built-in one) whose recipe is dynamic-int8."""
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "raspberry-pi-4.toml").write_text(PI4.read_text().replace('recipe = "int8"', 'recipe = "dynamic-int8"'))
    monkeypatch.setenv("EDGEPOOL_PROFILE_PATH", str(d))
    monkeypatch.delenv("EDGEPOOL_TFLITE_RUNTIMES", raising=False)
    prof = resolve("raspberry-pi-4")
    assert prof.recipe == "dynamic-int8"
    return prof


def test_convert_fails_an_export_the_profiles_runtime_cannot_load(exported, pi4_dynamic, cli, tmp_path):
    run = _copy_run(exported, tmp_path)
    r = cli("convert", run.path, "--profile", "raspberry-pi-4", "--json")
    assert r.exit_code == 1, r.output
    (row,) = json.loads(r.stdout)
    assert row["status"] == "fail" and row["recipe"] == "dynamic-int8"
    assert "FULLY_CONNECTED v12" in row["reason"] and "2.17.0" in row["reason"] and "2.14" in row["reason"]
    assert "int8" in row["hint"] and "--" not in row["reason"]
    v = json.loads((run.export_dir("raspberry-pi-4") / "verify.json").read_text())
    assert v["status"] == "fail" and v["runtime_support"]["unsupported"][0]["op"] == "FULLY_CONNECTED"
    text = cli("convert", run.path, "--profile", "raspberry-pi-4", "--force")
    assert text.exit_code == 1 and "FULLY_CONNECTED v12" in " ".join(text.output.split())


def test_export_with_a_profile_fails_even_unverified(exported, tmp_path):
    run = _copy_run(exported, tmp_path)
    o = pipeline.export(run, load_recipe("dynamic-int8"), profile=resolve("raspberry-pi-5"), verify=False)
    assert o.status is Status.FAIL and not o.passed
    assert "FULLY_CONNECTED v12 needs tflite-runtime >= 2.17.0" in o.reason and "raspberry-pi-5" in o.reason
    ok = pipeline.export(run, load_recipe("int8"), profile=resolve("raspberry-pi-5"), out=tmp_path / "int8", verify=False)
    assert ok.status is Status.UNVERIFIED and ok.unsupported_ops == []


@pytest.mark.slow
def test_verification_runs_the_export_in_the_profiles_runtime(exported, tmp_path, monkeypatch, tflite_runtime_py):
    """With tflite-runtime 2.14 pointed at, an int8 export for raspberry-pi-5 is run in it and passes; the
    dynamic-int8 export fails with the runtime's own message."""
    monkeypatch.setenv("EDGEPOOL_TFLITE_RUNTIMES", f"2.14={tflite_runtime_py}")
    run = _copy_run(exported, tmp_path)
    pi5 = resolve("raspberry-pi-5")
    good = pipeline.export(run, load_recipe("int8"), profile=pi5)
    rc = good.verification.details["runtime_check"]
    assert good.status is Status.PASS, good.reason
    assert rc["runtime"] == "tflite-runtime 2.14.0" and rc["status"] == "pass"
    # int8 kernels of two releases may round one output element differently: at most one output step apart
    step = good.export.sidecar["output"]["scale"]
    assert rc["max_abs_diff"] is not None and rc["max_abs_diff"] <= step * 1.001
    assert json.loads((good.export.path / "verify.json").read_text())["runtime_check"]["status"] == "pass"

    bad = pipeline.export(run, load_recipe("dynamic-int8"), profile=pi5, out=tmp_path / "dyn")
    rc = bad.verification.details["runtime_check"]
    assert bad.status is Status.FAIL and rc["status"] == "fail"
    assert "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'" in rc["reason"]
    assert "tflite-runtime 2.14.0" in bad.verification.reason and "Didn't find op" in bad.verification.reason


def test_runtimes_are_named_in_the_environment(monkeypatch, tmp_path):
    from edgepool.errors import InputError
    from edgepool.verify import configured_runtimes, profile_runtime

    assert configured_runtimes("2.14=/opt/rt214/bin/python, 2.17.1=/opt/rt217/bin/python") == {
        (2, 14, 0): Path("/opt/rt214/bin/python"), (2, 17, 1): Path("/opt/rt217/bin/python")}
    assert configured_runtimes("") == {}
    with pytest.raises(InputError, match="EDGEPOOL_TFLITE_RUNTIMES entry '/opt/python' is not VERSION=PYTHON") as e:
        configured_runtimes("/opt/python")
    assert "2.14=" in e.value.hint and "\n" not in e.value.message
    monkeypatch.setenv("EDGEPOOL_TFLITE_RUNTIMES", f"2.14={tmp_path / 'missing' / 'python'}")
    with pytest.raises(InputError, match="not an executable file"):
        profile_runtime(resolve("raspberry-pi-4"))
    assert profile_runtime(resolve("iphone-15-pro")) is None and profile_runtime(resolve("coral-usb")) is None
    assert profile_runtime(None) is None


def test_the_child_reports_a_refused_model_in_one_line(tmp_path):
    import subprocess
    import sys

    import numpy as np

    from edgepool.verify import _CHILD

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"TFL3" + bytes(60))
    np.save(tmp_path / "x.npy", np.zeros((1, 2), np.float32))
    p = subprocess.run([sys.executable, "-I", str(_CHILD), str(bad), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                       capture_output=True, text=True)
    assert p.returncode == 4 and json.loads(p.stdout.splitlines()[0])["runtime"] == "ai-edge-litert"
    assert p.stderr.strip().splitlines()[-1].startswith("error: ")


def test_export_with_profile_flag_fails_an_op_the_runtime_cannot_load(cli, tiny_run, tmp_path):
    """`export --profile raspberry-pi-4 --recipe dynamic-int8`: FULLY_CONNECTED v12 is newer than tflite-runtime 2.14."""
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run.path, run)
    r = cli("export", run, "--profile", "raspberry-pi-4", "--recipe", "dynamic-int8", "--json")
    assert r.exit_code == 1, r.output
    row = json.loads(r.stdout)
    assert row["status"] == "fail" and "FULLY_CONNECTED" in row["reason"] and "2.14" in row["reason"]
    assert (run / "exports" / "raspberry-pi-4" / "model.tflite").exists()
    r = cli("export", run, "--profile", "raspberry-pi-4", "--json", "--out", tmp_path / "pi4-default")
    assert r.exit_code == 0, r.output  # the profile's own recipe (int8) loads there
    assert json.loads(r.stdout)["recipe"] == "int8"

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np


def test_import_cli_does_not_load_tensorflow():
    code = "import sys, edgepool, edgepool.cli.main; sys.exit(1 if {'tensorflow', 'tf_keras', 'coremltools'} & set(sys.modules) else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_help_and_version(cli):
    r = cli("--help")
    assert r.exit_code == 0 and "train" in r.stdout
    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.startswith("edgepool ")


def test_train_and_evaluate(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("train", "--data", "digits", "--model", "tiny", "--epochs", "2", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["run"] == str(out) and 0 <= summary["test_accuracy"] <= 1
    r = cli("evaluate", out, "--json")
    assert r.exit_code == 0
    ev = json.loads(r.stdout)
    assert ev["accuracy"] == summary["test_accuracy"] and len(ev["confusion_matrix"]) == 10
    r = cli("evaluate", out)
    assert r.exit_code == 0 and "confusion matrix" in r.stdout
    # refusing to overwrite happens before training
    r = cli("train", "--data", "digits", "--model", "tiny", "--epochs", "1", "--out", out)
    assert r.exit_code == 2 and "already exists" in r.stderr and "--force" in r.stderr


def test_evaluate_on_other_data(cli, tiny_run, tmp_path):
    p = tmp_path / "d.npz"
    x, y = tiny_run.test_data()
    np.savez(p, x=x, y=y)
    r = cli("evaluate", tiny_run.path, "--data", p, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["samples"] == len(y)


def test_bad_inputs(cli, tmp_path):
    cases = [
        (("train", "--data", "nope"), "neither a built-in"),
        (("train", "--data", "digits", "--model", "huge"), "unknown model"),
        (("train", "--data", "digits", "--pool", "median"), "unknown pool"),
        (("train", "--data", "digits", "--image-size", "big"), "not a size"),
        (("train", "--data", "digits", "--channels", "2"), "--channels"),
        (("evaluate", tmp_path / "missing"), "does not exist"),
        (("evaluate", tmp_path), "not an edgepool run"),
    ]
    for args, msg in cases:
        r = cli(*args)
        assert r.exit_code == 2, (args, r.output)
        assert msg in r.stderr and "hint:" in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_models_table(cli):
    r = cli("models", "--json")
    assert r.exit_code == 0
    rows = {m["name"]: m for m in json.loads(r.stdout)["models"]}
    assert {"tiny", "small", "small-ds"} <= set(rows) and rows["small"]["params"] <= 40_000


def test_public_api_names_resolve():
    import edgepool

    for name in edgepool.__all__:
        assert getattr(edgepool, name) is not None, name

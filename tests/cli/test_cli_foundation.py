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
        (("train", "--data", "digits", "--channels", "2"), "channels must be 1 or 3"),
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
    """Each name in `edgepool.__all__` is the class or function defined in the module `_API` names."""
    import importlib
    import importlib.metadata
    import inspect
    import pkgutil

    import pytest

    import edgepool

    assert edgepool.__version__ == importlib.metadata.version("edgepool")
    assert set(edgepool.__all__) == {"__version__", *edgepool._API}
    # importing edgepool.x sets the attribute `x` on the package, hiding a lazy public name `x` for good
    submodules = {m.name for m in pkgutil.iter_modules(edgepool.__path__)}
    wrong = [f"{name}: shadowed by the module edgepool.{name} once that is imported"
             for name in edgepool._API if name in submodules]
    for name, module_name in edgepool._API.items():
        obj = getattr(edgepool, name)
        defined_as = edgepool._ALIASES.get(name, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            wrong.append(f"{name}: a {type(obj).__name__}, not a class or function")
            continue
        if getattr(importlib.import_module(module_name), defined_as) is not obj:
            wrong.append(f"{name}: not {module_name}.{defined_as}")
        if obj.__name__ != defined_as:
            wrong.append(f"{name}: {module_name}.{defined_as} is {obj.__module__}.{obj.__name__}")
        if not (obj.__module__ == module_name or obj.__module__.startswith(module_name + ".")):
            wrong.append(f"{name}: defined in {obj.__module__}, _API says {module_name}")
    assert not wrong, "\n".join(wrong)
    with pytest.raises(AttributeError, match="no attribute 'not_a_public_name'"):
        edgepool.not_a_public_name  # noqa: B018

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepool.errors import ExistsError, ModelError
from edgepool.runs import load_run, staged_dir


def test_staged_dir_is_atomic(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_dir(target):
        raise RuntimeError("boom")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with staged_dir(target) as d:
        (d / "a").write_text("1")
    assert (target / "a").read_text() == "1"
    with pytest.raises(ExistsError):
        with staged_dir(target):
            pass
    with staged_dir(target, force=True) as d:
        (d / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_run_directory_contents(tiny_run):
    names = {p.relative_to(tiny_run.path).as_posix() for p in tiny_run.path.rglob("*") if p.is_file()}
    assert {"manifest.json", "model.keras", "history.json", "training_curve.png", "confusion_matrix.png", "data/test.npz", "data/calib.npz"} <= names
    m = json.loads((tiny_run.path / "manifest.json").read_text())
    assert m["data"]["name"] == "digits" and len(m["data"]["fingerprint"]) == 16
    assert m["data"]["split"]["sizes"]["test"] == len(tiny_run.test_data()[1])
    assert m["input"]["scale"] == pytest.approx(1 / 255) and m["input"]["offset"] == 0
    assert len(m["metrics"]["per_class_accuracy"]) == 10 and "tensorflow" in m["versions"]
    assert (tiny_run.path / "training_curve.png").read_bytes()[:4] == b"\x89PNG"
    # the calibration set is drawn from the training split: no test image in it
    xt, _ = tiny_run.test_data()
    xc, _ = tiny_run.calib_data()
    assert len(xc) == 100
    # the reloaded model gives the recorded test accuracy
    from edgepool.models import load_run_model

    model = load_run_model(tiny_run)
    x, y = tiny_run.test_data()
    acc = float(np.mean(np.argmax(model.predict(tiny_run.normalize(x), verbose=0), 1) == y))
    assert acc == pytest.approx(m["metrics"]["test_accuracy"])


def test_load_run_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(ModelError, match="not an edgepool run"):
        load_run(tmp_path)
    (tmp_path / "manifest.json").write_text("{bad")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_run(tmp_path)


def test_written_files_follow_the_umask(tmp_path):
    """Saved models are readable by a web server or a device-sync tool: 0644 under umask 022, not 0600."""
    import os

    from edgepool.runs import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "b.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o600


def test_stored_paths_resolve_from_the_storing_folder(tmp_path, monkeypatch):
    from edgepool.runs import resolve_stored, stored_path

    run, export = tmp_path / "runs" / "r", tmp_path / "runs" / "r" / "exports" / "int8"
    text = stored_path(run, export)
    assert text == "../.."
    monkeypatch.chdir("/")
    assert resolve_stored(text, export) == run
    assert resolve_stored(str(run), tmp_path / "elsewhere") == run

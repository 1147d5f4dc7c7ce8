"""runs.plan_replace / write_run(force): replacing a run removes what was derived from the old model
(exports, QAT models), keeps its benchmark history and any file edgepool did not write, and touches
nothing outside the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgepool import runs
from edgepool.errors import ExistsError, InputError


def _fake_run(d: Path) -> Path:
    """A run directory as train / export / quantize / benchmark leave it, plus a user's own files."""
    d.mkdir(parents=True)
    (d / runs.MANIFEST).write_text(json.dumps({"kind": "edgepool-run", "name": d.name, "created": "2024-01-01T00:00:00+00:00"}))
    for name in (runs.MODEL_FILE, runs.HISTORY, runs.TRAINING_CURVE, runs.CONFUSION_MATRIX, runs.TEST_DATA, runs.CALIB_DATA):
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(b"old")
    for name in ("int8", "host-cpu", "coral-usb"):
        (d / runs.EXPORTS / name).mkdir(parents=True)
        (d / runs.EXPORTS / name / runs.SIDECAR).write_text("{}")
        (d / runs.EXPORTS / name / "model.tflite").write_bytes(b"tfl3")
    (d / runs.QAT / "int8-qat").mkdir(parents=True)
    (d / runs.QAT / "int8-qat" / "qat.json").write_text("{}")
    (d / runs.BENCHMARKS).mkdir()
    for i in range(4):
        (d / runs.BENCHMARKS / f"2024010{i}-000000.json").write_text(json.dumps({"n": i}))
    (d / "notes.md").write_text("my notes")
    (d / runs.EXPORTS / "README.txt").write_text("how I deploy these")
    return d


def test_plan_names_what_goes_and_what_stays(tmp_path):
    run = _fake_run(tmp_path / "r")
    plan = runs.plan_replace(run)
    assert plan.exports == ["coral-usb", "host-cpu", "int8"] and plan.qat == ["int8-qat"]
    assert plan.benchmarks == [f"benchmarks/2024010{i}-000000.json" for i in range(4)]
    assert plan.other == ["exports/README.txt", "notes.md"]
    assert plan.summary() == (
        f"replacing run {run}: removing the model, 3 exports (coral-usb, host-cpu, int8) and 1 QAT model (int8-qat); "
        "keeping 4 benchmark results and 2 other files (exports/README.txt, notes.md)"
    )
    d = plan.to_dict()
    assert d["removed"] == {"exports": plan.exports, "qat": plan.qat} and d["kept"]["benchmarks"] == plan.benchmarks
    # nothing there: nothing to say
    empty = runs.plan_replace(tmp_path / "new")
    assert not empty.exists and empty.summary() == ""


def test_plan_refuses_a_folder_that_is_not_a_run(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not an edgepool run") as e:
        runs.plan_replace(docs)
    assert not isinstance(e.value, ExistsError) and "1 file" in e.value.message
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        runs.plan_replace(tmp_path / "f.txt")
    other = tmp_path / "other"
    other.mkdir()
    (other / runs.MANIFEST).write_text('{"kind": "something-else"}')
    with pytest.raises(InputError, match="not an edgepool run"):
        runs.plan_replace(other)
    (tmp_path / "empty").mkdir()
    assert runs.plan_replace(tmp_path / "empty").summary() == ""  # an empty folder holds nothing to lose


def _write(out: Path, force: bool, fail: bool = False) -> runs.Run:
    def save_model(path: Path) -> None:
        if fail:
            raise RuntimeError("disk full")
        path.write_bytes(b"new")

    return runs.write_run(out, manifest={"kind": "edgepool-run", "name": out.name}, save_model=save_model,
                          arrays={runs.TEST_DATA: {"x": np.zeros((2, 2)), "y": np.zeros(2)}}, files={}, records={}, force=force)


def test_write_run_force_keeps_benchmarks_and_user_files(tmp_path):
    run = _fake_run(tmp_path / "r")
    (tmp_path / "beside.txt").write_text("not in the run")
    new = _write(run, force=True)
    assert (run / runs.MODEL_FILE).read_bytes() == b"new"
    assert not (run / runs.QAT).exists() and [p.name for p in (run / runs.EXPORTS).iterdir()] == ["README.txt"]
    assert [json.loads(p.read_text())["n"] for p in sorted((run / runs.BENCHMARKS).iterdir())] == [0, 1, 2, 3]
    assert (run / "notes.md").read_text() == "my notes" and (tmp_path / "beside.txt").exists()
    assert not (run / runs.HISTORY).exists()  # edgepool's own old files go with the old model
    rec = new.manifest["replaced"]
    assert rec["removed"]["exports"] == ["coral-usb", "host-cpu", "int8"] and len(rec["kept"]["benchmarks"]) == 4
    assert rec["previous_created"] == "2024-01-01T00:00:00+00:00"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beside.txt", "r"]  # no staging or old folder left


def test_write_run_failure_leaves_the_old_run_whole(tmp_path):
    run = _fake_run(tmp_path / "r")
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    with pytest.raises(RuntimeError):
        _write(run, force=True, fail=True)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
    assert (run / runs.MODEL_FILE).read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_write_run_refuses_without_force_and_never_replaces_a_non_run(tmp_path):
    run = _fake_run(tmp_path / "r")
    with pytest.raises(ExistsError):
        _write(run, force=False)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="not an edgepool run"):
        _write(docs, force=True)
    assert (docs / "thesis.tex").read_text() == "years of work"

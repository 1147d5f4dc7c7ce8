"""pipeline.train_run: an interrupted training keeps a run, and a resumed one finishes it."""

from __future__ import annotations

import json

import pytest

from edgepool import runs
from edgepool.datasets import load_dataset
from edgepool.errors import InputError, ModelError
from edgepool.models import preset
from edgepool.pipeline import train_run
from edgepool.training import TrainConfig, load_resume
from edgepool.types import ProgressEvent


def _stop_after(n: int):
    def cb(ev: ProgressEvent) -> None:
        if ev.done == n:
            raise KeyboardInterrupt

    return cb


def test_interrupted_run_is_kept_and_resumed(tmp_path):
    ds = load_dataset("digits")
    cfg = TrainConfig(epochs=4, patience=10, seed=0, calibration_samples=50)
    run = train_run(preset("tiny"), ds, cfg, tmp_path / "r", progress=_stop_after(2))
    t = run.manifest["training"]
    assert t["interrupted"] is True and t["epochs_run"] == 2 and t["best_epoch"] in (1, 2)
    assert run.model_path.is_file() and run.test_data()[0].shape[0] > 0
    first = json.loads((run.path / runs.HISTORY).read_text())

    state = load_resume(run.path)
    assert state.epochs_done == 2 and state.config == cfg and state.spec == preset("tiny")
    events: list[ProgressEvent] = []
    done = train_run(state.spec, state.dataset, state.config, run.path, resume=state, progress=events.append)
    assert [e.done for e in events] == [3, 4]
    t = done.manifest["training"]
    assert t["interrupted"] is False and t["epochs_run"] == 4 and t["resumed_at_epochs"] == [2]
    history = json.loads((done.path / runs.HISTORY).read_text())
    assert len(history["loss"]) == 4 and history["loss"][:2] == first["loss"]
    assert done.manifest["data"]["fingerprint"] == run.manifest["data"]["fingerprint"]
    assert done.manifest["timings"]["train_s"] > run.manifest["timings"]["train_s"]

    # a finished run is not resumed
    with pytest.raises(ModelError, match="was not interrupted"):
        load_resume(done.path)


def test_train_run_refuses_a_folder_that_is_not_a_run_before_training(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("years of work")
    ds = load_dataset("digits")
    with pytest.raises(InputError, match="not an edgepool run"):
        train_run(preset("tiny"), ds, TrainConfig(epochs=1), docs, force=True,
                  progress=lambda ev: pytest.fail("trained before refusing"))
    assert (docs / "thesis.tex").read_text() == "years of work"

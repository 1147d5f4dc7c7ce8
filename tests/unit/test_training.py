"""training.py: deterministic training, early stopping, progress events, the manifest record, evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from edgepool.datasets import load_dataset
from edgepool.models import preset
from edgepool.training import TrainConfig, calibration_indices, evaluate_logits, run_manifest, train
from edgepool.types import ProgressEvent


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_training_is_deterministic_for_a_seed(digits):
    a, b = (train(preset("tiny"), digits, TrainConfig(epochs=2, seed=5)) for _ in range(2))
    assert a.history == b.history
    assert all(np.array_equal(x, y) for x, y in zip(a.model.get_weights(), b.model.get_weights(), strict=True))


def test_progress_events_and_early_stopping(digits):
    events: list[ProgressEvent] = []
    r = train(preset("tiny"), digits, TrainConfig(epochs=6, patience=1, seed=0, learning_rate=1e-6), progress=events.append)
    # a learning rate too small to improve: training stops after patience epochs without a new best
    assert r.metrics["epochs_run"] < 6 and len(events) == r.metrics["epochs_run"]
    assert all(e.stage == "train" and e.total == 6 for e in events)
    assert [e.done for e in events] == list(range(1, len(events) + 1))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(events[-1].data)


def test_manifest_record_and_calibration_from_the_training_split(digits):
    r = train(preset("tiny"), digits, TrainConfig(epochs=1, seed=1, calibration_samples=50))
    calib = calibration_indices(r)
    assert len(calib) == 50 and set(calib) <= set(r.split.train) and not set(calib) & set(r.split.test)
    m = run_manifest(r, "x", len(calib), {"model": "model.keras"})
    assert m["data"]["calibration_samples"] == 50 and m["training"]["seed"] == 1
    assert m["metrics"]["test_accuracy"] == r.metrics["test"]["accuracy"] and m["model"]["file"] == "model.keras"


def test_evaluate_logits_by_hand():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    res = evaluate_logits(logits, np.array([0, 1, 1, 1]), 2)
    assert res["accuracy"] == 0.75 and res["confusion_matrix"] == [[1, 0], [1, 2]]
    assert res["per_class_accuracy"] == [1.0, pytest.approx(2 / 3)]

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


def _stop_after(n: int):
    def cb(ev: ProgressEvent) -> None:
        if ev.done == n:
            raise KeyboardInterrupt

    return cb


def test_interrupt_in_the_progress_callback_keeps_the_epochs_done(digits):
    r = train(preset("tiny"), digits, TrainConfig(epochs=5, seed=0), progress=_stop_after(2))
    assert r.interrupted and r.metrics["epochs_run"] == 2 and len(r.history["loss"]) == 2
    assert r.best_epoch in (1, 2) and r.metrics["test"]["accuracy"] is not None
    m = run_manifest(r, "x", 1, {"model": "model.keras"})
    assert m["training"]["interrupted"] is True and m["training"]["epochs_run"] == 2
    assert m["training"]["best_epoch"] == r.best_epoch


def _digits_split(digits):
    from edgepool.datasets import NORM_OFFSET, NORM_SCALE
    from edgepool.numeric import normalize

    x = normalize(digits.x, NORM_SCALE, NORM_OFFSET)
    return (x[:1400], digits.y[:1400]), (x[1400:], digits.y[1400:])


def test_interrupt_inside_model_fit_restores_the_best_epoch(digits):
    from edgepool.models import build_model
    from edgepool.training import fit

    tr, va = _digits_split(digits)
    model = build_model(preset("tiny"), digits.input_shape, 10, seed=0)
    real_fit, weights_after = model.fit, []

    def fit_then_interrupt(*a, **k):  # Ctrl-C arriving while Keras trains the third epoch
        if len(weights_after) == 2:
            raise KeyboardInterrupt
        h = real_fit(*a, **k)
        weights_after.append(model.get_weights())
        return h

    model.fit = fit_then_interrupt
    h = fit(model, tr, va, TrainConfig(epochs=5, seed=0), keep_on_interrupt=True)
    assert h.pop("interrupted") == [1.0] and len(h["loss"]) == 2
    best = int(h["best_epoch"][0])
    assert best == 1 + max(range(2), key=lambda i: (h["val_accuracy"][i], -h["val_loss"][i]))
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights_after[best - 1], strict=True))


def test_an_interrupt_propagates_unless_asked_or_before_the_first_epoch(digits, monkeypatch):
    from edgepool import training
    from edgepool.models import build_model
    from edgepool.training import fit

    tr, va = _digits_split(digits)
    model = build_model(preset("tiny"), digits.input_shape, 10, seed=0)
    with pytest.raises(KeyboardInterrupt):  # QAT fine-tunes (the default) do not keep a partial model
        fit(model, tr, va, TrainConfig(epochs=3), progress=_stop_after(1))

    def build_interrupted(*a, **k):  # Ctrl-C while Keras trains the first epoch
        m = build_model(*a, **k)

        def fit_interrupted(*a, **k):
            raise KeyboardInterrupt

        m.fit = fit_interrupted
        return m

    monkeypatch.setattr(training, "build_model", build_interrupted)
    with pytest.raises(KeyboardInterrupt):  # nothing finished: nothing to keep
        train(preset("tiny"), digits, TrainConfig(epochs=3))


def test_resumed_fit_continues_the_schedule_and_the_data_order(digits):
    from edgepool.models import build_model
    from edgepool.training import _shift_batch, _skip_epoch_draws, fit

    # the data order of epoch N+1 is the one an uninterrupted run would use
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    x = np.zeros((50, 8, 8, 1), np.float32)
    for _ in range(2):
        a.permutation(50)
        _shift_batch(x, 1, a)
        _skip_epoch_draws(b, 50, 1, augment=True)
    assert np.array_equal(a.permutation(50), b.permutation(50))

    tr, va = _digits_split(digits)
    model = build_model(preset("tiny"), digits.input_shape, 10, seed=0)
    first = fit(model, tr, va, TrainConfig(epochs=4, batch_size=128, seed=0), progress=_stop_after(2), keep_on_interrupt=True)
    first.pop("interrupted")
    events = []
    h = fit(model, tr, va, TrainConfig(epochs=4, batch_size=128, seed=0), progress=events.append,
            initial_history=first, initial_best_epoch=int(first.pop("best_epoch")[0]))
    steps = int(np.ceil(len(tr[0]) / 128))
    assert [e.done for e in events] == [3, 4] and len(h["loss"]) == 4 and h["loss"][:2] == first["loss"]
    assert int(model.optimizer.iterations) == 4 * steps  # the cosine schedule went on from epoch 3, not from 1


def test_train_config_ranges():
    from edgepool.errors import InputError

    TrainConfig().validate()
    cases = [
        (dict(epochs=0), r"epochs must be >= 1 \(got 0\)"),
        (dict(batch_size=0), r"batch size must be >= 1 \(got 0\)"),
        (dict(learning_rate=-1.0), r"learning rate must be > 0 \(got -1\)"),
        (dict(learning_rate=float("nan")), r"learning rate must be > 0 \(got nan\)"),
        (dict(learning_rate=5.0), r"learning rate must be <= 1 \(got 5\)"),
        (dict(patience=0), r"patience must be >= 1 \(got 0\)"),
        (dict(seed=-1), r"seed must be >= 0 \(got -1\)"),
        (dict(val_fraction=1.0), r"validation fraction must be < 1 \(got 1\)"),
        (dict(calibration_samples=0), r"calibration samples must be >= 1 \(got 0\)"),
        (dict(max_shift=-2), r"max shift must be >= 0 \(got -2\)"),
    ]
    for kwargs, match in cases:
        with pytest.raises(InputError, match=match) as e:
            TrainConfig(**kwargs).validate()
        assert e.value.hint
    with pytest.raises(InputError, match=r"^--lr must be > 0 \(got -1\)"):
        TrainConfig(learning_rate=-1.0).validate(names={"learning_rate": "--lr"})
    with pytest.raises(InputError, match="epochs must be"):
        train(preset("tiny"), load_dataset("digits"), TrainConfig(epochs=0))


def test_model_spec_width_range():
    import dataclasses

    from edgepool.errors import InputError

    for w, match in ((0.0, r"width must be > 0 \(got 0\)"), (-1.0, r"width must be > 0"), (9.0, r"width must be <= 8 \(got 9\)")):
        with pytest.raises(InputError, match=match) as e:
            dataclasses.replace(preset("tiny"), width=w).validate()
        assert "(0, 8]" in e.value.hint
    with pytest.raises(InputError, match=r"^--width must be > 0 \(got 0\)"):
        dataclasses.replace(preset("tiny"), width=0.0).validate(names={"width": "--width"})

"""train(spec, dataset) -> TrainResult. Returns objects; writes no files (runs.py does).

Ctrl-C during training stops it the way Keras users expect: the epochs finished so far are kept, the
best of them restored, and the result says `interrupted`; `load_resume(run)` picks such a run up again.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import NORM_OFFSET, NORM_SCALE, Dataset, Split, load_recorded, split
from .errors import ModelError
from .models import ModelSpec, build_model, check_range, count_macs, count_params
from .numeric import normalize, softmax
from .types import ProgressEvent, ProgressFn


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    patience: int = 20  # with cosine decay the last, low-LR epochs help most: stop only on a long stall
    seed: int = 0
    augment: bool = True
    max_shift: int | None = None  # pixels; default ~ 1/14 of the image side
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    calibration_samples: int = 500

    def validate(self, names: Mapping[str, str] | None = None) -> None:
        """Check every number's range; `names` maps a field to what the caller calls it (a CLI flag)."""
        check_range("epochs", self.epochs, 1, names=names, hint="train at least one epoch")
        check_range("batch_size", self.batch_size, 1, names=names, hint="use a positive batch size, e.g. 64")
        check_range("learning_rate", self.learning_rate, 0, 1, names=names, low_open=True,
                    hint="the peak Adam learning rate: use a value in (0, 1], e.g. 0.003")
        check_range("patience", self.patience, 1, names=names, hint="stop after at least one epoch without a new best")
        check_range("seed", self.seed, 0, 2**32 - 1, names=names, hint="use an integer in [0, 4294967295]")
        if self.max_shift is not None:
            check_range("max_shift", self.max_shift, 0, names=names, hint="shift images by 0 or more pixels")
        check_range("val_fraction", self.val_fraction, 0, 1, names={"val_fraction": "validation fraction", **(names or {})},
                    low_open=True, high_open=True, hint="use a fraction in (0, 1)")
        check_range("test_fraction", self.test_fraction, 0, 1, names=names, low_open=True, high_open=True,
                    hint="use a fraction in (0, 1)")
        check_range("calibration_samples", self.calibration_samples, 1, names=names, hint="keep at least one calibration sample")


HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class TrainResult:
    model: Any
    spec: ModelSpec
    dataset: Dataset
    split: Split
    config: TrainConfig
    history: dict[str, list[float]]
    metrics: dict[str, Any]
    timings: dict[str, float]
    best_epoch: int
    input_spec: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False  # stopped by Ctrl-C: `history` holds the epochs done, `model` the best of them
    resumed_at_epochs: list[int] = field(default_factory=list)  # the epochs an interrupted run was picked up after


@dataclass
class Resume:
    """An interrupted run, loaded to go on training (`load_resume`): its spec, data, config, model and history."""

    path: Path
    spec: ModelSpec
    dataset: Dataset
    config: TrainConfig
    model: Any  # the best weights so far
    history: dict[str, list[float]]
    best_epoch: int
    resumed_at_epochs: list[int]
    timings: dict[str, float]

    @property
    def epochs_done(self) -> int:
        return len(self.history["loss"])


def evaluate_logits(logits: np.ndarray, y: np.ndarray, num_classes: int) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion matrix (rows: true, cols: predicted)."""
    pred = np.argmax(logits, axis=1)
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (y, pred), 1)
    per_class = [float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None for i in range(num_classes)]
    return {"accuracy": float(np.mean(pred == y)) if len(y) else None, "per_class_accuracy": per_class, "confusion_matrix": cm.tolist(), "samples": int(len(y))}


def _shift_batch(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Random integer translations in [-max_shift, max_shift], zero-filled (no wrap-around)."""
    out = np.zeros_like(x)
    n, h, w, _ = x.shape
    dys = rng.integers(-max_shift, max_shift + 1, n)
    dxs = rng.integers(-max_shift, max_shift + 1, n)
    for i in range(n):
        dy, dx = dys[i], dxs[i]
        out[i, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[i, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    return out


def _skip_epoch_draws(rng: np.random.Generator, n: int, max_shift: int, augment: bool) -> None:
    """Advance `rng` past one epoch's draws (the permutation, then `_shift_batch`'s), drawing the same numbers."""
    rng.permutation(n)
    if augment:
        rng.integers(-max_shift, max_shift + 1, n)
        rng.integers(-max_shift, max_shift + 1, n)


def fit(
    model: Any,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    cfg: TrainConfig,
    progress: ProgressFn | None = None,
    teacher: Any = None,
    stage: str = "train",
    *,
    keep_on_interrupt: bool = False,
    initial_history: Mapping[str, list[float]] | None = None,
    initial_best_epoch: int = 0,
) -> dict[str, list[float]]:
    """Train `model` in place (Adam + cosine decay, shift augmentation, early stopping on validation).

    The best epoch's weights (by validation accuracy, then loss) are restored at the end. Works for
    float and TFMOT quantization-aware models alike. With a `teacher`, the targets are the teacher's
    softmax on the same (augmented) images instead of the labels: distillation, so the student learns
    to agree with the teacher, and "accuracy" is top-1 agreement with it.

    `keep_on_interrupt`: a KeyboardInterrupt (in Keras' fit, in evaluation or in `progress`) ends
    training like early stopping does: the best weights of the epochs finished are restored and the
    history gets `"interrupted": [1.0]`. Without it, or before any epoch finished, it propagates.
    `initial_history` / `initial_best_epoch` go on from an interrupted fit whose best weights `model`
    holds: from the next epoch, at the same point of the learning-rate schedule and data order.
    """
    from ._tf import keras, quiet_stderr

    k = keras()
    (xtr, ytr), (xva, yva) = train, val
    steps_per_epoch = int(np.ceil(len(xtr) / cfg.batch_size))
    schedule = k.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=max(1, cfg.epochs * steps_per_epoch), alpha=0.02)
    loss = k.losses.CategoricalCrossentropy(from_logits=True) if teacher is not None else k.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=k.optimizers.Adam(schedule), loss=loss, metrics=["accuracy"])

    def targets(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if teacher is None:
            return y
        with quiet_stderr():
            logits = teacher.predict(x, batch_size=512, verbose=0)
        return softmax(logits).astype(np.float32)

    max_shift = cfg.max_shift if cfg.max_shift is not None else max(1, round(min(xtr.shape[1:3]) / 14))
    rng = np.random.default_rng(cfg.seed)
    # one record per finished epoch; the list is replaced (never appended to) so that an interrupt
    # lands either before or after an epoch is committed, never half-way
    prior = initial_history or {}
    records = [dict(zip(HISTORY_KEYS, row, strict=True)) for row in zip(*(prior.get(key, []) for key in HISTORY_KEYS), strict=True)]
    start = len(records)
    best_epoch = initial_best_epoch if start else 0
    best = (records[best_epoch - 1]["val_accuracy"], records[best_epoch - 1]["val_loss"]) if best_epoch else (-1.0, np.inf)
    best_weights = model.get_weights()
    stale = start - best_epoch
    if start:
        model.optimizer.iterations.assign(start * steps_per_epoch)  # the schedule goes on where it stopped
        for _ in range(start):
            _skip_epoch_draws(rng, len(xtr), max_shift, cfg.augment)
    interrupted = False
    try:
        yva_t = targets(xva, yva)
        for epoch in range(start, cfg.epochs):
            if stale >= cfg.patience:
                break
            order = rng.permutation(len(xtr))
            xe = xtr[order]
            if cfg.augment:
                xe = _shift_batch(xe, max_shift, rng)
            with quiet_stderr():  # tf.data graph-version chatter on fd 2
                h = model.fit(xe, targets(xe, ytr[order]), batch_size=cfg.batch_size, epochs=1, verbose=0, shuffle=False)
                vl, va = model.evaluate(xva, yva_t, batch_size=256, verbose=0)
            logs = {"loss": float(h.history["loss"][0]), "accuracy": float(h.history["accuracy"][0]),
                    "val_loss": float(vl), "val_accuracy": float(va)}
            better = (va, -vl) > (best[0], -best[1])
            weights = model.get_weights() if better else best_weights
            records, best, best_weights, best_epoch, stale = (  # commit the epoch in one step
                records + [logs], (va, vl) if better else best, weights, epoch + 1 if better else best_epoch, 0 if better else stale + 1)
            if progress:
                progress(ProgressEvent(stage, epoch + 1, cfg.epochs, data=logs))
    except KeyboardInterrupt:
        if not keep_on_interrupt or not records:
            raise
        interrupted = True
    model.set_weights(best_weights)
    history: dict[str, list[float]] = {key: [r[key] for r in records] for key in HISTORY_KEYS}
    history["best_epoch"] = [float(best_epoch)]
    history["best_val_accuracy"] = [float(best[0])]
    if interrupted:
        history["interrupted"] = [1.0]
    return history


def train(
    spec: ModelSpec,
    dataset: Dataset,
    config: TrainConfig | None = None,
    progress: ProgressFn | None = None,
    *,
    resume: Resume | None = None,
) -> TrainResult:
    """Train `spec` on `dataset`; deterministic for a given seed on the same machine.

    A KeyboardInterrupt after the first epoch ends training early with the best weights so far, and
    the result is marked `interrupted` (its test metrics are those of the weights kept). With `resume`
    (from `load_resume`), training goes on from the interrupted run's model and epoch instead.
    """
    from ._tf import keras, quiet_stderr, tf

    cfg = config or TrainConfig()
    cfg.validate()
    spec.validate()
    k = keras()
    tfm = tf()
    t0 = time.perf_counter()
    k.utils.set_random_seed(cfg.seed)
    tfm.config.experimental.enable_op_determinism()
    sp = split(dataset, cfg.seed, cfg.val_fraction, cfg.test_fraction)
    x = normalize(dataset.x, NORM_SCALE, NORM_OFFSET)
    xtr, ytr = x[sp.train], dataset.y[sp.train]
    xva, yva = x[sp.val], dataset.y[sp.val]
    xte, yte = x[sp.test], dataset.y[sp.test]

    if resume is not None:
        model, prior, prior_best, resumed = resume.model, resume.history, resume.best_epoch, [*resume.resumed_at_epochs, resume.epochs_done]
        spent = {key: float(resume.timings.get(key, 0.0)) for key in ("train_s", "total_s")}
    else:
        model = build_model(spec, dataset.input_shape, dataset.num_classes, seed=cfg.seed)
        prior, prior_best, resumed, spent = None, 0, [], {"train_s": 0.0, "total_s": 0.0}
    t_fit = time.perf_counter()
    history = fit(model, (xtr, ytr), (xva, yva), cfg, progress=progress, keep_on_interrupt=True,
                  initial_history=prior, initial_best_epoch=prior_best)
    best_epoch = int(history.pop("best_epoch")[0])
    best_val = float(history.pop("best_val_accuracy")[0])
    interrupted = bool(history.pop("interrupted", [0.0])[0])
    fit_s = time.perf_counter() - t_fit

    with quiet_stderr():
        test_logits = model.predict(xte, batch_size=256, verbose=0)
    metrics = {
        "test": evaluate_logits(test_logits, yte, dataset.num_classes),
        "val_accuracy": best_val,
        "epochs_run": len(history["loss"]),
        "best_epoch": best_epoch,
        "interrupted": interrupted,
        "params": count_params(model),
        "macs": count_macs(model),
    }
    return TrainResult(
        model=model,
        spec=spec,
        dataset=dataset,
        split=sp,
        config=cfg,
        history=history,
        metrics=metrics,
        timings={"train_s": spent["train_s"] + fit_s, "total_s": spent["total_s"] + time.perf_counter() - t0},
        best_epoch=best_epoch,
        interrupted=interrupted,
        resumed_at_epochs=resumed,
        input_spec={
            "height": dataset.input_shape[0],
            "width": dataset.input_shape[1],
            "channels": dataset.input_shape[2],
            "dtype": "float32",
            "scale": NORM_SCALE,
            "offset": NORM_OFFSET,
            "formula": "x = raw * scale + offset, raw in 0..255",
            "augment_max_shift_px": (cfg.max_shift or max(1, round(min(dataset.input_shape[:2]) / 14))) if cfg.augment else 0,
        },
    )


def load_resume(path: str | Path) -> Resume:
    """An interrupted run, ready to go on training: the same spec, data (checked to be unchanged),
    split, seed and config, its best weights and its history. A run that was not interrupted is refused."""
    from .models import load_run_model
    from .runs import HISTORY, load_run, read_json

    run = load_run(path)
    t = run.manifest.get("training") or {}
    if not t.get("interrupted"):
        raise ModelError(
            f"run {run.path} was not interrupted: it finished after {t.get('epochs_run', '?')} epochs",
            "only an interrupted run can be resumed; to train longer, train a new run with more epochs",
        )
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{key: v for key, v in t.items() if key in names})
    spec = ModelSpec.from_dict(run.manifest["model"]["spec"])
    dataset = load_recorded(run.manifest["data"], f"run {run.path}")
    history = read_json(run.path / HISTORY)
    if not isinstance(history, dict) or any(len(history.get(key, [])) != t["epochs_run"] for key in HISTORY_KEYS):
        raise ModelError(f"run {run.path}: {HISTORY} does not hold its {t['epochs_run']} epochs", "the run is damaged; train it again")
    return Resume(
        path=run.path, spec=spec, dataset=dataset, config=config, model=load_run_model(run),
        history={key: [float(v) for v in history[key]] for key in HISTORY_KEYS}, best_epoch=int(t["best_epoch"]),
        resumed_at_epochs=[int(e) for e in t.get("resumed_at_epochs", [])], timings=dict(run.manifest.get("timings") or {}),
    )


def calibration_indices(result: TrainResult) -> np.ndarray:
    """Which training-split samples become RUN/data/calib.npz (never the test split)."""
    train_idx = result.split.train
    rng = np.random.default_rng(result.config.seed + 1)
    n = min(result.config.calibration_samples, len(train_idx))
    return np.sort(rng.choice(train_idx, size=n, replace=False))


def run_manifest(result: TrainResult, name: str, calib_count: int, files: dict[str, str]) -> dict[str, Any]:
    """The manifest.json of the run `result` becomes (the one record of what happened)."""
    import datetime

    from . import __version__

    ds, sp, cfg = result.dataset, result.split, result.config
    return {
        "schema_version": 1,
        "kind": "edgepool-run",
        "name": name,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "edgepool_version": __version__,
        "model": {"file": files["model"], "spec": result.spec.to_dict(), "params": result.metrics["params"], "macs": result.metrics["macs"]},
        "data": {**ds.describe(), "split": sp.describe(), "calibration_samples": int(calib_count)},
        "input": result.input_spec,
        "training": {
            **dataclasses.asdict(cfg), "best_epoch": result.best_epoch, "epochs_run": result.metrics["epochs_run"],
            "interrupted": result.interrupted, **({"resumed_at_epochs": result.resumed_at_epochs} if result.resumed_at_epochs else {}),
        },
        "metrics": {
            "test_accuracy": result.metrics["test"]["accuracy"],
            "val_accuracy": result.metrics["val_accuracy"],
            "per_class_accuracy": result.metrics["test"]["per_class_accuracy"],
            "confusion_matrix": result.metrics["test"]["confusion_matrix"],
        },
        "timings": result.timings,
        "versions": package_versions(),
        "files": files,
    }


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("edgepool", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "coremltools", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def evaluate_run(run: Any, dataset: Dataset | None = None) -> dict[str, Any]:
    """Evaluate a run's model on its test split, or on all of `dataset` (same input shape and classes)."""
    from ._tf import quiet_stderr
    from .errors import DataError
    from .models import load_run_model

    model = load_run_model(run)
    labels = run.labels
    if dataset is None:
        x_raw, y = run.test_data()
        where = "test split"
    else:
        want = (run.input_spec["height"], run.input_spec["width"], run.input_spec["channels"])
        if dataset.input_shape != want:
            raise DataError(
                f"data {dataset.name} has images of shape {dataset.input_shape}, the model takes {want}",
                f"resize the data to {want[0]}x{want[1]} with {want[2]} channel(s)",
            )
        if dataset.labels != labels:
            raise DataError(f"data {dataset.name} has classes {dataset.labels}, the model was trained on {labels}", "evaluate on data with the same classes")
        x_raw, y = dataset.x, dataset.y
        where = dataset.name
    with quiet_stderr():
        logits = model.predict(run.normalize(x_raw), batch_size=256, verbose=0)
    return {"run": str(run.path), "data": where, "labels": labels, **evaluate_logits(logits, y, len(labels))}

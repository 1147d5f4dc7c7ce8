"""train(spec, dataset) -> TrainResult. Returns objects; writes no files (runs.py does)."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .datasets import NORM_OFFSET, NORM_SCALE, Dataset, Split, split
from .models import ModelSpec, build_model, count_macs, count_params
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


def fit(
    model: Any,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    cfg: TrainConfig,
    progress: ProgressFn | None = None,
    teacher: Any = None,
    stage: str = "train",
) -> dict[str, list[float]]:
    """Train `model` in place (Adam + cosine decay, shift augmentation, early stopping on validation).

    The best epoch's weights (by validation accuracy, then loss) are restored at the end. Works for
    float and TFMOT quantization-aware models alike. With a `teacher`, the targets are the teacher's
    softmax on the same (augmented) images instead of the labels: distillation, so the student learns
    to agree with the teacher, and "accuracy" is top-1 agreement with it.
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

    yva_t = targets(xva, yva)
    max_shift = cfg.max_shift if cfg.max_shift is not None else max(1, round(min(xtr.shape[1:3]) / 14))
    rng = np.random.default_rng(cfg.seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    best = (-1.0, np.inf)
    best_weights = model.get_weights()
    best_epoch = 0
    stale = 0
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(xtr))
        xe = xtr[order]
        if cfg.augment:
            xe = _shift_batch(xe, max_shift, rng)
        with quiet_stderr():  # tf.data graph-version chatter on fd 2
            h = model.fit(xe, targets(xe, ytr[order]), batch_size=cfg.batch_size, epochs=1, verbose=0, shuffle=False)
            vl, va = model.evaluate(xva, yva_t, batch_size=256, verbose=0)
        logs = {"loss": float(h.history["loss"][0]), "accuracy": float(h.history["accuracy"][0]), "val_loss": float(vl), "val_accuracy": float(va)}
        for key, v in logs.items():
            history[key].append(v)
        if (va, -vl) > (best[0], -best[1]):
            best, best_weights, best_epoch, stale = (va, vl), model.get_weights(), epoch + 1, 0
        else:
            stale += 1
        if progress:
            progress(ProgressEvent(stage, epoch + 1, cfg.epochs, data=logs))
        if stale >= cfg.patience:
            break
    model.set_weights(best_weights)
    history["best_epoch"] = [float(best_epoch)]
    history["best_val_accuracy"] = [float(best[0])]
    return history


def train(
    spec: ModelSpec,
    dataset: Dataset,
    config: TrainConfig | None = None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train `spec` on `dataset`; deterministic for a given seed on the same machine."""
    from ._tf import keras, quiet_stderr, tf

    cfg = config or TrainConfig()
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

    model = build_model(spec, dataset.input_shape, dataset.num_classes, seed=cfg.seed)
    t_fit = time.perf_counter()
    history = fit(model, (xtr, ytr), (xva, yva), cfg, progress=progress)
    best_epoch = int(history.pop("best_epoch")[0])
    best_val = float(history.pop("best_val_accuracy")[0])
    fit_s = time.perf_counter() - t_fit

    with quiet_stderr():
        test_logits = model.predict(xte, batch_size=256, verbose=0)
    metrics = {
        "test": evaluate_logits(test_logits, yte, dataset.num_classes),
        "val_accuracy": best_val,
        "epochs_run": len(history["loss"]),
        "best_epoch": best_epoch,
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
        timings={"train_s": fit_s, "total_s": time.perf_counter() - t0},
        best_epoch=best_epoch,
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


def calibration_indices(result: TrainResult) -> np.ndarray:
    """Which training-split samples become RUN/data/calib.npz (never the test split)."""
    train_idx = result.split.train
    rng = np.random.default_rng(result.config.seed + 1)
    n = min(result.config.calibration_samples, len(train_idx))
    return np.sort(rng.choice(train_idx, size=n, replace=False))


def run_manifest(result: TrainResult, name: str, calib_count: int, files: dict[str, str]) -> dict[str, Any]:
    """The manifest.json of the run `result` becomes (the one record of what happened)."""
    import dataclasses
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
        "training": {**dataclasses.asdict(cfg), "best_epoch": result.best_epoch, "epochs_run": result.metrics["epochs_run"]},
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

"""Quantization-aware training (TFMOT): wrap a run's float model, fine-tune it, store it in RUN/qat/<recipe>/.

The fine-tune distils from the float model (targets are its softmax), so QAT recovers the
quantization loss instead of going on training; "accuracy" in its history is agreement with the
float model. The float model is left as it is. Converting the result is `export.tflite`'s job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ExportError
from .models import load_run_model as load_model
from .runs import Run, read_json, save_qat
from .types import ProgressFn

if TYPE_CHECKING:
    from .recipes import QuantRecipe

QAT_WEIGHTS = "qat.weights.h5"  # TFMOT QAT models do not round-trip through .keras (quantize_layer variables)
QAT_RECORD = "qat.json"


def qat_model(model: Any, recipe_name: str = "int8-qat") -> Any:
    """Wrap a float tf_keras model for quantization-aware training; name the layer TFMOT cannot quantize."""
    from ._tf import quiet_stderr, tfmot

    q = tfmot().quantization.keras
    try:
        with quiet_stderr():
            return q.quantize_model(model)
    except (RuntimeError, ValueError, TypeError) as e:
        text = str(e)
        bad = next((layer for layer in model.layers if layer.__class__.__name__ in text or layer.name in text), None)
        what = f"layer {bad.name!r} ({bad.__class__.__name__})" if bad is not None else text.splitlines()[0][:200]
        raise ExportError(
            f"QAT (recipe {recipe_name}) cannot quantize {what}",
            "use the post-training recipe `int8` instead, or train with pooling max, avg or strided",
        ) from None


def qat_finetune(
    model: Any,
    recipe: QuantRecipe,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> tuple[Any, dict[str, list[float]]]:
    """Fine-tune a QAT copy of `model` (the float model is left as it is). Returns (qat_model, history)."""
    from ._tf import keras
    from .training import TrainConfig, fit

    keras().utils.set_random_seed(seed)
    qm = qat_model(model, recipe.name)
    n = epochs if epochs is not None else recipe.qat_epochs
    cfg = TrainConfig(epochs=n, learning_rate=recipe.qat_learning_rate, patience=max(n, 1), seed=seed)
    history = fit(qm, train, val, cfg, progress=progress, teacher=model, stage="qat")
    return qm, history


def run_splits(run: Run) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Reload the run's data and split (train, val), normalized; fail if the data changed since training."""
    from .datasets import load_recorded, split

    d = run.manifest["data"]
    ds = load_recorded(d, f"run {run.path}")
    fr = d["split"]["fractions"]
    sp = split(ds, d["split"]["seed"], fr["val"], fr["test"])
    x = run.normalize(ds.x)
    return (x[sp.train], ds.y[sp.train]), (x[sp.val], ds.y[sp.val])


def stored(run: Run, recipe: QuantRecipe) -> bool:
    """Whether `edgepool quantize` already stored a QAT model for `recipe` in the run."""
    return (run.qat_dir(recipe.name) / QAT_WEIGHTS).is_file()


def check_quantizable(run: Run, recipe: QuantRecipe) -> None:
    """Fail now (not after minutes of fine-tuning) when TFMOT cannot wrap the run's model."""
    qat_model(load_model(run), recipe.name)


def train_qat(run: Run, recipe: QuantRecipe, *, epochs: int | None = None, force: bool = False,
              progress: ProgressFn | None = None) -> dict[str, Any]:
    """Fine-tune a quantization-aware copy of the run's model; store it with both accuracies."""
    from ._tf import quiet_stderr
    from .runs import refuse_existing
    from .training import evaluate_logits

    refuse_existing(run.qat_dir(recipe.name), force, "QAT model")  # before minutes of training
    model = load_model(run)
    train, val = run_splits(run)
    seed = int(run.manifest["training"].get("seed", 0))
    qm, history = qat_finetune(model, recipe, train, val, epochs=epochs, seed=seed, progress=progress)
    x_raw, y = run.test_data()
    x = run.normalize(x_raw)
    with quiet_stderr():
        float_acc = evaluate_logits(model.predict(x, verbose=0), y, len(run.labels))["accuracy"]
        qat_acc = evaluate_logits(qm.predict(x, verbose=0), y, len(run.labels))["accuracy"]
    info = {
        "recipe": recipe.name,
        "epochs": len(history["loss"]),
        "best_epoch": int(history.pop("best_epoch")[0]),
        "float_test_accuracy": float_acc,
        "qat_test_accuracy": qat_acc,
        "history": {k: v for k, v in history.items() if k != "best_val_accuracy"},
    }

    def save_weights(path: Any) -> None:
        with quiet_stderr():
            qm.save_weights(path)

    save_qat(run.qat_dir(recipe.name), {QAT_WEIGHTS: save_weights}, {QAT_RECORD: info}, force=force)
    return info


def load_or_train_qat(run: Run, recipe: QuantRecipe, progress: ProgressFn | None = None) -> tuple[Any, dict[str, Any]]:
    """The stored QAT model for `recipe` if `edgepool quantize` made one, else fine-tune it now."""
    from ._tf import quiet_stderr

    d = run.qat_dir(recipe.name)
    if not stored(run, recipe):
        train_qat(run, recipe, progress=progress, force=True)
    model = qat_model(load_model(run), recipe.name)
    with quiet_stderr():
        model.load_weights(d / QAT_WEIGHTS)
    return model, read_json(d / QAT_RECORD)

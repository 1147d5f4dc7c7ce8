"""QAT on a run: reload its training data, fine-tune, store RUN/qat/<recipe>/ (what `edgepool quantize` does)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import DataError
from .runs import Run, atomic_write_json, read_json, staged_dir

QAT_WEIGHTS = "qat.weights.h5"  # TFMOT QAT models do not round-trip through .keras (quantize_layer variables)


def run_splits(run: Run) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Reload the run's data and split (train, val), normalized; fail if the data changed since training."""
    from .datasets import load_dataset, split

    d = run.manifest["data"]
    src = d.get("path") if d.get("kind") in ("npz", "image-folder") else d["name"]
    size = d.get("resized_to") or (d.get("image_size") if d.get("kind") == "image-folder" else None)
    ds = load_dataset(src, channels=d.get("channels_converted") or d.get("channels"), image_size=tuple(size) if size else None, skip_bad=bool(d.get("skipped")))
    if ds.fingerprint() != d["fingerprint"]:
        raise DataError(f"the data of run {run.path} ({src}) changed since training", "QAT needs the same training data; re-train the run")
    fr = d["split"]["fractions"]
    sp = split(ds, d["split"]["seed"], fr["val"], fr["test"])
    x = run.normalize(ds.x)
    return (x[sp.train], ds.y[sp.train]), (x[sp.val], ds.y[sp.val])


def qat_dir(run: Run, recipe: Any):  # -> Path
    return run.path / "qat" / recipe.name


def train_qat(run: Run, recipe: Any, *, epochs: int | None = None, force: bool = False, progress: Any = None) -> dict[str, Any]:
    """Fine-tune a quantization-aware copy of the run's model; store it with both accuracies."""
    from ._tf import quiet_stderr
    from .quantize import qat_finetune
    from .training import evaluate_logits

    model = run.load_model()
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
    with staged_dir(qat_dir(run, recipe), force=force, what="QAT model") as d:
        with quiet_stderr():
            qm.save_weights(d / QAT_WEIGHTS)
        atomic_write_json(d / "qat.json", info)
    return info


def load_or_train_qat(run: Run, recipe: Any, progress: Any = None) -> tuple[Any, dict[str, Any]]:
    """The stored QAT model for `recipe` if `edgepool quantize` made one, else fine-tune it now."""
    d = qat_dir(run, recipe)
    if not (d / QAT_WEIGHTS).is_file():
        train_qat(run, recipe, progress=progress, force=True)
    from ._tf import quiet_stderr
    from .quantize import qat_model

    model = qat_model(run.load_model(), recipe.name)
    with quiet_stderr():
        model.load_weights(d / QAT_WEIGHTS)
    return model, read_json(d / "qat.json")

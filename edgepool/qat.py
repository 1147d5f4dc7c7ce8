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


# ------------------------------------------------------------------ QAT wrappers for edgepool's own layers
#
# TFMOT quantizes only the Keras layers it knows; every layer of `edgepool.layers.custom_objects()` gets
# a `QuantizeConfig` here, chosen by its class. The table below holds what a class needs beyond the
# generic rule (float kernels on the layer fake-quantized per tensor, int8 symmetric; the one float
# output fake-quantized with a moving-average range, as TFMOT does for its own pooling layers).
# A class TFMOT cannot wrap has a one-line reason instead, raised before any training.

# class name -> how it is wrapped: "output" (fake-quantize the output; the layer has no weights),
# "weights+output" (its own float kernels too), "passthrough" (nothing to fake-quantize: integer or
# several outputs that the next layers quantize), or "unwrappable: <reason>".
QAT_RULES: dict[str, str] = {
    # max-like: the int8 op keeps its input's scale (TFMOT's own MaxPooling configs quantize nothing)
    **{f"{kind}{r}D": "passthrough" for kind in ("MaxPooling", "GlobalMaxPooling", "AdaptiveMaxPooling")
       for r in (1, 2, 3)},
    # average-like: a new range for the output, as TFMOT does for AveragePooling2D
    **{f"{kind}{r}D": "output" for kind in ("AveragePooling", "GlobalAveragePooling", "AdaptiveAveragePooling")
       for r in (1, 2, 3)},
    # power means: the int8 model quantizes the pooled output like AVERAGE_POOL_2D's; the squared
    # intermediate is float in every int8 export (SQUARE has no int8 kernel), so only the output is faked
    **{f"{kind}{r}D": "output" for kind in ("LpPooling", "L2Pooling") for r in (1, 2, 3)},
    "SpatialPyramidPooling2D": "output",  # a concatenation of levels (avg levels need their own range)
    "StochasticPooling2D": "output",  # inference: avg_pool(a^2) / avg_pool(a), a new range
    "AttentionPooling": "weights+output",  # its 1x1 score kernel, and the weighted sum
    # [pooled, int32 indices]: pooled keeps the input's scale, indices are integers (nothing to learn)
    "MaxPoolingWithIndices2D": "passthrough",
    "MaxUnpooling2D": "passthrough",  # values written at indices: the values' scale, zeros elsewhere
}
_UNWRAPPABLE = "unwrappable: "


def qat_rule(layer_class: type) -> str:
    """How QAT wraps an edgepool layer class: the table's entry, else the generic rule for its kind."""
    name = layer_class.__name__
    if name in QAT_RULES:
        return QAT_RULES[name]
    return "weights+output"  # the generic rule: own kernels (if any) and the output


def qat_unwrappable_reason(layer: Any) -> str | None:
    """Why TFMOT cannot wrap `layer` (an edgepool layer), one line; None when it can."""
    rule = qat_rule(type(layer))
    if rule.startswith(_UNWRAPPABLE):
        return rule.removeprefix(_UNWRAPPABLE)
    try:
        named = "name" in layer.get_config()
    except NotImplementedError:
        named = False
    if not named:
        return (f"{type(layer).__name__}.get_config() returns no layer name (it must extend the base Layer "
                "config), and TFMOT rebuilds the model from the configs")
    try:
        outputs = layer.output if rule != "passthrough" else None
    except (AttributeError, RuntimeError):  # a layer not called yet: judged when it is
        outputs = None
    if isinstance(outputs, list | tuple) and len(outputs) > 1:
        return (f"it has {len(outputs)} outputs and TFMOT's QuantizeWrapper fake-quantizes one output only "
                "(rule it as passthrough if its outputs need no range of their own)")
    if outputs is not None and not outputs.dtype.is_floating:
        return f"its output is {outputs.dtype.name}, which has no int8 range to learn"
    return None


def _quantize_config_class() -> type:
    """`EdgepoolQuantizeConfig` (one class for every rule, so a saved QAT model needs one custom object)."""
    if "config" in _CONFIG:
        return _CONFIG["config"]
    from ._tf import keras, tfmot

    q = tfmot().quantization.keras
    quantizers = q.quantizers

    @keras().utils.register_keras_serializable(package="edgepool")
    class EdgepoolQuantizeConfig(q.QuantizeConfig):
        """QAT for an edgepool layer: its float kernels (attributes of rank >= 2) as int8 per tensor,
        symmetric; its output with a moving-average range (asymmetric int8), as TFMOT's pooling configs do."""

        def __init__(self, weight_attrs: list[str] | None = None, quantize_output: bool = True):
            self.weight_attrs = list(weight_attrs or [])
            self.quantize_output = bool(quantize_output)

        def get_weights_and_quantizers(self, layer: Any) -> list[Any]:
            return [(getattr(layer, a), quantizers.LastValueQuantizer(num_bits=8, per_axis=False, symmetric=True,
                                                                      narrow_range=True)) for a in self.weight_attrs]

        def get_activations_and_quantizers(self, layer: Any) -> list[Any]:
            return []

        def set_quantize_weights(self, layer: Any, quantize_weights: list[Any]) -> None:
            for a, w in zip(self.weight_attrs, quantize_weights, strict=True):
                setattr(layer, a, w)

        def set_quantize_activations(self, layer: Any, quantize_activations: list[Any]) -> None:
            pass

        def get_output_quantizers(self, layer: Any) -> list[Any]:
            if not self.quantize_output:
                return []
            return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

        def get_config(self) -> dict[str, Any]:
            return {"weight_attrs": self.weight_attrs, "quantize_output": self.quantize_output}

    _CONFIG["config"] = EdgepoolQuantizeConfig
    return EdgepoolQuantizeConfig


_CONFIG: dict[str, type] = {}


def quantize_config(layer: Any) -> Any:
    """The `QuantizeConfig` for an edgepool layer (ExportError naming the layer when TFMOT cannot wrap it)."""
    reason = qat_unwrappable_reason(layer)
    if reason is not None:
        raise ExportError(f"QAT cannot quantize layer {layer.name!r} ({type(layer).__name__}): {reason}",
                          "use a post-training recipe (int8, or the selective int8-float-pool) for this model")
    rule = qat_rule(type(layer))
    weights = []
    if rule == "weights+output":
        import tensorflow as tf  # noqa: TID251  (already imported by _tf.tf())

        weights = [a for a, v in vars(layer).items() if isinstance(v, tf.Variable) and v.trainable
                   and v.dtype.is_floating and v.shape.rank is not None and v.shape.rank >= 2]
    return _quantize_config_class()(weights, quantize_output=rule != "passthrough")


def qat_scope() -> dict[str, Any]:
    """Custom objects a QAT model needs when cloned or loaded: edgepool's layers and its QuantizeConfig.

    A class named like a tf_keras built-in (edgepool's MaxPooling2D) is left out: TFMOT rebuilds layers
    by class name, and the built-in must stay the built-in (edgepool's classes are also registered as
    "edgepool>Name", which is how their configs name them)."""
    from ._tf import keras
    from .layers import custom_objects

    builtin = keras().layers
    ours = {n: c for n, c in custom_objects().items() if not hasattr(builtin, n)}
    return {**ours, "EdgepoolQuantizeConfig": _quantize_config_class()}


def qat_model(model: Any, recipe_name: str = "int8-qat") -> Any:
    """Wrap a float tf_keras model for quantization-aware training; edgepool layers get their
    `QuantizeConfig` (`quantize_config`); name the layer TFMOT cannot quantize."""
    from ._tf import keras, quiet_stderr, tfmot
    from .layers import custom_objects

    q = tfmot().quantization.keras
    ours = tuple(custom_objects().values())

    def annotate(layer: Any) -> Any:
        if isinstance(layer, ours):
            return q.quantize_annotate_layer(layer, quantize_config(layer))
        return layer

    try:
        with quiet_stderr(), q.quantize_scope(qat_scope()):
            annotated = keras().models.clone_model(model, clone_function=annotate)
            return q.quantize_apply(q.quantize_annotate_model(annotated))
    except (RuntimeError, ValueError, TypeError) as e:
        text = str(e)
        bad = next((layer for layer in model.layers if layer.__class__.__name__ in text or layer.name in text), None)
        what = f"layer {bad.name!r} ({bad.__class__.__name__})" if bad is not None else text.splitlines()[0][:200]
        raise ExportError(
            f"QAT (recipe {recipe_name}) cannot quantize {what}",
            "use the post-training recipe `int8` (or the selective `int8-float-pool`) instead, "
            "or train with pooling max, avg or strided",
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


def refuse_imported(run: Run, recipe: QuantRecipe) -> None:
    """An imported model that is not a plain tf_keras model (Keras 3, SavedModel, ONNX, custom layers) gets
    post-training quantization only: say why in one line (`edgepool import` recorded it)."""
    why = (run.manifest.get("source") or {}).get("qat_unavailable")
    if why:
        raise ExportError(f"QAT (recipe {recipe.name}) needs a tf_keras model; run {run.path} was imported from "
                          f"{run.manifest['source'].get('name')}, and {why}",
                          "use the post-training recipe int8 (full-integer PTQ) instead")


def check_quantizable(run: Run, recipe: QuantRecipe) -> None:
    """Fail now (not after minutes of fine-tuning) when TFMOT cannot wrap the run's model."""
    refuse_imported(run, recipe)
    qat_model(load_model(run), recipe.name)


def train_qat(run: Run, recipe: QuantRecipe, *, epochs: int | None = None, force: bool = False,
              progress: ProgressFn | None = None) -> dict[str, Any]:
    """Fine-tune a quantization-aware copy of the run's model; store it with both accuracies."""
    from ._tf import quiet_stderr
    from .runs import refuse_existing
    from .training import evaluate_logits

    refuse_existing(run.qat_dir(recipe.name), force, "QAT model")  # before minutes of training
    refuse_imported(run, recipe)
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

    refuse_imported(run, recipe)
    d = run.qat_dir(recipe.name)
    if not stored(run, recipe):
        train_qat(run, recipe, progress=progress, force=True)
    model = qat_model(load_model(run), recipe.name)
    with quiet_stderr():
        model.load_weights(d / QAT_WEIGHTS)
    return model, read_json(d / QAT_RECORD)

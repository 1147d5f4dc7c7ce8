"""Tiny .tflite models for the inspect / Edge TPU tests, converted on first use.

Plain helpers, imported normally (``from tests._inspect_models import convert, randomize``). The
session fixture ``tflite_models`` (a ``Models`` in a session temp dir) lives in ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def randomize(model: Any, seed: int = 0) -> None:
    """Give every weight (biases, BN statistics) non-zero values, as after training."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.2, w.shape).astype(w.dtype) for w in model.get_weights()])
    for layer in model.layers:  # BN variances must be positive
        if type(layer).__name__ == "BatchNormalization":
            g, b, m, v = layer.get_weights()
            layer.set_weights([g, b, m, np.abs(v) + 0.5])


def convert(model: Any, mode: str) -> bytes:
    """mode: "float" | "int8" (full integer, int8 in/out) | "fallback" (int8 where possible, float elsewhere)."""
    from edgepool._tf import tf

    tf_ = tf()
    conv = tf_.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float":
        shape = [d or 8 for d in model.input_shape[1:]]
        batch = model.input_shape[0] or 1

        def rep():
            rng = np.random.default_rng(0)
            for _ in range(8):
                yield [rng.random([batch, *shape], dtype=np.float32)]

        conv.optimizations = [tf_.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        if mode == "int8":
            conv.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf_.int8
            conv.inference_output_type = tf_.int8
    return conv.convert()


def build(name: str) -> tuple[Any, str]:
    """A tiny tf_keras model by name and the ``convert`` mode it is meant for."""
    from edgepool._tf import keras, tf

    k = keras()
    L = k.layers
    if name in ("mixed", "mixed-float"):
        inp = L.Input((16, 16, 3))
        x = L.Conv2D(8, 3, padding="same", use_bias=False)(inp)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
        x = L.MaxPooling2D()(x)
        x = L.SeparableConv2D(16, 3, activation="relu")(x)
        x = L.DepthwiseConv2D(3, padding="same")(x)
        x = L.AveragePooling2D()(x)
        x = L.GlobalAveragePooling2D()(x)
        x = L.Dense(10)(x)
        return k.Model(inp, x), "float" if name == "mixed-float" else "int8"
    if name == "fused-pool":  # conv -> maxpool -> relu: the converter fuses the ReLU into MAX_POOL_2D
        inp = L.Input((8, 8, 2))
        x = L.Conv2D(4, 3, padding="same")(inp)
        x = L.MaxPooling2D()(x)
        x = L.ReLU()(x)
        x = L.Flatten()(x)
        return k.Model(inp, L.Dense(3)(x)), "int8"
    if name == "l2-fallback":  # L2 pooling: SQRT has no int8 kernel, so it stays float in the middle
        tf_ = tf()
        inp = L.Input((8, 8, 2))
        x = L.Conv2D(4, 3, padding="same")(inp)
        x = L.Lambda(lambda t: tf_.sqrt(L.AveragePooling2D()(tf_.square(t)) + 1e-6))(x)
        x = L.Flatten()(x)
        return k.Model(inp, L.Dense(3)(x)), "fallback"
    if name == "mean-channels":
        tf_ = tf()
        inp = L.Input((8, 8, 4))
        x = L.Conv2D(4, 3, padding="same")(inp)
        x = L.Lambda(lambda t: tf_.reduce_mean(t, axis=-1, keepdims=True))(x)
        x = L.Flatten()(x)
        return k.Model(inp, L.Dense(3)(x)), "int8"
    if name == "batch2":
        inp = L.Input((8, 8, 2), batch_size=2)
        x = L.Conv2D(4, 3, padding="same")(inp)
        x = L.Flatten()(x)
        return k.Model(inp, L.Dense(3)(x)), "int8"
    if name == "dynamic":
        inp = L.Input((None, None, 2))
        x = L.Conv2D(4, 3, padding="same")(inp)
        x = L.GlobalAveragePooling2D()(x)
        return k.Model(inp, L.Dense(3)(x)), "int8"
    raise KeyError(name)


class Models:
    """Models by name (see ``build``), each converted once into ``root`` on first ``path(name)``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keras: dict[str, Any] = {}

    def path(self, name: str) -> Path:
        p = self.root / f"{name}.tflite"
        if not p.exists():
            model, mode = build(name)
            randomize(model)
            self.keras[name] = model
            p.write_bytes(convert(model, mode))
        return p


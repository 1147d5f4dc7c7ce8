"""Pooling layers beyond the built-in max/avg ones. Each lowers to TFLite builtin ops.

`L2Pooling2D` is Lp pooling with p=2: sqrt(mean over the window of x^2). It is built from
square -> AveragePooling2D -> sqrt, which the TFLite converter emits as MUL/AVERAGE_POOL_2D/SQRT,
so every runtime that has those ops can run it.
"""

from __future__ import annotations

from typing import Any

from .._tf import keras

_CLASSES: dict[str, Any] = {}


def custom_objects() -> dict[str, Any]:
    """The custom layers, by name, for loading saved models."""
    return {"L2Pooling2D": l2_pooling_class()}


def l2_pooling_class() -> Any:
    if "L2Pooling2D" in _CLASSES:
        return _CLASSES["L2Pooling2D"]
    k = keras()
    tf = __import__("tensorflow")

    @k.utils.register_keras_serializable(package="edgepool")
    class L2Pooling2D(k.layers.Layer):
        """sqrt(avg_pool(x**2) + epsilon): L2 (Lp, p=2) pooling over `pool_size` windows."""

        def __init__(self, pool_size: int = 2, strides: int | None = None, padding: str = "valid", epsilon: float = 1e-6, **kw: Any):
            super().__init__(**kw)
            self.pool_size = int(pool_size)
            self.strides = int(strides or pool_size)
            self.padding = padding
            self.epsilon = float(epsilon)
            self._avg = k.layers.AveragePooling2D(self.pool_size, self.strides, padding)

        def call(self, x: Any) -> Any:
            return tf.sqrt(self._avg(tf.square(x)) + self.epsilon)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return self._avg.compute_output_shape(input_shape)

        def get_config(self) -> dict[str, Any]:
            return {
                **super().get_config(),
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
                "epsilon": self.epsilon,
            }

    _CLASSES["L2Pooling2D"] = L2Pooling2D
    return L2Pooling2D

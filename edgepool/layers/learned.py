"""Pooling that depends on the activations' values or on learned weights: stochastic and attention pooling."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import (
    Layer,
    as_tuple,
    check_padding,
    dims,
    k,
    out_len,
    pool_nd,
    product,
    register,
    tf,
)


@register
class StochasticPooling2D(Layer):
    """Stochastic pooling (Zeiler & Fergus 2013) over pool_size windows.

    Activations are taken as max(x, 0) (the method is defined for non-negative activations, e.g.
    after a ReLU). Training: each window outputs one of its elements, drawn with probability
    a_i / sum(a) (an all-zero window outputs 0); the gradient flows to the drawn element only.
    Inference (training=False, and every export): the probability-weighted average
    sum(a_i^2) / sum(a_i), computed as avg_pool(a^2) / max(avg_pool(a), epsilon) -- the window
    counts cancel, so "same" padding ignores padded positions; an all-zero window gives 0. Ties need no rule: equal activations
    are equally likely, and the inference value does not depend on the order. Draws use `seed`.

    Export (the inference form): RELU, MUL, AVERAGE_POOL_2D (x2), MAXIMUM, DIV -- TFLite builtins;
    in int8 epsilon rounds to zero, so an all-zero window divides by zero (the int8 DIV kernel
    refuses it at run time) and the square loses small activations as in L2 pooling; the Edge TPU
    has no DIV (the graph leaves it there). Core ML: relu, mul, avg_pool, maximum, real_div.
    """

    def __init__(self, pool_size: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None,
                 padding: str = "valid", seed: int | None = None, epsilon: float = 1e-6, **kw: Any):
        super().__init__(**kw)
        self.pool_size = pool_size if isinstance(pool_size, int) else tuple(pool_size)
        self.strides = (strides if isinstance(strides, int) else tuple(strides)) if strides is not None else self.pool_size
        self.padding = check_padding(padding)
        self.seed = seed
        self.epsilon = float(epsilon)
        self._window = as_tuple(self.pool_size, 2, "pool_size")
        self._strides = as_tuple(self.strides, 2, "strides")

    def call(self, x: Any, training: Any = None) -> Any:
        a = tf.nn.relu(x)
        if training is None:
            training = k.backend.learning_phase()
        if isinstance(training, bool | int):
            return self._sample(a) if training else self._expected(a)
        return tf.cond(tf.cast(training, tf.bool), lambda: self._sample(a), lambda: self._expected(a))

    def _expected(self, a: Any) -> Any:
        num = pool_nd(a * a, "avg", self._window, self._strides, self.padding)
        den = pool_nd(a, "avg", self._window, self._strides, self.padding)
        return num / tf.maximum(den, self.epsilon)  # an all-zero window: 0 / epsilon = 0

    def _sample(self, a: Any) -> Any:
        kh, kw = self._window
        patches = tf.image.extract_patches(a, [1, kh, kw, 1], [1, *self._strides, 1], [1, 1, 1, 1],
                                           self.padding.upper())  # (B, h, w, kh*kw*C), padding zeros
        _, h, w, _ = dims(patches)
        c = a.shape[-1]
        p = tf.reshape(patches, [-1, h, w, kh * kw, c])
        cum = tf.cumsum(p, axis=3)
        u = tf.random.uniform(tf.shape(cum[:, :, :, :1, :]), seed=self.seed) * cum[:, :, :, -1:, :]
        past = tf.cast(cum > u, p.dtype)  # 0 ... 0 1 ... 1 along the window: the draw is the first 1
        pick = past - tf.concat([tf.zeros_like(past[:, :, :, :1, :]), past[:, :, :, :-1, :]], axis=3)
        return tf.reduce_sum(tf.stop_gradient(pick) * p, axis=3)

    def compute_output_shape(self, input_shape: Any) -> Any:
        s = tf.TensorShape(input_shape).as_list()
        for i in range(2):
            s[1 + i] = out_len(s[1 + i], self._window[i], self._strides[i], self.padding)
        return tf.TensorShape(s)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "seed": self.seed, "epsilon": self.epsilon}


@register
class AttentionPooling(Layer):
    """Attention pooling: a learned weighted sum over every position of each sample.

    Works on channels-last inputs of any rank, (B, L, C), (B, H, W, C) or (B, D, H, W, C). Each
    position p gets a score s_p = x_p . w + b (one learned C-vector and bias, shared by all
    positions), weights softmax(s) over the positions, and the output (B, C) is sum_p softmax(s)_p x_p.
    No ties: equal scores share the weight equally. The score is a 1x1 convolution, so with zero
    weights the layer starts as global average pooling.

    Export: RESHAPE to (B, P, 1, C), CONV_2D (1x1, one filter), RESHAPE, SOFTMAX over P, MUL, SUM:
    TFLite builtins with int8 kernels; Edge TPU ops (SOFTMAX over a 1-D input of at most 16,000
    positions). Core ML: reshape, conv, softmax, mul, reduce_sum.
    """

    def build(self, input_shape: Any) -> None:
        c = int(tf.TensorShape(input_shape)[-1])
        self.kernel = self.add_weight(name="kernel", shape=(1, 1, c, 1), initializer="zeros", trainable=True)
        self.bias = self.add_weight(name="bias", shape=(1,), initializer="zeros", trainable=True)
        self._positions = product([int(d) if d is not None else None for d in list(input_shape)[1:-1]]) \
            if None not in list(input_shape)[1:-1] else None
        super().build(input_shape)

    def call(self, x: Any) -> Any:
        shape = dims(x)
        c = shape[-1]
        p = product(shape[1:-1])
        xr = tf.reshape(x, [-1, p, 1, c])
        scores = tf.nn.conv2d(xr, self.kernel, 1, "VALID") + self.bias  # (B, P, 1, 1)
        weights = tf.nn.softmax(tf.reshape(scores, [-1, p]), axis=-1)
        return tf.reduce_sum(xr * tf.reshape(weights, [-1, p, 1, 1]), axis=[1, 2])

    def macs(self) -> int:
        """Multiply-accumulates of the score (P x C); the weighted sum adds P x C more multiplies."""
        return int(self._positions or 0) * int(self.kernel.shape[2])

    def compute_output_shape(self, input_shape: Any) -> Any:
        s = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape([s[0], s[-1]])

"""Window pooling in 1D, 2D and 3D: max, average, Lp (L2) pooling; global max / average pooling.

Inputs are channels-last: (batch, length, channels), (batch, height, width, channels) or
(batch, depth, height, width, channels). `pool_size` and `strides` are an int or one int per axis
(strides default to pool_size). Padding:

- "valid": windows lie inside the input; a remainder that no window covers is dropped
  (output length floor((n - k) / s) + 1), so windows need not divide the input.
- "same": output length ceil(n / s); the input is padded as TensorFlow pads (the smaller half before),
  and padded positions are ignored: they never win a max and are not counted in an average.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import Layer, as_tuple, check_padding, out_len, pool_nd, register, tf


class _WindowPooling(Layer):
    rank = 2
    kind = "max"

    def __init__(self, pool_size: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None,
                 padding: str = "valid", **kw: Any):
        super().__init__(**kw)
        self.pool_size = pool_size if isinstance(pool_size, int) else tuple(pool_size)
        self.strides = (strides if isinstance(strides, int) else tuple(strides)) if strides is not None else self.pool_size
        self.padding = check_padding(padding)
        self._window = as_tuple(self.pool_size, self.rank, "pool_size")
        self._strides = as_tuple(self.strides, self.rank, "strides")

    def _pool(self, x: Any, kind: str) -> Any:
        return pool_nd(x, kind, self._window, self._strides, self.padding)

    def call(self, x: Any) -> Any:
        return self._pool(x, self.kind)

    def compute_output_shape(self, input_shape: Any) -> Any:
        s = list(tf.TensorShape(input_shape).as_list())
        for i in range(self.rank):
            s[1 + i] = out_len(s[1 + i], self._window[i], self._strides[i], self.padding)
        return tf.TensorShape(s)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides, "padding": self.padding}


_MAX_DOC = """Max pooling over {rank}D windows: the largest value of each window.

    Ties: the value is the same whichever element wins; the gradient goes to one maximal element per
    window (TensorFlow's MaxPool gradient). Export: TFLite MAX_POOL_2D{lower} (float, int8, Edge TPU:
    {tpu}); Core ML max_pool.
    """
_AVG_DOC = """Average pooling over {rank}D windows: the mean of each window ('same': of its real elements).

    No ties. Export: TFLite AVERAGE_POOL_2D{lower} (float, int8, Edge TPU: {tpu}); Core ML avg_pool
    (exclude_padding_from_average).
    """
_LOWER = {1: " on an (L, 1) map (EXPAND_DIMS / SQUEEZE around it)",
          2: "",
          3: " twice (H x W, then D on the folded H*W axis, with RESHAPEs; TFLite has no builtin 3D pooling)"}
_TPU = {1: "yes", 2: "yes", 3: "no, the 5-D reshapes have more than 3 non-1 dimensions"}


def _doc(template: str, rank: int) -> str:
    return template.format(rank=rank, lower=_LOWER[rank], tpu=_TPU[rank])


@register
class MaxPooling1D(_WindowPooling):
    __doc__ = _doc(_MAX_DOC, 1)
    rank = 1


@register
class MaxPooling2D(_WindowPooling):
    __doc__ = _doc(_MAX_DOC, 2)
    rank = 2


@register
class MaxPooling3D(_WindowPooling):
    __doc__ = _doc(_MAX_DOC, 3)
    rank = 3


@register
class AveragePooling1D(_WindowPooling):
    __doc__ = _doc(_AVG_DOC, 1)
    rank, kind = 1, "avg"


@register
class AveragePooling2D(_WindowPooling):
    __doc__ = _doc(_AVG_DOC, 2)
    rank, kind = 2, "avg"


@register
class AveragePooling3D(_WindowPooling):
    __doc__ = _doc(_AVG_DOC, 3)
    rank, kind = 3, "avg"


class _LpPooling(_WindowPooling):
    """(mean over the window of |x|^p + epsilon)^(1/p): Lp pooling, the power mean of each window.

    p = 2 (L2 pooling) is sqrt(avg_pool(x^2) + epsilon); p = 1 is the mean absolute value; p -> inf
    approaches max pooling of |x|. It is the mean, not PyTorch's LPPool sum: the sum is
    window_size^(1/p) times this. 'same' padding averages over the real elements only. No ties.
    `epsilon` keeps the gradient of the root finite at all-zero windows.

    Export: p = 2 lowers to MUL (the square), AVERAGE_POOL_2D, ADD, SQRT; p = 1 to ABS,
    AVERAGE_POOL_2D; other p to ABS, POW, AVERAGE_POOL_2D, ADD, POW (all TFLite builtins, Core ML
    mul/avg_pool/sqrt/pow). In int8 the square rounds small activations to zero (the pooled range is
    the square of the input's); the Edge TPU has no SQRT or POW, so the graph leaves the Edge TPU at
    the root.
    """

    def __init__(self, pool_size: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None,
                 padding: str = "valid", p: float = 2.0, epsilon: float = 1e-6, **kw: Any):
        super().__init__(pool_size, strides, padding, **kw)
        self.p = float(p)
        if not self.p >= 1.0:
            raise ValueError(f"p must be >= 1 (got {p!r})")
        self.epsilon = float(epsilon)

    def call(self, x: Any) -> Any:
        if self.p == 2.0:
            return tf.sqrt(self._pool(tf.square(x), "avg") + self.epsilon)
        if self.p == 1.0:
            return self._pool(tf.abs(x), "avg") + self.epsilon
        return tf.pow(self._pool(tf.pow(tf.abs(x), self.p), "avg") + self.epsilon, 1.0 / self.p)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "p": self.p, "epsilon": self.epsilon}


@register
class LpPooling1D(_LpPooling):
    __doc__ = _LpPooling.__doc__
    rank = 1


@register
class LpPooling2D(_LpPooling):
    __doc__ = _LpPooling.__doc__
    rank = 2


@register
class LpPooling3D(_LpPooling):
    __doc__ = _LpPooling.__doc__
    rank = 3


class _L2Pooling(_LpPooling):
    """sqrt(avg_pool(x^2) + epsilon): L2 pooling (Lp with p = 2) over `pool_size` windows.

    'same' padding averages over the real elements only. No ties: every element contributes.
    Export: MUL -> AVERAGE_POOL_2D -> ADD -> SQRT, TFLite builtins and Core ML ops. In full int8 the
    square rounds small activations to zero; the Edge TPU has no SQRT (the graph leaves it there).
    """

    def __init__(self, pool_size: int | Sequence[int] = 2, strides: int | Sequence[int] | None = None,
                 padding: str = "valid", epsilon: float = 1e-6, **kw: Any):
        kw.pop("p", None)
        super().__init__(pool_size, strides, padding, p=2.0, epsilon=epsilon, **kw)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.pop("p", None)
        return cfg


@register
class L2Pooling1D(_L2Pooling):
    __doc__ = _L2Pooling.__doc__
    rank = 1


@register
class L2Pooling2D(_L2Pooling):
    __doc__ = _L2Pooling.__doc__
    rank = 2


@register
class L2Pooling3D(_L2Pooling):
    __doc__ = _L2Pooling.__doc__
    rank = 3


class _GlobalPooling(Layer):
    """Global {kind} pooling: the {what} over every position of each channel.

    Output (batch, channels), or with `keepdims` the input's rank with every spatial axis of size 1.
    {ties} Export: TFLite {op} over the spatial axes (int8; Edge TPU {tpu}); Core ML {mil}.
    """

    rank = 2
    kind = "max"

    def __init__(self, keepdims: bool = False, **kw: Any):
        super().__init__(**kw)
        self.keepdims = bool(keepdims)

    def call(self, x: Any) -> Any:
        axes = list(range(1, 1 + self.rank))
        fn = tf.reduce_max if self.kind == "max" else tf.reduce_mean
        return fn(x, axis=axes, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape: Any) -> Any:
        s = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape([s[0], *([1] * self.rank), s[-1]] if self.keepdims else [s[0], s[-1]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "keepdims": self.keepdims}


def _gdoc(kind: str, rank: int) -> str:
    tpu = "yes" if rank <= 2 else "no (5-D tensor)"
    if kind == "max":
        return _GlobalPooling.__doc__.format(  # type: ignore[union-attr]
            kind="max", what="largest value", op="REDUCE_MAX", mil="reduce_max", tpu=tpu,
            ties="Ties: the value does not depend on which element wins; the gradient goes to one of them.")
    return _GlobalPooling.__doc__.format(  # type: ignore[union-attr]
        kind="average", what="mean", op="MEAN", mil="reduce_mean", tpu=tpu, ties="No ties.")


@register
class GlobalMaxPooling1D(_GlobalPooling):
    __doc__ = _gdoc("max", 1)
    rank = 1


@register
class GlobalMaxPooling2D(_GlobalPooling):
    __doc__ = _gdoc("max", 2)
    rank = 2


@register
class GlobalMaxPooling3D(_GlobalPooling):
    __doc__ = _gdoc("max", 3)
    rank = 3


@register
class GlobalAveragePooling1D(_GlobalPooling):
    __doc__ = _gdoc("avg", 1)
    rank, kind = 1, "avg"


@register
class GlobalAveragePooling2D(_GlobalPooling):
    __doc__ = _gdoc("avg", 2)
    rank, kind = 2, "avg"


@register
class GlobalAveragePooling3D(_GlobalPooling):
    __doc__ = _gdoc("avg", 3)
    rank, kind = 3, "avg"

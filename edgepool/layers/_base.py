"""Shared pieces of the pooling layers: argument normalisation and the few lowerings every layer uses.

Importing this module imports TensorFlow and tf_keras (through `edgepool._tf`); `edgepool.layers`
itself imports it only when a layer class is asked for.

Every lowering here is built from ops that the TFLite converter emits as builtins and coremltools
converts to MIL ops: MAX_POOL_2D / AVERAGE_POOL_2D (1D and 3D pooling are reshaped onto them),
RESHAPE, STRIDED_SLICE, CONCATENATION, REDUCE_MAX / MEAN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._tf import keras as _keras
from .._tf import tf as _tf

tf = _tf()
k = _keras()
Layer = k.layers.Layer

PADDINGS = ("valid", "same")


def register(cls: type) -> type:
    """Register a layer under the "edgepool" package (saved models name it `edgepool>ClassName`)."""
    return k.utils.register_keras_serializable(package="edgepool")(cls)


def as_tuple(value: int | Sequence[int] | None, rank: int, what: str) -> tuple[int, ...]:
    """`2` -> (2, 2) for rank 2; a sequence must have `rank` positive entries."""
    if value is None:
        raise ValueError(f"{what} is required")
    vals = (int(value),) * rank if isinstance(value, int | float) else tuple(int(v) for v in value)
    if len(vals) != rank or any(v < 1 for v in vals):
        raise ValueError(f"{what} must be a positive int or {rank} positive ints (got {value!r})")
    return vals


def check_padding(padding: str) -> str:
    p = str(padding).lower()
    if p not in PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same' (got {padding!r})")
    return p


def out_len(n: int | None, window: int, stride: int, padding: str) -> int | None:
    """Output length of a pooling axis: floor((n - k) / s) + 1 for 'valid' (the remainder is dropped),
    ceil(n / s) for 'same' (padded windows at the end see only the real elements)."""
    if n is None:
        return None
    if padding == "valid":
        return (n - window) // stride + 1 if n >= window else 0
    return -(-n // stride)


def dims(x: Any) -> list[Any]:
    """The shape of `x`: Python ints where static, scalar tensors where not."""
    static = x.shape.as_list()
    dyn = tf.shape(x)
    return [s if s is not None else dyn[i] for i, s in enumerate(static)]


def _pool2d(x: Any, kind: str, window: tuple[int, int], strides: tuple[int, int], padding: str) -> Any:
    fn = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
    return fn(x, list(window), list(strides), padding.upper())


def pool_nd(x: Any, kind: str, window: tuple[int, ...], strides: tuple[int, ...], padding: str) -> Any:
    """Max ("max") or average ("avg") pooling of a channels-last tensor of rank 1, 2 or 3 spatial axes.

    1D runs as a 2D pool over (L, 1); 3D runs as two 2D pools (H, W, then D over the folded H*W axis):
    exact for max, and for average too (a box window's mean is the mean of per-axis means, and 'same'
    padding excludes the padded elements on each axis, so the counts multiply). TFLite has no builtin
    3D pooling, so this keeps 3D pooling on builtin ops."""
    rank = len(window)
    if rank == 2:
        return _pool2d(x, kind, window, strides, padding)  # type: ignore[arg-type]
    if rank == 1:
        y = _pool2d(tf.expand_dims(x, 2), kind, (window[0], 1), (strides[0], 1), padding)
        return tf.squeeze(y, 2)
    b, d, h, w, c = dims(x)
    y = _pool2d(tf.reshape(x, [-1, h, w, c]), kind, window[1:], strides[1:], padding)  # type: ignore[arg-type]
    _, h2, w2, _ = dims(y)
    y = tf.reshape(y, [-1, d, h2 * w2, c])
    y = _pool2d(y, kind, (window[0], 1), (strides[0], 1), padding)
    d2 = y.shape[1] if y.shape[1] is not None else tf.shape(y)[1]
    return tf.reshape(y, [-1, d2, h2, w2, c])


def upsample_nearest(x: Any, factor: tuple[int, int]) -> Any:
    """(B, h, w, C) -> (B, h*fh, w*fw, C), every value repeated over an fh x fw block.

    Built from RESHAPE and CONCATENATION (4-D tensors only): TFLite builtins that copy memory and keep
    an int8 tensor's scale (values stay bit-identical, so they compare EQUAL with the original), Edge
    TPU ops, and Core ML reshape/concat."""
    fh, fw = factor
    _, h, w, c = dims(x)
    y = tf.reshape(x, [-1, w, 1, c])
    y = tf.concat([y] * fw, axis=2) if fw > 1 else y
    y = tf.reshape(y, [-1, h, 1, w * fw * c])
    y = tf.concat([y] * fh, axis=2) if fh > 1 else y
    return tf.reshape(y, [-1, h * fh, w * fw, c])


def adaptive_bins(n: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling bins along one axis: [floor(i*n/out), ceil((i+1)*n/out)) for i < out."""
    return [((i * n) // out, -(-((i + 1) * n) // out)) for i in range(out)]


def uniform_bins(bins: list[tuple[int, int]]) -> tuple[int, int] | None:
    """(window, stride) when the bins are one fixed-size window at a fixed stride from 0 (a plain pool)."""
    sizes = {e - s for s, e in bins}
    if len(sizes) != 1:
        return None
    stride = bins[1][0] - bins[0][0] if len(bins) > 1 else 1
    if stride < 1 or any(s != i * stride for i, (s, _) in enumerate(bins)):
        return None
    return sizes.pop(), stride


def _reduce(x: Any, kind: str, axis: int) -> Any:
    return tf.reduce_max(x, axis=axis, keepdims=True) if kind == "max" else tf.reduce_mean(x, axis=axis, keepdims=True)


def adaptive_axis(x: Any, kind: str, axis: int, out: int) -> Any:
    """Adaptive pooling of one axis to `out` bins (the others untouched).

    A static length whose bins are one window at one stride lowers to a single pooling op; other static
    lengths to one STRIDED_SLICE + REDUCE_MAX/MEAN per bin and a CONCATENATION; an unknown (None)
    length computes the bin bounds at run time (FLOOR_DIV) and slices with them (SLICE)."""
    n = x.shape[axis]
    if n is not None:
        bins = adaptive_bins(int(n), out)
        if n == out:
            return x
        uni = uniform_bins(bins)
        rank = len(x.shape) - 2
        if uni is not None and rank in (1, 2):
            win = [1] * rank
            st = [1] * rank
            win[axis - 1], st[axis - 1] = uni
            return pool_nd(x, kind, tuple(win), tuple(st), "valid")
        parts = []
        for s, e in bins:
            idx = [slice(None)] * len(x.shape)
            idx[axis] = slice(s, e)
            parts.append(_reduce(x[tuple(idx)], kind, axis))
        return parts[0] if out == 1 else tf.concat(parts, axis=axis)
    length = tf.shape(x)[axis]
    parts = []
    for i in range(out):
        start = (i * length) // out
        end = -((-(i + 1) * length) // out)
        begin = [0] * len(x.shape)
        size = [-1] * len(x.shape)
        begin[axis], size[axis] = start, end - start
        parts.append(_reduce(tf.slice(x, tf.stack(begin), tf.stack(size)), kind, axis))
    return parts[0] if out == 1 else tf.concat(parts, axis=axis)


def adaptive_pool(x: Any, kind: str, output_size: tuple[int, ...]) -> Any:
    """Adaptive max/avg pooling of every spatial axis of a channels-last tensor to `output_size`."""
    rank = len(output_size)
    static = [x.shape[1 + i] for i in range(rank)]
    if rank == 2 and None not in static:
        bins = [uniform_bins(adaptive_bins(int(n), o)) for n, o in zip(static, output_size, strict=True)]
        if all(b is not None for b in bins) and tuple(static) != tuple(output_size):
            return pool_nd(x, kind, tuple(b[0] for b in bins), tuple(b[1] for b in bins), "valid")  # type: ignore[index]
    for i, o in enumerate(output_size):
        x = adaptive_axis(x, kind, 1 + i, int(o))
    return x


def product(values: Sequence[Any]) -> Any:
    return math.prod(values) if all(isinstance(v, int) for v in values) else tf.reduce_prod(tf.stack(values))

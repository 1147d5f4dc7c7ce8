"""Max pooling that also returns where each maximum was, and max unpooling that puts values back there.

For encoder-decoder segmentation (SegNet): the encoder keeps the indices of its max pooling, the
decoder's unpooling writes each pooled value back at its position and zeros elsewhere.

Index convention (PyTorch's MaxPool2d(return_indices=True)): per sample and channel, the flat
row-major position y * W + x in the *input* feature map (height H, width W), as int32.

Tie rule (deterministic): when several elements of a window hold its maximum, the index is the
first of them in row-major order (smallest y, then smallest x). Unpooling writes the value only there.

Neither layer uses TensorFlow's MaxPoolWithArgmax (a custom op in TFLite) or gather/scatter: the
first maximum is found by comparing each element with its window's max (EQUAL), weighting the matches
by a constant that decreases in row-major order, and max-pooling the weights; indices are decoded
with int32 arithmetic. Only non-overlapping windows (strides = pool_size) are supported, as in
SegNet; the spatial size must be static.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._base import Layer, as_tuple, check_padding, out_len, register, tf, upsample_nearest


def _offsets(size: tuple[int, int], windows: tuple[int, int], k: tuple[int, int]) -> tuple[int, int]:
    """(top, left): rows/columns of padding before the first window ('same', as TensorFlow pads: the
    smaller half before); 0 when the windows cover less than the map ('valid' drops the remainder)."""
    return tuple(max(0, (n * kk - size_) // 2) for size_, n, kk in zip(size, windows, k, strict=True))  # type: ignore[return-value]


def _origins(h: int, w: int, k: tuple[int, int], offsets: tuple[int, int], width: int) -> np.ndarray:
    """(h, w, 1) int32: the flat index (in a map `width` wide) of each window's top-left element."""
    ii, jj = np.meshgrid(np.arange(h) * k[0] - offsets[0], np.arange(w) * k[1] - offsets[1], indexing="ij")
    return (ii * width + jj).astype(np.int32)[..., None]


def _fit(x: Any, covered: tuple[int, int], size: tuple[int, int], offsets: tuple[int, int]) -> Any:
    """Crop the (hc, wc) window area at `offsets` to `size`, or zero-pad it at the bottom/right."""
    (hc, wc), (hh, ww), (top, left) = covered, size, offsets
    if (hc, wc) == (hh, ww):
        return x
    x = x[:, top: top + min(hh, hc), left: left + min(ww, wc), :]
    if hh > hc or ww > wc:
        x = tf.pad(x, [[0, 0], [0, max(0, hh - hc)], [0, max(0, ww - wc)], [0, 0]])
    return x


@register
class MaxPoolingWithIndices2D(Layer):
    """2D max pooling over non-overlapping pool_size windows returning [pooled, indices].

    `pooled` is exactly what MaxPooling2D(pool_size, pool_size, padding) gives; `indices` (int32,
    same shape) is the flat position y * W + x of each window's maximum in the input map, per
    channel. Ties: the first maximal element in row-major order. Padding "valid" drops the rows and
    columns no window covers; "same" pads as TensorFlow does (the smaller half before), and padded
    positions are never chosen.

    Export: MAX_POOL_2D, STRIDED_SLICE or PAD (only when the window does not divide the input),
    RESHAPE + CONCATENATION (nearest upsampling of the pooled max), EQUAL, CAST, MUL by a constant,
    MAX_POOL_2D, SUB, CAST, then FLOOR_DIV, MUL, ADD on int32: TFLite builtins, no custom op. In int8
    the comparison sees values of one scale and the window weights are at most kh*kw, so indices are
    exact for the int8 values (int8 rounding can create new ties, which the tie rule resolves). The
    Edge TPU runs none of the index path (EQUAL, CAST, int32 ops): only the pooling before it can
    map. Core ML: max_pool, reshape, concat, equal, cast, mul, sub, floor_div, add.
    """

    def __init__(self, pool_size: int | Sequence[int] = 2, padding: str = "valid", **kw: Any):
        super().__init__(**kw)
        self.pool_size = pool_size if isinstance(pool_size, int) else tuple(pool_size)
        self.padding = check_padding(padding)
        self._k = as_tuple(self.pool_size, 2, "pool_size")

    def call(self, x: Any) -> list[Any]:
        kh, kw = self._k
        _, h_in, w_in, c = x.shape.as_list()
        if h_in is None or w_in is None or c is None:
            raise ValueError("MaxPoolingWithIndices2D needs a static height, width and channel count")
        h, w = out_len(h_in, kh, kh, self.padding), out_len(w_in, kw, kw, self.padding)
        hc, wc = h * kh, w * kw  # the area the windows cover
        top, left = _offsets((h_in, w_in), (h, w), self._k)
        pooled = tf.nn.max_pool2d(x, [kh, kw], [kh, kw], self.padding.upper())
        valid = np.ones((hc, wc, 1), np.int32)
        if (hc, wc) != (h_in, w_in):
            if hc <= h_in and wc <= w_in:
                x = x[:, :hc, :wc, :]
            else:  # zero padding keeps an int8 tensor's scale; the padded positions are masked below
                x = tf.pad(x, [[0, 0], [top, hc - h_in - top], [left, wc - w_in - left], [0, 0]])
                valid[:top], valid[top + h_in:], valid[:, :left], valid[:, left + w_in:] = 0, 0, 0, 0
        # A match with its window's max weighs kh*kw - (its row-major place in the window), padded
        # positions 0: the window's largest weight is its first maximum (MAX_POOL_2D finds it). The
        # weights are small integers (at most kh*kw), so an int8 model rounds them back exactly (+0.5).
        hit = tf.cast(tf.equal(x, upsample_nearest(pooled, (kh, kw))), x.dtype)
        yy, xx = np.meshgrid(np.arange(hc) % kh, np.arange(wc) % kw, indexing="ij")
        order = ((kh * kw - (yy * kw + xx))[..., None] * valid).astype(np.float32)
        first = tf.nn.max_pool2d(hit * tf.constant(order, dtype=x.dtype), [kh, kw], [kh, kw], "VALID")
        local = tf.cast(kh * kw - first + 0.5, tf.int32)  # the first maximum's row-major place; int32 on
        dy = tf.math.floordiv(local, kw)
        index = tf.constant(_origins(h, w, self._k, (top, left), w_in)) + dy * w_in + (local - dy * kw)
        return [pooled, index]

    def compute_output_shape(self, input_shape: Any) -> Any:
        s = tf.TensorShape(input_shape).as_list()
        h = out_len(s[1], self._k[0], self._k[0], self.padding)
        w = out_len(s[2], self._k[1], self._k[1], self.padding)
        shape = tf.TensorShape([s[0], h, w, s[3]])
        return [shape, shape]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding}


@register
class MaxUnpooling2D(Layer):
    """Max unpooling: call([values, indices]) writes each value at its index, zeros elsewhere.

    `indices` are what MaxPoolingWithIndices2D returned (flat y * W + x of the encoder's input map,
    per channel); `output_size` (H, W) is that map's size (default: values' size times pool_size,
    right for inputs the windows divide). Each index must lie inside its own window (what max pooling
    produces); an index outside it writes nothing. With ties the pooling layer chose the first maximal
    element in row-major order, so unpooling writes the value there only: unpool(pool(x)) keeps x at
    exactly one position per window.

    Export: SUB, FLOOR_DIV, MUL, ADD on int32 (the place of each index in its window), per window
    position an EQUAL, CAST and MUL, interleaved by RESHAPE + CONCATENATION, then STRIDED_SLICE / PAD
    to `output_size`: TFLite
    builtins, no scatter or custom op. int8: values stay int8, indices int32. The Edge TPU has no
    int32 arithmetic, EQUAL or CAST (the graph leaves it there). Core ML: the same ops in MIL.
    """

    def __init__(self, pool_size: int | Sequence[int] = 2, output_size: Sequence[int] | None = None, **kw: Any):
        super().__init__(**kw)
        self.pool_size = pool_size if isinstance(pool_size, int) else tuple(pool_size)
        self.output_size = tuple(int(v) for v in output_size) if output_size is not None else None
        self._k = as_tuple(self.pool_size, 2, "pool_size")

    def _size(self, h: int, w: int) -> tuple[int, int]:
        return self.output_size or (h * self._k[0], w * self._k[1])  # type: ignore[return-value]

    def call(self, inputs: Sequence[Any]) -> Any:
        values, indices = inputs
        kh, kw = self._k
        _, h, w, c = values.shape.as_list()
        if h is None or w is None or c is None:
            raise ValueError("MaxUnpooling2D needs a static height, width and channel count")
        size = self._size(h, w)
        hc, wc = h * kh, w * kw
        offsets = _offsets(size, (h, w), self._k)
        rel = tf.cast(indices, tf.int32) - tf.constant(_origins(h, w, self._k, offsets, size[1]))
        dy = tf.math.floordiv(rel, size[1])
        local = dy * kw + (rel - dy * size[1])  # window-local row-major index (outside 0..kh*kw-1: no write)
        # one plane per window position (dy, dx): the values whose maximum was there, interleaved back
        rows = []
        for dy in range(kh):
            cols = [tf.reshape(values * tf.cast(tf.equal(local, dy * kw + dx), values.dtype), [-1, w, 1, c])
                    for dx in range(kw)]
            row = tf.concat(cols, axis=2) if kw > 1 else cols[0]  # (B*h, w, kw, C)
            rows.append(tf.reshape(row, [-1, h, 1, wc * c]))
        out = tf.reshape(tf.concat(rows, axis=2) if kh > 1 else rows[0], [-1, hc, wc, c])
        return _fit(out, (hc, wc), size, offsets)

    def compute_output_shape(self, input_shape: Any) -> Any:
        s = tf.TensorShape(input_shape[0]).as_list()
        return tf.TensorShape([s[0], *self._size(s[1], s[2]), s[3]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pool_size": self.pool_size,
                "output_size": list(self.output_size) if self.output_size else None}

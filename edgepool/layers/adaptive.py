"""Adaptive max / average pooling to a fixed output size, and spatial pyramid pooling.

Adaptive pooling gives the same output size for any input size, with PyTorch's bins
(AdaptiveMaxPool2d / AdaptiveAvgPool2d): along an axis of length n pooled to `out`, bin i covers
[floor(i * n / out), ceil((i + 1) * n / out)). Bins may overlap by one element when `out` does not
divide n; an output larger than the input repeats elements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import Layer, adaptive_pool, as_tuple, register, tf

_ADAPTIVE_DOC = """Adaptive {kind} pooling of the {rank}D spatial axes to `output_size` (PyTorch's bins).

    Bin i of an axis of length n pooled to `out`: [floor(i*n/out), ceil((i+1)*n/out)); the output is
    the {what} of each bin. {ties} Input sizes may differ from call to call (spatial axes of size None):
    the bins then follow the actual size at run time.

    Export (lowering, per axis): a static length whose bins are one window at one stride (n divisible
    by out, or e.g. 7 -> 3: windows of 3 at stride 2) becomes one {pool}; other static lengths one
    STRIDED_SLICE + {reduce} per bin and a CONCATENATION (cost grows with the output size); an unknown
    length adds SHAPE / FLOOR_DIV / SLICE. All TFLite builtins; int8 keeps the input's scale
    ({int8}). Edge TPU: {tpu}. Core ML: slice_by_index, {mil}, concat.
    """


class _Adaptive(Layer):
    rank = 2
    kind = "max"

    def __init__(self, output_size: int | Sequence[int] = 1, **kw: Any):
        super().__init__(**kw)
        self.output_size = output_size if isinstance(output_size, int) else tuple(output_size)
        self._out = as_tuple(self.output_size, self.rank, "output_size")

    def call(self, x: Any) -> Any:
        return adaptive_pool(x, self.kind, self._out)

    def compute_output_shape(self, input_shape: Any) -> Any:
        s = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape([s[0], *self._out, s[-1]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "output_size": self.output_size}


def _adoc(kind: str, rank: int) -> str:
    tpu = ("yes for static sizes (the ops of the lowering are in the supported list)" if rank <= 2
           else "no (5-D tensors)")
    if kind == "max":
        return _ADAPTIVE_DOC.format(kind="max", rank=rank, what="largest value", pool="MAX_POOL_2D",
                                    reduce="REDUCE_MAX", mil="reduce_max", tpu=tpu, int8="exact in int8",
                                    ties="Ties: the value does not depend on which element wins; the gradient "
                                         "goes to one maximal element per bin.")
    return _ADAPTIVE_DOC.format(kind="average", rank=rank, what="mean", pool="AVERAGE_POOL_2D", reduce="MEAN",
                                mil="reduce_mean", tpu=tpu, int8="rounded to the output scale", ties="No ties.")


@register
class AdaptiveMaxPooling1D(_Adaptive):
    __doc__ = _adoc("max", 1)
    rank = 1


@register
class AdaptiveMaxPooling2D(_Adaptive):
    __doc__ = _adoc("max", 2)
    rank = 2


@register
class AdaptiveMaxPooling3D(_Adaptive):
    __doc__ = _adoc("max", 3)
    rank = 3


@register
class AdaptiveAveragePooling1D(_Adaptive):
    __doc__ = _adoc("avg", 1)
    rank, kind = 1, "avg"


@register
class AdaptiveAveragePooling2D(_Adaptive):
    __doc__ = _adoc("avg", 2)
    rank, kind = 2, "avg"


@register
class AdaptiveAveragePooling3D(_Adaptive):
    __doc__ = _adoc("avg", 3)
    rank, kind = 3, "avg"


@register
class SpatialPyramidPooling2D(Layer):
    """Spatial pyramid pooling (He et al. 2014): adaptive pooling to n x n for each n in `levels`,
    each flattened (row-major, channels last) and concatenated.

    Output (batch, sum(n*n for n in levels) * channels), the same length for every input size, so a
    Dense head after it works at any resolution. `mode` "max" (the paper's) or "avg"; ties as in
    AdaptiveMaxPooling2D (the value does not depend on the winner). Export: level 1 is global pooling
    (REDUCE_MAX / MEAN); other levels lower as AdaptiveMaxPooling2D does (one pooling op when n
    divides the input, else slices + reductions + CONCATENATION), then RESHAPE and one final
    CONCATENATION: all TFLite builtins, int8 and Edge TPU ops for static input sizes; Core ML
    reduce/slice_by_index/reshape/concat.
    """

    def __init__(self, levels: Sequence[int] = (1, 2, 4), mode: str = "max", **kw: Any):
        super().__init__(**kw)
        self.levels = tuple(int(n) for n in levels)
        if not self.levels or any(n < 1 for n in self.levels):
            raise ValueError(f"levels must be positive ints (got {levels!r})")
        if mode not in ("max", "avg"):
            raise ValueError(f"mode must be 'max' or 'avg' (got {mode!r})")
        self.mode = mode

    def call(self, x: Any) -> Any:
        c = x.shape[-1]
        parts = []
        for n in self.levels:
            if n == 1:
                fn = tf.reduce_max if self.mode == "max" else tf.reduce_mean
                parts.append(fn(x, axis=[1, 2]))
            else:
                parts.append(tf.reshape(adaptive_pool(x, self.mode, (n, n)), [-1, n * n * c]))
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        s = tf.TensorShape(input_shape).as_list()
        return tf.TensorShape([s[0], sum(n * n for n in self.levels) * s[-1]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "levels": list(self.levels), "mode": self.mode}

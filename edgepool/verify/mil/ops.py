"""The MIL ops the NumPy executor implements, registered by op type in `executor.OPS`.

Each op takes the run context and its resolved inputs (name -> NumPy array or Python value) and returns
its output value(s); the executor stores each in the dtype the program declares. Ops compute in
float32 (float64 for reductions and softmax). An op variant not implemented here raises
`UnsupportedOp`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ...numeric import softmax
from .executor import NP_DTYPES, OPS, Ctx, OpFn, UnsupportedOp, f32, ints, register


@register("const")
def _const_op(ctx: Ctx, a: dict[str, Any]) -> Any:  # values are read from the var; never called
    raise AssertionError("const ops are not executed")


@register("identity")
def _identity(ctx: Ctx, a: dict[str, Any]) -> Any:
    return np.asarray(a["x"])


@register("cast")
def _cast(ctx: Ctx, a: dict[str, Any]) -> Any:
    dt = NP_DTYPES.get(str(a["dtype"]))
    if dt is None:
        raise UnsupportedOp("cast", f"to {a['dtype']}")
    x = np.asarray(a["x"])
    if np.issubdtype(dt, np.integer) and x.dtype.kind == "f":
        x = np.trunc(x)
    return x.astype(dt)


# ---- layout


@register("transpose")
def _transpose(ctx: Ctx, a: dict[str, Any]) -> Any:
    return np.transpose(a["x"], ints(a["perm"]))


@register("reshape")
def _reshape(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = np.asarray(a["x"])
    shape = ints(a["shape"])
    # run batched: a shape written for batch 1 keeps the runtime batch
    if ctx.batch > 1 and shape and shape[0] == 1 and x.shape[0] == ctx.batch:
        shape[0] = ctx.batch
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


@register("flatten2d")
def _flatten2d(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = np.asarray(a["x"])
    axis = int(a.get("axis", 1))
    axis = axis % x.ndim if axis != x.ndim else axis
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


@register("squeeze")
def _squeeze(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = np.asarray(a["x"])
    if a.get("axes") is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1 and not (i == 0 and ctx.batch > 1))
    else:
        axes = tuple(ints(a["axes"]))
    return np.squeeze(x, axis=axes)


@register("expand_dims")
def _expand_dims(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = np.asarray(a["x"])
    axes = sorted(ax % (x.ndim + len(ints(a["axes"]))) for ax in ints(a["axes"]))
    for ax in axes:
        x = np.expand_dims(x, ax)
    return x


@register("concat")
def _concat(ctx: Ctx, a: dict[str, Any]) -> Any:
    if bool(a.get("interleave", False)):
        raise UnsupportedOp("concat", "interleave=True")
    vals = [np.asarray(v) for v in a["values"]]
    dtype = np.result_type(*vals)
    return np.concatenate([v.astype(dtype) for v in vals], axis=int(a["axis"]))


@register("pad")
def _pad(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = f32(a["x"])
    pads = ints(a["pad"])
    k = len(pads) // 2
    width = [(0, 0)] * (x.ndim - k) + [(pads[2 * i], pads[2 * i + 1]) for i in range(k)]
    mode = str(a.get("mode", "constant"))
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=float(a.get("constant_val", 0.0)))
    if mode == "reflect":
        return np.pad(x, width, mode="reflect")
    if mode == "replicate":
        return np.pad(x, width, mode="edge")
    raise UnsupportedOp("pad", f"mode {mode}")


@register("slice_by_index")
def _slice_by_index(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = np.asarray(a["x"])
    n = x.ndim
    begin, end = ints(a["begin"]), ints(a["end"])
    stride = ints(a["stride"]) if a.get("stride") is not None else [1] * n
    bm = [bool(v) for v in np.asarray(a.get("begin_mask", [False] * n)).reshape(-1)]
    em = [bool(v) for v in np.asarray(a.get("end_mask", [False] * n)).reshape(-1)]
    sm = [bool(v) for v in np.asarray(a.get("squeeze_mask", [False] * n)).reshape(-1)]
    sl = []
    for i in range(n):
        if sm[i]:
            sl.append(begin[i])
            continue
        b = None if bm[i] else begin[i]
        e = None if em[i] else end[i]
        if (
            i == 0
            and ctx.batch > 1
            and x.shape[0] == ctx.batch
            and not bm[i]
            and not em[i]
            and (b, e) == (0, 1)
        ):
            b, e = None, None  # a batch-1 slice of the whole batch
        sl.append(slice(b, e, stride[i]))
    return x[tuple(sl)]


# ---- convolution and pooling (NC + spatial layout, as MIL)


def _same_pads(size: int, k: int, s: int, d: int, lower: bool = False) -> tuple[int, int]:
    eff = (k - 1) * d + 1
    out = math.ceil(size / s)
    total = max((out - 1) * s + eff - size, 0)
    small, big = total // 2, total - total // 2
    return (big, small) if lower else (small, big)


def _spatial_pads(
    pad_type: str, pad: Any, spatial: tuple[int, ...], ks: list[int], st: list[int], dl: list[int], op: str
) -> list[tuple[int, int]]:
    if pad_type == "valid":
        return [(0, 0)] * len(spatial)
    if pad_type in ("same", "same_lower"):
        return [
            _same_pads(n, k, s, d, lower=pad_type == "same_lower")
            for n, k, s, d in zip(spatial, ks, st, dl, strict=True)
        ]
    if pad_type == "custom":
        p = ints(pad)
        return [(p[2 * i], p[2 * i + 1]) for i in range(len(spatial))]
    raise UnsupportedOp(op, f"pad_type {pad_type}")


def _windows(x: np.ndarray, ks: list[int], st: list[int], dl: list[int]) -> np.ndarray:
    """(N, C, H, W) -> (N, C, Ho, Wo, kh, kw) strided view."""
    eff = [(k - 1) * d + 1 for k, d in zip(ks, dl, strict=True)]
    win = np.lib.stride_tricks.sliding_window_view(x, eff, axis=(2, 3))
    win = win[:, :, :: st[0], :: st[1], :: dl[0], :: dl[1]]
    return win


@register("conv")
def _conv(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = f32(a["x"])
    w = f32(a["weight"])
    if x.ndim != 4:
        raise UnsupportedOp("conv", f"{x.ndim - 2}-D")
    n, c, h, wd = x.shape
    cout, cin_g, kh, kw = w.shape
    groups = int(a.get("groups", 1))
    st = ints(a["strides"]) if a.get("strides") is not None else [1, 1]
    dl = ints(a["dilations"]) if a.get("dilations") is not None else [1, 1]
    pads = _spatial_pads(str(a.get("pad_type", "valid")), a.get("pad"), (h, wd), [kh, kw], st, dl, "conv")
    x = np.pad(x, [(0, 0), (0, 0), *pads])
    win = _windows(x, [kh, kw], st, dl)  # n, c, ho, wo, kh, kw
    ho, wo = win.shape[2], win.shape[3]
    if cin_g * groups != c:
        raise UnsupportedOp("conv", f"weight {w.shape} does not match {c} channels / {groups} groups")
    if groups == 1:
        y = np.einsum("nchwij,ocij->nohw", win, w, optimize=True)
    elif cin_g == 1 and cout == c:  # depthwise, multiplier 1
        y = np.einsum("nchwij,cij->nchw", win, w[:, 0], optimize=True)
    else:
        win_g = win.reshape(n, groups, cin_g, ho, wo, kh, kw)
        w_g = w.reshape(groups, cout // groups, cin_g, kh, kw)
        y = np.einsum("ngchwij,gocij->ngohw", win_g, w_g, optimize=True).reshape(n, cout, ho, wo)
    if a.get("bias") is not None:
        y = y + f32(a["bias"]).reshape(1, -1, 1, 1)
    return y


def _pool(ctx: Ctx, a: dict[str, Any], kind: str) -> np.ndarray:
    x = f32(a["x"])
    if x.ndim != 4:
        raise UnsupportedOp(kind, f"{x.ndim - 2}-D")
    ks = ints(a["kernel_sizes"])
    st = ints(a["strides"]) if a.get("strides") is not None else [1, 1]
    pads = _spatial_pads(str(a.get("pad_type", "valid")), a.get("pad"), x.shape[2:], ks, st, [1, 1], kind)
    if bool(a.get("ceil_mode", False)):
        grown = []
        for (lo, hi), n, k, s in zip(pads, x.shape[2:], ks, st, strict=True):
            span = n + lo + hi - k
            out = math.ceil(span / s) + 1
            if (out - 1) * s >= n + lo:  # last window would start in the padding only
                out -= 1
            grown.append((lo, hi + max((out - 1) * s + k - (n + lo + hi), 0)))
        pads = grown
    valid = np.pad(np.ones(x.shape[2:], np.float32), pads)
    fill = -np.inf if kind == "max_pool" else 0.0
    xp = np.pad(x, [(0, 0), (0, 0), *pads], constant_values=fill)
    win = _windows(xp, ks, st, [1, 1])
    if kind == "max_pool":
        return win.max(axis=(-2, -1))
    if kind == "l2_pool":
        return np.sqrt((win.astype(np.float64) ** 2).sum(axis=(-2, -1))).astype(np.float32)
    total = win.astype(np.float64).sum(axis=(-2, -1))
    if bool(a.get("exclude_padding_from_average", False)):
        cnt = _windows(valid[None, None], ks, st, [1, 1]).sum(axis=(-2, -1))
    else:
        # padding counts, but the extra ceil-mode cells past the explicit padding do not
        orig = _spatial_pads(str(a.get("pad_type", "valid")), a.get("pad"), x.shape[2:], ks, st, [1, 1], kind)
        inner = np.pad(np.ones(x.shape[2:], np.float32), orig)
        inner = np.pad(inner, [(0, p[1] - o[1]) for p, o in zip(pads, orig, strict=True)])
        cnt = _windows(inner[None, None], ks, st, [1, 1]).sum(axis=(-2, -1))
    return (total / cnt).astype(np.float32)


@register("max_pool")
def _max_pool(ctx: Ctx, a: dict[str, Any]) -> Any:
    return _pool(ctx, a, "max_pool")


@register("avg_pool")
def _avg_pool(ctx: Ctx, a: dict[str, Any]) -> Any:
    return _pool(ctx, a, "avg_pool")


@register("l2_pool")
def _l2_pool(ctx: Ctx, a: dict[str, Any]) -> Any:
    return _pool(ctx, a, "l2_pool")


@register("batch_norm")
def _batch_norm(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = f32(a["x"])
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = f32(a["mean"]).reshape(shape)
    var = f32(a["variance"]).reshape(shape)
    gamma = f32(a["gamma"]).reshape(shape) if a.get("gamma") is not None else 1.0
    beta = f32(a["beta"]).reshape(shape) if a.get("beta") is not None else 0.0
    eps = float(a.get("epsilon", 1e-5))
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


# ---- linear algebra


@register("matmul")
def _matmul(ctx: Ctx, a: dict[str, Any]) -> Any:
    x, y = f32(a["x"]), f32(a["y"])
    if bool(a.get("transpose_x", False)):
        x = np.swapaxes(x, -1, -2)
    if bool(a.get("transpose_y", False)):
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


@register("linear")
def _linear(ctx: Ctx, a: dict[str, Any]) -> Any:
    y = np.matmul(f32(a["x"]), f32(a["weight"]).T)
    if a.get("bias") is not None:
        y = y + f32(a["bias"])
    return y


# ---- elementwise


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> OpFn:
    def run_binary(ctx: Ctx, a: dict[str, Any]) -> Any:
        x, y = np.asarray(a["x"]), np.asarray(a["y"])
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            x, y = f32(x), f32(y)
        return fn(x, y)

    return run_binary


for _name, _fn in {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "real_div": np.divide,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "pow": np.power,
    "floor_div": np.floor_divide,
    "mod": np.mod,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
}.items():
    OPS[_name] = _binary(_fn)


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> OpFn:
    def run_unary(ctx: Ctx, a: dict[str, Any]) -> Any:
        return fn(f32(a["x"]))

    return run_unary


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


for _name, _ufn in {
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "silu": lambda x: x * _sigmoid(x),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "sqrt": np.sqrt,
    "square": np.square,
    "exp": np.exp,
    "exp2": np.exp2,
    "abs": np.abs,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,
    "sign": np.sign,
    "sin": np.sin,
    "cos": np.cos,
    "erf": lambda x: np.vectorize(math.erf, otypes=[np.float32])(x),
}.items():
    OPS[_name] = _unary(_ufn)


@register("rsqrt")
def _rsqrt(ctx: Ctx, a: dict[str, Any]) -> Any:
    return 1.0 / np.sqrt(f32(a["x"]) + float(a.get("epsilon", 1e-12)))


@register("inverse")
def _inverse(ctx: Ctx, a: dict[str, Any]) -> Any:
    return 1.0 / (f32(a["x"]) + float(a.get("epsilon", 1e-4)))


@register("log")
def _log(ctx: Ctx, a: dict[str, Any]) -> Any:
    return np.log(f32(a["x"]) + float(a.get("epsilon", 1e-45)))


@register("clip")
def _clip(ctx: Ctx, a: dict[str, Any]) -> Any:
    return np.clip(f32(a["x"]), float(a["alpha"]), float(a["beta"]))


@register("leaky_relu")
def _leaky_relu(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = f32(a["x"])
    return np.where(x >= 0, x, x * float(a.get("alpha", 0.01)))


@register("elu")
def _elu(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = f32(a["x"])
    return np.where(x > 0, x, float(a.get("alpha", 1.0)) * np.expm1(np.minimum(x, 0.0)))


@register("gelu")
def _gelu(ctx: Ctx, a: dict[str, Any]) -> Any:
    x = f32(a["x"])
    mode = str(a.get("mode", "EXACT"))
    if mode == "EXACT":
        return 0.5 * x * (1.0 + np.vectorize(math.erf, otypes=[np.float32])(x / math.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid(1.702 * x)
    raise UnsupportedOp("gelu", f"mode {mode}")


@register("softmax")
def _softmax(ctx: Ctx, a: dict[str, Any]) -> Any:
    return softmax(f32(a["x"]), axis=int(a.get("axis", -1))).astype(np.float32)


# ---- reductions


def _reduce(fn: Callable[..., np.ndarray]) -> OpFn:
    def run_reduce(ctx: Ctx, a: dict[str, Any]) -> Any:
        x = f32(a["x"]).astype(np.float64)
        axes = tuple(ints(a["axes"])) if a.get("axes") is not None else None
        keep = bool(a.get("keep_dims", False))
        return np.asarray(fn(x, axis=axes, keepdims=keep)).astype(np.float32)

    return run_reduce


for _name, _rfn in {
    "reduce_mean": np.mean,
    "reduce_sum": np.sum,
    "reduce_max": np.max,
    "reduce_min": np.min,
    "reduce_prod": np.prod,
    "reduce_sum_square": lambda x, axis, keepdims: np.sum(x * x, axis=axis, keepdims=keepdims),
    "reduce_l2_norm": lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)),
    "reduce_l1_norm": lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "reduce_log_sum_exp": lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims)),
}.items():
    OPS[_name] = _reduce(_rfn)


# ---- weight decompression (constexpr ops)


@register("constexpr_cast")
def _constexpr_cast(ctx: Ctx, a: dict[str, Any]) -> Any:
    dt = NP_DTYPES.get(str(a["output_dtype"]))
    if dt is None:
        raise UnsupportedOp("constexpr_cast", f"to {a['output_dtype']}")
    return np.asarray(a["source_val"]).astype(dt)


@register("constexpr_affine_dequantize")
def _constexpr_affine_dequantize(ctx: Ctx, a: dict[str, Any]) -> Any:
    q = np.asarray(a["quantized_data"]).astype(np.float32)
    axis = int(a["axis"]) % q.ndim
    shape = [1] * q.ndim
    zp = np.asarray(a["zero_point"]).astype(np.float32)
    sc = f32(a["scale"])
    if zp.ndim:
        zp = zp.reshape([-1 if i == axis else 1 for i in range(q.ndim)])
    if sc.ndim:
        sc = sc.reshape([-1 if i == axis else 1 for i in range(q.ndim)])
    del shape
    return (q - zp) * sc


def _expand_blocks(v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Repeat a per-block tensor (same rank, dims dividing `shape`) up to `shape`."""
    v = np.asarray(v)
    if v.ndim != len(shape):
        raise UnsupportedOp("constexpr_blockwise_shift_scale", f"rank {v.ndim} vs {len(shape)}")
    for ax, (d, n) in enumerate(zip(v.shape, shape, strict=True)):
        if d != n:
            if n % d:
                raise UnsupportedOp("constexpr_blockwise_shift_scale", f"block {d} of {n}")
            v = np.repeat(v, n // d, axis=ax)
    return v


@register("constexpr_blockwise_shift_scale")
def _constexpr_blockwise_shift_scale(ctx: Ctx, a: dict[str, Any]) -> Any:
    data = np.asarray(a["data"]).astype(np.float32)
    scale = _expand_blocks(f32(a["scale"]), data.shape)
    if a.get("offset") is not None:
        data = data - _expand_blocks(np.asarray(a["offset"]).astype(np.float32), data.shape)
    return data * scale


def unpack_indices(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """iOS16 `constexpr_lut_to_dense` indices: `nbits`-bit values packed LSB-first into bytes."""
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8).reshape(-1), bitorder="little")
    bits = bits[: count * nbits].reshape(count, nbits).astype(np.int64)
    return bits @ (1 << np.arange(nbits, dtype=np.int64))


@register("constexpr_lut_to_dense")
def _constexpr_lut_to_dense(ctx: Ctx, a: dict[str, Any]) -> Any:
    lut = f32(a["lut"])
    idx = np.asarray(a["indices"])
    if a.get("shape") is not None:  # iOS16: 1-D lut, packed indices, explicit shape
        shape = tuple(ints(a["shape"]))
        nbits = int(round(math.log2(lut.shape[-1])))
        if lut.ndim != 1 or 2**nbits != lut.shape[-1]:
            raise UnsupportedOp("constexpr_lut_to_dense", f"lut shape {lut.shape}")
        return lut[unpack_indices(idx, nbits, int(np.prod(shape)))].reshape(shape)
    # iOS18: indices have the weight's shape; lut is [blocks per axis..., 2**nbits, vector_size]
    if lut.ndim != idx.ndim + 2 or lut.shape[-1] != 1:
        raise UnsupportedOp("constexpr_lut_to_dense", f"vector palettization, lut shape {lut.shape}")
    grids = []
    for ax, (n, b) in enumerate(zip(idx.shape, lut.shape[:-2], strict=True)):
        if n % b:
            raise UnsupportedOp("constexpr_lut_to_dense", f"block {b} of {n}")
        g = np.arange(n) // (n // b)
        grids.append(g.reshape([-1 if i == ax else 1 for i in range(idx.ndim)]))
    return lut[(*grids, idx.astype(np.int64), 0)]


# ---- classifier


@register("classify")
def _classify(ctx: Ctx, a: dict[str, Any]) -> Any:
    probs = f32(a["probabilities"])
    classes = list(a["classes"].ls) if hasattr(a["classes"], "ls") else list(a["classes"])
    probs2 = probs.reshape(probs.shape[0], -1) if probs.ndim > 1 else probs.reshape(1, -1)
    if probs2.shape[1] != len(classes):
        raise UnsupportedOp("classify", f"{probs2.shape[1]} scores for {len(classes)} classes")
    labels = np.asarray([str(classes[i]) for i in probs2.argmax(axis=1)], dtype=object)
    return labels, probs2


__all__ = ["unpack_indices"]

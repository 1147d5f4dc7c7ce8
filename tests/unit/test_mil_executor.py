"""The NumPy MIL executor, op by op, against Keras / NumPy references.

Programs are built with coremltools' MIL Builder (the same PyMIL objects `load_program` returns for a
saved package), run by `edgepool.verify.mil.run` (executor.py, with the ops of ops.py), and compared
with an independent reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("coremltools")

from edgepool.verify import mil  # noqa: E402
from edgepool.verify.mil.executor import resolve  # noqa: E402


@pytest.fixture(scope="module")
def mb():
    from coremltools.converters.mil import Builder

    return Builder


@pytest.fixture(scope="module")
def K():
    from edgepool._tf import keras

    return keras()


def _run1(prog, x, **feeds):
    p = mil.program_from_pymil(prog)
    name = p.inputs[0].name
    out = mil.run(p, {name: x, **feeds})
    return out[p.output_names[0]]


def _program(mb, shape, body, opset=None):
    import coremltools as ct

    kw = {"opset_version": opset or ct.target.iOS15}

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], **kw)
    def prog(x):
        return body(x)

    return prog


RNG = np.random.default_rng(0)


def _nhwc_to_nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------- conv


@pytest.mark.parametrize(
    "kernel,strides,dilation,padding",
    [
        (3, 1, 1, "same"),
        (3, 2, 1, "same"),
        (3, 2, 1, "valid"),
        (1, 1, 1, "valid"),
        (3, 1, 2, "same"),
        (5, 3, 1, "same"),
    ],
)
def test_conv_matches_keras(mb, K, kernel, strides, dilation, padding):
    x = RNG.normal(size=(2, 9, 11, 3)).astype(np.float32)
    layer = K.layers.Conv2D(4, kernel, strides=strides, dilation_rate=dilation, padding=padding)
    ref = layer(x).numpy()
    w, b = layer.get_weights()  # (kh, kw, cin, cout)
    wt = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
    prog = _program(
        mb,
        (2, 3, 9, 11),
        lambda v: mb.conv(
            x=v, weight=wt, bias=b, strides=[strides] * 2, dilations=[dilation] * 2, pad_type=padding
        ),
    )
    got = _run1(prog, _nhwc_to_nchw(x)).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


def test_depthwise_and_grouped_conv_match_references(mb, K):
    x = RNG.normal(size=(1, 8, 8, 6)).astype(np.float32)
    dw = K.layers.DepthwiseConv2D(3, padding="same", use_bias=False)
    ref = dw(x).numpy()
    w = dw.get_weights()[0]  # (kh, kw, c, 1)
    wt = np.ascontiguousarray(w.transpose(2, 3, 0, 1))  # (c, 1, kh, kw)
    prog = _program(mb, (1, 6, 8, 8), lambda v: mb.conv(x=v, weight=wt, groups=6, pad_type="same"))
    np.testing.assert_allclose(_run1(prog, _nhwc_to_nchw(x)).transpose(0, 2, 3, 1), ref, atol=1e-5)

    # groups=2: two independent convs over channel halves
    wg = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)
    prog = _program(mb, (1, 6, 8, 8), lambda v: mb.conv(x=v, weight=wg, groups=2, pad_type="valid"))
    got = _run1(prog, _nhwc_to_nchw(x))
    xc = _nhwc_to_nchw(x)
    halves = []
    for g in range(2):
        conv = K.layers.Conv2D(2, 3, padding="valid", use_bias=False)
        conv.build((None, 8, 8, 3))
        conv.set_weights([wg[2 * g : 2 * g + 2].transpose(2, 3, 1, 0)])
        halves.append(conv(xc[:, 3 * g : 3 * g + 3].transpose(0, 2, 3, 1)).numpy())
    np.testing.assert_allclose(got.transpose(0, 2, 3, 1), np.concatenate(halves, -1), atol=1e-5)


def test_conv_custom_padding(mb):
    x = RNG.normal(size=(1, 1, 5, 5)).astype(np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    prog = _program(mb, (1, 1, 5, 5), lambda v: mb.conv(x=v, weight=w, pad_type="custom", pad=[1, 0, 2, 1]))
    got = _run1(prog, x)
    xp = np.pad(x[0, 0], [(1, 0), (2, 1)])
    ref = np.array(
        [[xp[i : i + 3, j : j + 3].sum() for j in range(xp.shape[1] - 2)] for i in range(xp.shape[0] - 2)]
    )
    np.testing.assert_allclose(got[0, 0], ref, atol=1e-5)


# ---------------------------------------------------------------- pooling


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize(
    "size,strides,padding", [(2, 2, "valid"), (2, 2, "same"), (3, 2, "same"), (3, 1, "valid")]
)
def test_pooling_matches_keras(mb, K, kind, size, strides, padding):
    x = RNG.normal(size=(2, 7, 9, 3)).astype(np.float32)  # odd sizes: "same" pads
    cls = K.layers.MaxPooling2D if kind == "max" else K.layers.AveragePooling2D
    ref = cls(size, strides, padding)(x).numpy()
    op = mb.max_pool if kind == "max" else mb.avg_pool
    extra = {} if kind == "max" else {"exclude_padding_from_average": True}  # TF's semantics
    prog = _program(
        mb,
        (2, 3, 7, 9),
        lambda v: op(x=v, kernel_sizes=[size] * 2, strides=[strides] * 2, pad_type=padding, **extra),
    )
    got = _run1(prog, _nhwc_to_nchw(x)).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_avg_pool_counting_padding_and_ceil_mode(mb):
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    # padding counted in the average: corner window [[0,0],[0,x00]] / 4
    prog = _program(
        mb,
        (1, 1, 5, 5),
        lambda v: mb.avg_pool(
            x=v,
            kernel_sizes=[2, 2],
            strides=[2, 2],
            pad_type="custom",
            pad=[1, 0, 1, 0],
            exclude_padding_from_average=False,
        ),
    )
    got = _run1(prog, x)
    assert got.shape == (1, 1, 3, 3)
    assert got[0, 0, 0, 0] == pytest.approx(0.0 / 4)
    assert got[0, 0, 1, 1] == pytest.approx((6 + 7 + 11 + 12) / 4)
    # ceil mode: 5 -> 3 windows of 2 with stride 2, the last one sees one row/col
    prog = _program(
        mb,
        (1, 1, 5, 5),
        lambda v: mb.max_pool(x=v, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid", ceil_mode=True),
    )
    got = _run1(prog, x)
    assert got.shape == (1, 1, 3, 3)
    assert got[0, 0, 2, 2] == 24.0 and got[0, 0, 0, 2] == 9.0


def test_l2_pool_matches_numpy(mb):
    x = RNG.normal(size=(1, 2, 6, 6)).astype(np.float32)
    prog = _program(
        mb, (1, 2, 6, 6), lambda v: mb.l2_pool(x=v, kernel_sizes=[2, 2], strides=[2, 2], pad_type="valid")
    )
    ref = np.sqrt((x.reshape(1, 2, 3, 2, 3, 2) ** 2).sum(axis=(3, 5)))
    np.testing.assert_allclose(_run1(prog, x), ref, atol=1e-5)


# ---------------------------------------------------------------- norm, activations, linear algebra


def test_batch_norm_matches_keras(mb, K):
    x = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32)
    bn = K.layers.BatchNormalization(epsilon=1e-3)
    bn.build((None, 4, 4, 3))
    gamma, beta, mean, var = (RNG.normal(size=3).astype(np.float32) for _ in range(4))
    var = np.abs(var) + 0.5
    bn.set_weights([gamma, beta, mean, var])
    ref = bn(x, training=False).numpy()
    prog = _program(
        mb,
        (2, 3, 4, 4),
        lambda v: mb.batch_norm(x=v, mean=mean, variance=var, gamma=gamma, beta=beta, epsilon=1e-3),
    )
    np.testing.assert_allclose(_run1(prog, _nhwc_to_nchw(x)).transpose(0, 2, 3, 1), ref, atol=1e-5)


@pytest.mark.parametrize(
    "name,ref",
    [
        ("relu", lambda x: np.maximum(x, 0)),
        ("relu6", lambda x: np.clip(x, 0, 6)),
        ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
        ("tanh", np.tanh),
        ("sqrt", lambda x: np.sqrt(np.abs(x))),
        ("exp", np.exp),
        ("square", np.square),
        ("abs", np.abs),
        ("silu", lambda x: x / (1 + np.exp(-x))),
        ("softplus", lambda x: np.log1p(np.exp(x))),
    ],
)
def test_unary_ops(mb, name, ref):
    x = RNG.normal(size=(3, 5)).astype(np.float32) * 3
    feed = np.abs(x) if name == "sqrt" else x
    prog = _program(mb, (3, 5), lambda v: getattr(mb, name)(x=v))
    np.testing.assert_allclose(_run1(prog, feed), ref(feed), rtol=1e-5, atol=1e-6)


def test_parametrised_activations(mb):
    x = np.linspace(-8, 8, 33, dtype=np.float32).reshape(3, 11)
    cases = [
        (lambda v: mb.leaky_relu(x=v, alpha=0.2), np.where(x >= 0, x, 0.2 * x)),
        (lambda v: mb.clip(x=v, alpha=-1.0, beta=2.5), np.clip(x, -1, 2.5)),
        (lambda v: mb.elu(x=v, alpha=1.0), np.where(x > 0, x, np.expm1(x))),
        (lambda v: mb.rsqrt(x=mb.abs(x=v), epsilon=1e-3), 1 / np.sqrt(np.abs(x) + 1e-3)),
        (lambda v: mb.gelu(x=v, mode="EXACT"), 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    ]
    for body, ref in cases:
        np.testing.assert_allclose(_run1(_program(mb, (3, 11), body), x), ref, rtol=1e-5, atol=1e-5)


def test_softmax_matches_keras(mb, K):
    x = RNG.normal(size=(4, 10)).astype(np.float32) * 5
    ref = K.layers.Softmax()(x).numpy()
    prog = _program(mb, (4, 10), lambda v: mb.softmax(x=v, axis=-1))
    np.testing.assert_allclose(_run1(prog, x), ref, atol=1e-6)


def test_one_softmax_serves_the_executor_and_verification(mb):
    from edgepool.numeric import softmax

    x = (RNG.normal(size=(3, 4, 5)) * 40).astype(np.float32)  # large logits: no overflow
    for axis in (-1, 1):
        got = _run1(_program(mb, (3, 4, 5), lambda v, axis=axis: mb.softmax(x=v, axis=axis)), x)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, softmax(x, axis=axis).astype(np.float32))
        np.testing.assert_allclose(got.sum(axis=axis), 1.0, atol=1e-6)


def test_dense_as_matmul_and_linear(mb, K):
    x = RNG.normal(size=(2, 12)).astype(np.float32)
    dense = K.layers.Dense(5)
    ref = dense(x).numpy()
    w, b = dense.get_weights()
    prog = _program(mb, (2, 12), lambda v: mb.add(x=mb.matmul(x=v, y=w), y=b))
    np.testing.assert_allclose(_run1(prog, x), ref, atol=1e-5)
    prog = _program(mb, (2, 12), lambda v: mb.linear(x=v, weight=np.ascontiguousarray(w.T), bias=b))
    np.testing.assert_allclose(_run1(prog, x), ref, atol=1e-5)
    prog = _program(mb, (2, 12), lambda v: mb.matmul(x=v, y=np.ascontiguousarray(w.T), transpose_y=True))
    np.testing.assert_allclose(_run1(prog, x), x @ w, atol=1e-5)


@pytest.mark.parametrize("name", ["reduce_mean", "reduce_max", "reduce_sum", "reduce_min", "reduce_l2_norm"])
@pytest.mark.parametrize("keep", [False, True])
def test_reductions(mb, name, keep):
    x = RNG.normal(size=(2, 3, 4, 5)).astype(np.float32)
    refs = {
        "reduce_mean": np.mean,
        "reduce_max": np.max,
        "reduce_sum": np.sum,
        "reduce_min": np.min,
        "reduce_l2_norm": lambda a, axis, keepdims: np.sqrt((a * a).sum(axis=axis, keepdims=keepdims)),
    }
    prog = _program(mb, (2, 3, 4, 5), lambda v: getattr(mb, name)(x=v, axes=[2, 3], keep_dims=keep))
    np.testing.assert_allclose(
        _run1(prog, x), refs[name](x, axis=(2, 3), keepdims=keep), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "name,ref",
    [
        ("add", np.add),
        ("sub", np.subtract),
        ("mul", np.multiply),
        ("real_div", np.divide),
        ("maximum", np.maximum),
        ("minimum", np.minimum),
    ],
)
def test_binary_ops_broadcast(mb, name, ref):
    x = RNG.normal(size=(2, 3, 4)).astype(np.float32)
    y = (RNG.normal(size=(3, 1)) + 3).astype(np.float32)
    prog = _program(mb, (2, 3, 4), lambda v: getattr(mb, name)(x=v, y=y))
    np.testing.assert_allclose(_run1(prog, x), ref(x, y), rtol=1e-6)


def test_layout_ops(mb):
    x = RNG.normal(size=(1, 2, 3, 4)).astype(np.float32)
    cases = [
        (lambda v: mb.transpose(x=v, perm=[0, 2, 3, 1]), x.transpose(0, 2, 3, 1)),
        (lambda v: mb.reshape(x=v, shape=[1, -1]), x.reshape(1, -1)),
        (lambda v: mb.squeeze(x=v, axes=[0]), x[0]),
        (lambda v: mb.expand_dims(x=v, axes=[-1]), x[..., None]),
        (lambda v: mb.concat(values=[v, v], axis=1), np.concatenate([x, x], 1)),
        (
            lambda v: mb.pad(x=v, pad=[1, 1, 0, 2], mode="constant", constant_val=0.5),
            np.pad(x, [(0, 0), (0, 0), (1, 1), (0, 2)], constant_values=0.5),
        ),
        (lambda v: mb.cast(x=v, dtype="fp16"), x.astype(np.float16)),
    ]
    for body, ref in cases:
        got = _run1(_program(mb, (1, 2, 3, 4), body), x)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), atol=1e-6)


def test_fp16_values_are_rounded_like_core_ml_storage(mb):
    x = np.array([[1.0001, 2049.0, 0.1]], np.float32)
    prog = _program(
        mb, (1, 3), lambda v: mb.cast(x=mb.mul(x=mb.cast(x=v, dtype="fp16"), y=np.float16(1.0)), dtype="fp32")
    )
    got = _run1(prog, x)
    np.testing.assert_array_equal(got, x.astype(np.float16).astype(np.float32))
    assert got[0, 1] == 2048.0  # fp16 cannot hold 2049


def test_batched_run_equals_per_sample(mb):
    w = RNG.normal(size=(4, 2, 3, 3)).astype(np.float32)
    d = RNG.normal(size=(4 * 3 * 3, 5)).astype(np.float32)

    def body(v):
        y = mb.relu(x=mb.conv(x=v, weight=w, pad_type="valid"))
        y = mb.reshape(x=mb.transpose(x=y, perm=[0, 2, 3, 1]), shape=[1, 36])
        return mb.matmul(x=y, y=d)

    prog = _program(mb, (1, 2, 5, 5), body)
    p = mil.program_from_pymil(prog)
    xs = RNG.normal(size=(6, 2, 5, 5)).astype(np.float32)
    batched = mil.run(p, {"x": xs})[p.output_names[0]]
    single = np.concatenate([mil.run(p, {"x": xs[i : i + 1]})[p.output_names[0]] for i in range(6)])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_classify_gives_labels_and_probabilities(mb):
    import coremltools as ct
    from coremltools.converters.mil.mil import mil_list

    classes = ["cat", "dog", "eel"]

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3))], opset_version=ct.target.iOS15)
    def prog(x):
        p = mb.softmax(x=x, axis=-1)
        return mb.classify(probabilities=p, classes=mb.const(val=mil_list(classes)))

    p = mil.program_from_pymil(prog)
    assert p.class_labels == classes
    xs = np.array([[0.0, 3.0, 1.0], [5.0, 0.0, 0.0]], np.float32)
    out = mil.run(p, {"x": xs})
    labels, probs = out[p.output_names[0]], out[p.output_names[1]]
    assert list(labels) == ["dog", "cat"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


# ---------------------------------------------------------------- weight decompression


def _check_constexprs(prog, op_types, rtol):
    """Each constexpr op of these types, decompressed by our executor, equals coremltools' own value."""
    for op_type in op_types:
        ops = [op for op in prog.functions["main"].operations if op.op_type == op_type]
        assert ops, f"no {op_type} in the program"
        for op in ops:
            ref = op.materialized_val_inference() if hasattr(op, "materialized_val_inference") else op.value_inference()
            got = mil.OPS[op.op_type](None, {k: resolve(v, {}) for k, v in op.inputs.items()})
            np.testing.assert_allclose(got, np.asarray(ref, np.float32), rtol=rtol)


def test_constexpr_ops_match_coremltools_reference(mb):
    """Our decompression agrees with coremltools' own value inference for every form edgepool emits."""
    import coremltools as ct

    q = RNG.integers(-127, 128, size=(4, 3)).astype(np.int8)
    scale = RNG.uniform(0.01, 0.1, size=4).astype(np.float32)
    zp = np.zeros(4, np.int8)
    lut16 = RNG.normal(size=16).astype(np.float32)
    idx = RNG.integers(0, 16, size=12)
    packed = np.packbits(((idx[:, None] >> np.arange(4)) & 1).astype(np.uint8).reshape(-1), bitorder="little")

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3))], opset_version=ct.target.iOS16)
    def prog16(x):
        a = mb.constexpr_affine_dequantize(quantized_data=q, zero_point=zp, scale=scale, axis=0)
        b = mb.constexpr_lut_to_dense(indices=packed, lut=lut16, shape=np.array([4, 3], np.uint32))
        return mb.add(x=mb.matmul(x=x, y=a, transpose_y=True), y=mb.reduce_sum(x=b, axes=[1]))

    p = mil.program_from_pymil(prog16)
    x = RNG.normal(size=(1, 3)).astype(np.float32)
    _check_constexprs(prog16, ["constexpr_affine_dequantize", "constexpr_lut_to_dense"], rtol=1e-6)
    a_ref = q.astype(np.float32) * scale[:, None]
    b_ref = lut16[idx].reshape(4, 3)
    np.testing.assert_allclose(mil.run(p, {"x": x})[p.output_names[0]], x @ a_ref.T + b_ref.sum(1), rtol=1e-5)

    data = RNG.integers(-127, 128, size=(4, 6)).astype(np.int8)
    bscale = RNG.uniform(0.01, 0.1, size=(4, 2)).astype(np.float32)  # blocks of 3 along axis 1
    lut18 = RNG.normal(size=(2, 1, 16, 1)).astype(np.float16)  # two row-blocks
    idx18 = RNG.integers(0, 16, size=(4, 6)).astype(np.uint8)
    from coremltools.converters.mil.mil import types

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 6), dtype=types.fp16)], opset_version=ct.target.iOS18)
    def prog18(x):
        a = mb.constexpr_blockwise_shift_scale(data=data, scale=bscale.astype(np.float16))
        b = mb.constexpr_lut_to_dense(indices=idx18.astype(types.np_uint4_dtype), lut=lut18)
        return mb.add(x=mb.matmul(x=x, y=a, transpose_y=True), y=mb.matmul(x=x, y=b, transpose_y=True))

    _check_constexprs(prog18, ["constexpr_blockwise_shift_scale", "constexpr_lut_to_dense"], rtol=1e-3)


def test_unpack_indices_lsb_first():
    # values 1, 2, 3 as 2-bit fields: 0b11_10_01 -> one byte 0b00111001
    assert mil.unpack_indices(np.array([0b00111001], np.uint8), 2, 3).tolist() == [1, 2, 3]


# ---------------------------------------------------------------- what it does not know


def test_unknown_op_is_reported_never_run(mb):
    prog = _program(mb, (1, 5), lambda v: mb.cumsum(x=v, axis=1))
    p = mil.program_from_pymil(prog)
    assert "cumsum" not in mil.OPS  # keep this test meaningful if cumsum is ever implemented
    assert mil.unsupported_ops(p) == ["cumsum"]
    with pytest.raises(mil.UnsupportedOp) as e:
        mil.run(p, {"x": np.zeros((1, 5), np.float32)})
    assert e.value.op_type == "cumsum"

"""edgepool.layers against NumPy references (as keras tests its pooling layers: basic checks apart from
correctness checks): 1D/2D/3D, odd sizes, valid/same padding, ties, gradients, variable input sizes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from edgepool import layers
from edgepool._tf import tf as _tf

# ------------------------------------------------------------------ NumPy references


def _windows_1axis(n: int, k: int, s: int, padding: str) -> list[tuple[int, int]]:
    """[start, end) of each window over the real elements, TensorFlow's padding (smaller half before)."""
    if padding == "valid":
        return [(i * s, i * s + k) for i in range((n - k) // s + 1)]
    out = math.ceil(n / s)
    before = max((out - 1) * s + k - n, 0) // 2
    return [(max(i * s - before, 0), min(i * s - before + k, n)) for i in range(out)]


def ref_pool(x: np.ndarray, reduce, window, strides, padding) -> np.ndarray:
    """Channels-last pooling of any rank with `reduce(block) -> per-channel values`."""
    rank = x.ndim - 2
    axes = [_windows_1axis(x.shape[1 + a], window[a], strides[a], padding) for a in range(rank)]
    out = np.zeros((x.shape[0], *[len(w) for w in axes], x.shape[-1]), np.float64)
    for pos in itertools.product(*[range(len(w)) for w in axes]):
        sl = tuple(slice(*axes[a][pos[a]]) for a in range(rank))
        block = x[(slice(None), *sl, slice(None))].reshape(x.shape[0], -1, x.shape[-1]).astype(np.float64)
        out[(slice(None), *pos, slice(None))] = reduce(block)
    return out


def np_max(b):
    return b.max(1)


def np_avg(b):
    return b.mean(1)


def np_lp(p, eps):
    return lambda b: (np.mean(np.abs(b) ** p, axis=1) + eps) ** (1 / p)


def ref_adaptive(x: np.ndarray, reduce, out) -> np.ndarray:
    """PyTorch's adaptive bins: [floor(i*n/o), ceil((i+1)*n/o))."""
    rank = x.ndim - 2
    bins = [[(i * x.shape[1 + a] // out[a], -(-(i + 1) * x.shape[1 + a] // out[a])) for i in range(out[a])]
            for a in range(rank)]
    res = np.zeros((x.shape[0], *out, x.shape[-1]))
    for pos in itertools.product(*[range(o) for o in out]):
        sl = tuple(slice(*bins[a][pos[a]]) for a in range(rank))
        res[(slice(None), *pos, slice(None))] = reduce(x[(slice(None), *sl, slice(None))].reshape(x.shape[0], -1, x.shape[-1]))
    return res


def ref_indices(x: np.ndarray, k: int, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """Max and flat index (y*W + x) of the first maximum in row-major order of each k x k window."""
    n, hh, ww, c = x.shape
    rows, cols = _windows_1axis(hh, k, k, padding), _windows_1axis(ww, k, k, padding)
    vals = np.zeros((n, len(rows), len(cols), c), x.dtype)
    idx = np.zeros((n, len(rows), len(cols), c), np.int64)
    for b, (i, (r0, r1)), (j, (c0, c1)), ch in itertools.product(range(n), enumerate(rows), enumerate(cols), range(c)):
        block = x[b, r0:r1, c0:c1, ch]
        flat = int(np.argmax(block))  # NumPy's argmax returns the first maximum in row-major order
        dy, dx = divmod(flat, c1 - c0)
        vals[b, i, j, ch] = block.max()
        idx[b, i, j, ch] = (r0 + dy) * ww + (c0 + dx)
    return vals, idx


def ref_unpool(vals: np.ndarray, idx: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    n, _, _, c = vals.shape
    out = np.zeros((n, size[0] * size[1], c), vals.dtype)
    for b, ch in itertools.product(range(n), range(c)):
        out[b, idx[b, ..., ch].ravel(), ch] = vals[b, ..., ch].ravel()
    return out.reshape(n, *size, c)


def rand(shape, seed=0, grid=None):
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    return (np.round(x * grid) / grid).astype(np.float32) if grid else x


# ------------------------------------------------------------------ basic


def test_every_layer_is_registered_and_listed():
    from edgepool._tf import keras

    objs = layers.custom_objects()
    assert set(objs) == set(layers.LAYER_MODULES) and len(objs) == 29
    for name, cls in objs.items():
        assert issubclass(cls, keras().layers.Layer)
        assert keras().utils.get_registered_object(f"edgepool>{name}") is cls
        doc = cls.__doc__ or ""
        assert "Export" in doc and ("tie" in doc.lower()), f"{name}: docstring must state ties and export"
    assert layers.l2_pooling_class() is objs["L2Pooling2D"]


CONFIG_CASES = [
    ("MaxPooling1D", (3, 2, "same"), (2, 11, 3)),
    ("AveragePooling2D", ((3, 2), None, "valid"), (2, 9, 8, 3)),
    ("LpPooling3D", (2,), (1, 5, 5, 5, 2)),
    ("L2Pooling2D", (2, 2, "valid"), (2, 6, 6, 3)),
    ("GlobalMaxPooling3D", (), (1, 4, 4, 4, 2)),
    ("GlobalAveragePooling1D", (True,), (2, 7, 3)),
    ("AdaptiveMaxPooling2D", ((3, 2),), (2, 10, 7, 3)),
    ("AdaptiveAveragePooling1D", (4,), (2, 11, 3)),
    ("AdaptiveMaxPooling3D", (2,), (1, 5, 4, 3, 2)),
    ("SpatialPyramidPooling2D", ((1, 2, 3),), (2, 7, 9, 3)),
    ("StochasticPooling2D", (2, None, "same"), (2, 7, 7, 3)),
    ("AttentionPooling", (), (2, 5, 6, 3)),
]


@pytest.mark.parametrize("name,args,shape", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_basic_config_roundtrip_and_output_shape(name, args, shape):
    from edgepool._tf import keras

    layer = layers.get(name)(*args)
    y = layer(rand(shape))
    assert tuple(y.shape) == tuple(layer.compute_output_shape(shape))
    again = keras().layers.deserialize(keras().layers.serialize(layer))
    assert type(again) is type(layer) and again.get_config() == layer.get_config()


def test_saved_model_with_every_family_loads_back(tmp_path):
    from edgepool._tf import keras

    k = keras()
    inp = k.Input((9, 10, 3))
    pooled, idx = layers.get("MaxPoolingWithIndices2D")(2, "same")(inp)
    un = layers.get("MaxUnpooling2D")(2, output_size=(9, 10))([pooled, idx])
    a = layers.get("AdaptiveMaxPooling2D")(3)(un)
    s = layers.get("StochasticPooling2D")(2)(layers.get("L2Pooling2D")(2, 1)(a))
    out = k.layers.Concatenate()([layers.get("AttentionPooling")()(s), layers.get("SpatialPyramidPooling2D")((1, 2))(a)])
    m = k.Model(inp, out)
    x = rand((2, 9, 10, 3))
    m.save(tmp_path / "m.keras")
    back = k.models.load_model(tmp_path / "m.keras", custom_objects=layers.custom_objects(), compile=False)
    np.testing.assert_allclose(back.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="padding"):
        layers.get("MaxPooling2D")(2, padding="full")
    with pytest.raises(ValueError, match="pool_size"):
        layers.get("MaxPooling3D")((2, 2))
    with pytest.raises(ValueError, match="p must be"):
        layers.get("LpPooling1D")(2, p=0.5)
    with pytest.raises(ValueError, match="levels"):
        layers.get("SpatialPyramidPooling2D")((0,))


# ------------------------------------------------------------------ correctness: window pooling

WINDOW_CASES = [  # rank, input shape, window, strides, padding: odd sizes, windows that do not divide
    (1, (2, 11, 3), (3,), (2,), "valid"),
    (1, (2, 11, 3), (3,), (2,), "same"),
    (1, (2, 10, 2), (2,), (2,), "same"),
    (2, (2, 9, 7, 3), (3, 2), (2, 2), "valid"),
    (2, (2, 9, 7, 3), (3, 3), (2, 3), "same"),
    (2, (1, 5, 5, 2), (5, 5), (1, 1), "same"),
    (3, (2, 5, 6, 7, 2), (2, 3, 2), (2, 2, 2), "valid"),
    (3, (1, 5, 6, 7, 2), (3, 2, 2), (2, 1, 2), "same"),
]


@pytest.mark.parametrize("rank,shape,window,strides,padding", WINDOW_CASES)
@pytest.mark.parametrize("kind", ["Max", "Average", "Lp", "L2"])
def test_window_pooling_matches_numpy(kind, rank, shape, window, strides, padding):
    x = rand(shape, seed=rank, grid=4)  # a 0.25 grid: ties inside windows
    cls = layers.get(f"{kind}Pooling{rank}D")
    if kind == "Lp":
        got, ref = cls(window, strides, padding, p=3.0)(x), ref_pool(x, np_lp(3.0, 1e-6), window, strides, padding)
    elif kind == "L2":
        got, ref = cls(window, strides, padding)(x), ref_pool(x, np_lp(2.0, 1e-6), window, strides, padding)
    else:
        got = cls(window, strides, padding)(x)
        ref = ref_pool(x, np_max if kind == "Max" else np_avg, window, strides, padding)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_window_pooling_equals_keras_builtin(rank):
    from edgepool._tf import keras

    shape = (2, *[7, 8, 5][:rank], 3)
    x = rand(shape, seed=5)
    for kind in ("Max", "Average"):
        for padding in ("valid", "same"):
            ours = layers.get(f"{kind}Pooling{rank}D")(3, 2, padding)(x)
            theirs = getattr(keras().layers, f"{kind}Pooling{rank}D")(3, 2, padding)(x)
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_global_pooling_matches_numpy(rank):
    x = rand((2, *[5, 6, 7][:rank], 3), seed=rank)
    axes = tuple(range(1, 1 + rank))
    np.testing.assert_allclose(layers.get(f"GlobalMaxPooling{rank}D")()(x).numpy(), x.max(axes), rtol=1e-6)
    np.testing.assert_allclose(layers.get(f"GlobalAveragePooling{rank}D")(keepdims=True)(x).numpy(),
                               x.mean(axes, keepdims=True), rtol=1e-5, atol=1e-6)


def test_max_pooling_gradient_flows_to_the_max_positions_only():
    tf = _tf()

    for rank, shape in ((1, (1, 9, 2)), (2, (1, 7, 9, 2)), (3, (1, 4, 5, 6, 2))):
        x = tf.constant(rand(shape, seed=rank))  # no ties: one max per window
        layer = layers.get(f"MaxPooling{rank}D")(2)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y)
        g = tape.gradient(loss, x).numpy()
        xn = x.numpy()
        assert g.sum() == pytest.approx(y.numpy().size)  # one unit per window
        assert np.all(np.isin(xn[g > 0], y.numpy()))  # only maxima receive gradient
        assert set(np.unique(g)) <= {0.0, 1.0}


# ------------------------------------------------------------------ correctness: adaptive, SPP


ADAPTIVE_CASES = [
    (1, (2, 11, 3), (4,)),
    (1, (2, 3, 2), (5,)),  # more outputs than inputs: elements repeat
    (2, (2, 10, 9, 3), (4, 3)),  # non-uniform bins (slices)
    (2, (2, 12, 12, 3), (3, 3)),  # uniform bins (one pooling op)
    (2, (2, 7, 7, 2), (3, 3)),  # 7 -> 3: windows of 3 at stride 2
    (2, (1, 5, 8, 2), (2, 4)),
    (3, (1, 5, 6, 7, 2), (2, 3, 2)),
]


@pytest.mark.parametrize("rank,shape,out", ADAPTIVE_CASES)
def test_adaptive_pooling_matches_pytorch_bins(rank, shape, out):
    x = rand(shape, seed=3, grid=4)
    for kind, red in (("Max", np_max), ("Average", np_avg)):
        got = layers.get(f"Adaptive{kind}Pooling{rank}D")(out)(x).numpy()
        np.testing.assert_allclose(got, ref_adaptive(x, red, out), rtol=1e-5, atol=1e-6)


def test_adaptive_pooling_takes_variable_input_sizes():
    from edgepool._tf import keras

    k = keras()
    inp = k.Input((None, None, 2))
    m = k.Model(inp, layers.get("AdaptiveMaxPooling2D")((3, 2))(inp))
    for hw in ((7, 5), (12, 9), (3, 2)):
        x = rand((2, *hw, 2), seed=sum(hw))
        np.testing.assert_allclose(m(x).numpy(), ref_adaptive(x, np_max, (3, 2)), rtol=1e-6)
    inp1 = k.Input((None, 2))
    m1 = k.Model(inp1, layers.get("AdaptiveAveragePooling1D")(4)(inp1))
    for n in (5, 11):
        x = rand((1, n, 2), seed=n)
        np.testing.assert_allclose(m1(x).numpy(), ref_adaptive(x, np_avg, (4,)), rtol=1e-5)


def test_adaptive_max_gradient_goes_to_the_bin_maxima():
    tf = _tf()

    x = tf.constant(rand((1, 10, 9, 1), seed=8))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layers.get("AdaptiveMaxPooling2D")((4, 3))(x)
        loss = tf.reduce_sum(y)
    g = tape.gradient(loss, x).numpy()
    assert np.all(np.isin(x.numpy()[g > 0], y.numpy()))  # overlapping bins may send 2 units to one max
    assert g.sum() == pytest.approx(12)


def test_spatial_pyramid_pooling_matches_numpy_for_any_size():
    spp = layers.get("SpatialPyramidPooling2D")((1, 2, 4))
    for hw in ((9, 10), (4, 4), (13, 5)):
        x = rand((2, *hw, 3), seed=hw[0])
        want = np.concatenate([ref_adaptive(x, np_max, (n, n)).reshape(2, -1) for n in (1, 2, 4)], axis=1)
        got = spp(x).numpy()
        assert got.shape == (2, 21 * 3)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    avg = layers.get("SpatialPyramidPooling2D")((2,), mode="avg")(rand((1, 5, 5, 2)))
    np.testing.assert_allclose(avg.numpy(), ref_adaptive(rand((1, 5, 5, 2)), np_avg, (2, 2)).reshape(1, -1), rtol=1e-5)


# ------------------------------------------------------------------ correctness: indices and unpooling


@pytest.mark.parametrize("shape,k,padding", [((2, 8, 8, 3), 2, "valid"), ((2, 9, 10, 3), 2, "same"),
                                             ((2, 9, 10, 3), 2, "valid"), ((1, 7, 8, 2), 3, "same"),
                                             ((1, 11, 7, 2), 3, "valid")])
def test_max_pooling_with_indices_matches_numpy_with_ties(shape, k, padding):
    x = rand(shape, seed=k, grid=2)  # a 0.5 grid: many windows hold their max twice
    pooled, idx = layers.get("MaxPoolingWithIndices2D")(k, padding)(x)
    vals, ref_idx = ref_indices(x, k, padding)
    np.testing.assert_array_equal(pooled.numpy(), vals)
    np.testing.assert_array_equal(idx.numpy(), ref_idx)
    assert idx.dtype.name == "int32"
    tf = _tf()

    np.testing.assert_array_equal(pooled.numpy(), tf.nn.max_pool2d(x, k, k, padding.upper()).numpy())


def test_ties_pick_the_first_maximum_in_row_major_order():
    x = np.zeros((1, 4, 4, 1), np.float32)  # every window is a 4-way tie
    x[0, 1, 1, 0] = x[0, 1, 0, 0] = 5.0  # window (0,0): the max twice, row 1; first is (1, 0)
    x[0, 2, 3, 0] = x[0, 3, 2, 0] = -1.0  # window (1,1): ties at 0 in row 2 col 2 first
    _, idx = layers.get("MaxPoolingWithIndices2D")(2)(x)
    assert idx.numpy()[0, :, :, 0].tolist() == [[1 * 4 + 0, 2], [8, 2 * 4 + 2]]


@pytest.mark.parametrize("shape,k,padding", [((2, 8, 8, 3), 2, "valid"), ((2, 9, 10, 3), 2, "same"),
                                             ((1, 9, 10, 2), 2, "valid"), ((1, 7, 8, 2), 3, "same")])
def test_unpooling_roundtrip_on_inputs_with_ties(shape, k, padding):
    x = rand(shape, seed=11, grid=1)  # integers: heavy ties
    pooled, idx = layers.get("MaxPoolingWithIndices2D")(k, padding)(x)
    out = layers.get("MaxUnpooling2D")(k, output_size=shape[1:3])([pooled, idx]).numpy()
    vals, ref_idx = ref_indices(x, k, padding)
    np.testing.assert_array_equal(out, ref_unpool(vals, ref_idx, shape[1:3]))
    nonzero = out != 0
    np.testing.assert_array_equal(out[nonzero], x[nonzero])  # values land where they came from
    # exactly one written position per window (zeros are written as zeros, so count positions via the index)
    assert len(np.unique(ref_idx[0, ..., 0])) == ref_idx[0, ..., 0].size


def test_unpooling_gradient_reaches_the_max_positions():
    tf = _tf()

    x = tf.constant(rand((1, 6, 6, 2), seed=4))
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled, idx = layers.get("MaxPoolingWithIndices2D")(2)(x)
        loss = tf.reduce_sum(layers.get("MaxUnpooling2D")(2)([pooled, idx]))
    g = tape.gradient(loss, x).numpy()
    assert g.sum() == pytest.approx(18) and np.all(np.isin(x.numpy()[g > 0], pooled.numpy()))


# ------------------------------------------------------------------ correctness: stochastic, attention


def test_stochastic_pooling_inference_is_the_probability_weighted_average():
    x = rand((2, 7, 9, 3), seed=2)
    x[0, :3, :3, 0] = -1.0  # an all-negative window: all-zero activations give 0
    for padding in ("valid", "same"):
        got = layers.get("StochasticPooling2D")(3, 2, padding)(x, training=False).numpy()
        a = np.maximum(x, 0)

        def weighted(b):
            s = b.sum(1)
            return np.where(s > 0, (b * b).sum(1) / np.where(s > 0, s, 1), 0)

        np.testing.assert_allclose(got, ref_pool(a, weighted, (3, 3), (2, 2), padding), rtol=1e-5, atol=1e-6)


def test_stochastic_pooling_training_samples_by_activation():
    tf = _tf()

    x = np.zeros((4000, 2, 2, 1), np.float32)
    x[:, 0, 0], x[:, 0, 1], x[:, 1, 0], x[:, 1, 1] = 1.0, 3.0, 0.0, -2.0  # probs 1/4, 3/4, 0, 0
    layer = layers.get("StochasticPooling2D")(2, seed=1)
    y = layer(x, training=True).numpy().ravel()
    assert set(np.unique(y)) <= {1.0, 3.0}
    assert abs(np.mean(y == 3.0) - 0.75) < 0.03
    xt = tf.constant(x[:50])
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt, training=True))
    g = tape.gradient(loss, xt).numpy()
    assert np.all(g.sum(axis=(1, 2, 3)) == 1) and np.all(g[:, 1] == 0)  # one drawn element; never p = 0
    zero = layer(np.zeros((3, 4, 4, 2), np.float32), training=True).numpy()
    assert np.all(zero == 0)


def test_attention_pooling_is_a_softmax_weighted_sum():
    for shape in ((2, 7, 3), (2, 4, 5, 3), (1, 3, 4, 2, 3)):
        layer = layers.get("AttentionPooling")()
        x = rand(shape, seed=len(shape))
        np.testing.assert_allclose(layer(x).numpy(), x.reshape(shape[0], -1, 3).mean(1), rtol=1e-5)  # zero init
        w = np.random.default_rng(0).normal(size=(1, 1, 3, 1)).astype(np.float32)
        layer.set_weights([w, np.array([0.3], np.float32)])
        xr = x.reshape(shape[0], -1, 3)
        s = xr @ w.reshape(3) + 0.3
        p = np.exp(s - s.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        np.testing.assert_allclose(layer(x).numpy(), (p[..., None] * xr).sum(1), rtol=1e-5, atol=1e-6)
    assert layer.macs() == 3 * 4 * 2 * 3

"""QAT wrappers for edgepool's own layers (`edgepool.qat`): L2 pooling wraps and trains, every class of
`edgepool.layers.custom_objects()` gets a QuantizeConfig or a one-line reason, built-in names stay built-in."""

from __future__ import annotations

import numpy as np
import pytest

from edgepool.errors import ExportError


def _digits(n: int = 64):
    from edgepool.datasets import NORM_OFFSET, NORM_SCALE, load_dataset
    from edgepool.numeric import normalize

    ds = load_dataset("digits")
    return normalize(ds.x[:n], NORM_SCALE, NORM_OFFSET).astype(np.float32), ds.y[:n]


def _wrapped(qm, name: str):
    """The QAT model's wrapper around the float layer called `name`."""
    return next(layer for layer in qm.layers if getattr(getattr(layer, "layer", None), "name", None) == name)


def test_qat_wraps_l2_pooling_and_trains_a_step():
    from edgepool._tf import keras
    from edgepool.models import BlockSpec, ModelSpec, build_model
    from edgepool.qat import qat_model

    x, y = _digits()
    m = build_model(ModelSpec("t", [BlockSpec(4, pool="l2"), BlockSpec(8, pool="max")], full_res_stem_max=0), (8, 8, 1), 10, seed=0)
    qm = qat_model(m)
    w = _wrapped(qm, "b0_l2pool")
    assert type(w.layer).__name__ == "L2Pooling2D"
    assert type(w.quantize_config).__name__ == "EdgepoolQuantizeConfig"
    assert w.quantize_config.get_output_quantizers(w.layer), "L2 pooling's output gets an int8 range"
    k = keras()
    qm.compile(k.optimizers.Adam(1e-2), k.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [v.numpy().copy() for v in qm.trainable_variables]
    loss = qm.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, qm.trainable_variables, strict=True))
    # the output range was learned from the data (the moving-average quantizer's min/max moved)
    ranges = [v.numpy() for v in w.weights if "output_m" in v.name]
    assert ranges and max(abs(float(r)) for r in ranges) > 0


def _instances(classes: dict):
    """One instance per edgepool layer class, on an input of its rank; the unpooling layer after its partner."""
    from edgepool._tf import keras

    k = keras()
    shapes = {"1D": (10, 3), "2D": (8, 8, 3), "3D": (4, 6, 6, 2)}
    inputs = {r: k.Input(s, name=f"x{r}") for r, s in shapes.items()}
    built: dict[str, tuple] = {}
    for name, cls in classes.items():
        if name == "MaxUnpooling2D":
            continue
        x = inputs.get(name[-2:], inputs["2D"])
        layer = cls(name=name.lower())
        if name == "MaxPoolingWithIndices2D":
            pooled, idx = layer(x)
            unpool = classes["MaxUnpooling2D"](name="maxunpooling2d")
            built["MaxUnpooling2D"] = (unpool, unpool([pooled, idx]))
            built[name] = (layer, pooled)
        else:
            built[name] = (layer, layer(x))
    return inputs, built


@pytest.mark.slow
def test_every_custom_layer_gets_a_quantize_config_or_a_reason():
    """Every class `custom_objects()` returns: wrapped by TFMOT (one model holding them all trains a step),
    or refused before training with a one-line reason naming the layer."""
    from edgepool._tf import keras
    from edgepool.layers import custom_objects
    from edgepool.qat import qat_model, qat_unwrappable_reason

    k = keras()
    classes = custom_objects()
    inputs, built = _instances(classes)
    refused = {n: qat_unwrappable_reason(layer) for n, (layer, _) in built.items()}
    refused = {n: r for n, r in refused.items() if r}
    for name, reason in refused.items():
        assert "\n" not in reason and len(reason) < 300, name
        layer, out = built[name]
        m = k.Model(list(inputs.values()), k.layers.Dense(2)(k.layers.Flatten()(out)))
        with pytest.raises(ExportError, match=layer.name) as e:
            qat_model(m)
        assert name in e.value.message and reason in e.value.message
    ok = [n for n in built if n not in refused and n != "MaxPoolingWithIndices2D"]  # its output feeds the unpooling
    assert {"L2Pooling2D", "LpPooling2D", "StochasticPooling2D", "MaxUnpooling2D"} <= set(ok)
    heads = [k.layers.Flatten()(built[n][1]) for n in ok]
    m = k.Model(list(inputs.values()), k.layers.Dense(2)(k.layers.Concatenate()(heads)))
    qm = qat_model(m)
    wrapped = {type(w.layer).__name__ for w in qm.layers if hasattr(w, "quantize_config")}
    assert set(ok) | {"MaxPoolingWithIndices2D"} <= wrapped
    qm.compile("adam", k.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(4, *i.shape[1:])).astype(np.float32) for i in inputs.values()]
    assert np.isfinite(qm.train_on_batch(xs, np.array([0, 1, 0, 1])))


def test_builtin_keras_layers_stay_builtin():
    """edgepool's MaxPooling2D shares its name with tf_keras's: a zoo model's built-in pools wrap as TFMOT's own."""
    from edgepool.models import BlockSpec, ModelSpec, build_model
    from edgepool.qat import qat_model

    m = build_model(ModelSpec("t", [BlockSpec(4, pool="max")], full_res_stem_max=0), (8, 8, 1), 3)
    qm = qat_model(m)
    w = _wrapped(qm, "b0_maxpool")
    assert type(w.layer).__module__.startswith("tf_keras")

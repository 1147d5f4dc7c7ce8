from __future__ import annotations

import numpy as np
import pytest

from edgepool.errors import InputError
from edgepool.models import (
    HEADS,
    POOLS,
    PRESETS,
    BlockSpec,
    ModelSpec,
    build_model,
    count_macs,
    count_params,
    preset,
)


@pytest.mark.parametrize("pool", POOLS)
def test_every_pool_builds_and_trains_a_step(pool):
    from edgepool._tf import keras

    m = build_model(ModelSpec("t", [BlockSpec(4, pool=pool), BlockSpec(4, pool=pool)]), (8, 8, 1), 3, seed=0)
    m.compile(optimizer=keras().optimizers.SGD(0.1), loss=keras().losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).random((8, 8, 8, 1)).astype(np.float32)
    y = np.arange(8) % 3
    before = [w.copy() for w in m.get_weights()]
    loss = m.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(a, b) for a, b in zip(before, m.get_weights(), strict=True))
    assert m.output_shape == (None, 3)


@pytest.mark.parametrize("head", HEADS)
def test_every_head(head):
    m = build_model(ModelSpec("t", [BlockSpec(4)], head=head), (8, 8, 3), 5)
    assert m.output_shape == (None, 5)


def test_l2_pooling_matches_numpy():
    from edgepool._tf import keras
    from edgepool.layers import l2_pooling_class

    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype(np.float32)
    layer = l2_pooling_class()(2, 2, "valid", epsilon=0.0)
    got = layer(x).numpy()
    ref = np.sqrt((x.reshape(2, 3, 2, 3, 2, 3) ** 2).mean(axis=(2, 4)))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    # round trip through config
    again = keras().layers.deserialize(keras().layers.serialize(layer))
    assert again.pool_size == 2 and again.strides == 2


def test_counts_by_hand():
    spec = ModelSpec("t", [BlockSpec(4, pool="max")], dropout=0.0, full_res_stem_max=0)
    m = build_model(spec, (6, 6, 1), 2)
    # conv 3x3x1x4 (no bias) + BN(4: gamma, beta, mean, var) + dense 3*3*4 -> 2 (+bias)
    assert count_params(m) == 36 + 16 + 36 * 2 + 2
    assert count_macs(m) == 6 * 6 * 4 * 9 + 36 * 2


def test_default_model_budget():
    m = build_model(preset("small"), (28, 28, 1), 10)
    assert count_params(m) <= 40_000


def test_spec_errors():
    with pytest.raises(InputError, match="unknown model"):
        preset("huge")
    with pytest.raises(InputError, match="unknown pool"):
        PRESETS["small"].with_pool("median")
    with pytest.raises(InputError, match="to nothing"):
        build_model(ModelSpec("t", [BlockSpec(2, padding="valid")] * 5), (8, 8, 1), 2)


def test_spec_roundtrip():
    s = preset("small-ds")
    assert ModelSpec.from_dict(s.to_dict()) == s


def test_small_inputs_keep_full_resolution_in_the_first_block():
    m = build_model(preset("small"), (8, 8, 1), 10)
    assert m.get_layer("b0_relu0").output_shape == (None, 8, 8, 16)
    assert "b0_maxpool" not in [layer.name for layer in m.layers]
    assert build_model(preset("small"), (28, 28, 1), 10).get_layer("b0_maxpool").output_shape == (None, 14, 14, 16)



def _count_cases() -> list[tuple[str, ModelSpec, tuple[int, int, int], int]]:
    """Every preset on several inputs, and every pool x head with the other options varied across cases."""
    cases = [(f"{name}@{'x'.join(map(str, shape))}", spec, shape, 10)
             for name, spec in PRESETS.items() for shape in ((8, 8, 1), (28, 28, 1), (32, 32, 3), (13, 17, 3))]
    for i, (pool, head) in enumerate((p, h) for p in POOLS for h in HEADS):
        size, stride = ((2, None), (3, 2), (3, 1), (2, 1))[i % 4]
        padding = ("same", "valid")[i % 2]
        blocks = [
            BlockSpec(6, pool=pool, pool_size=size, pool_stride=stride, padding=padding, separable=i % 3 == 0,
                      convs=1 + i % 2, kernel=(3, 5, 1)[i % 3]),
            BlockSpec(10, pool=pool, pool_size=2, padding=("valid", "same")[i % 2], separable=i % 2 == 1, kernel=3),
            BlockSpec(12, pool=POOLS[(i + 1) % len(POOLS)], separable=i % 4 == 2, convs=(1, 2, 3)[i % 3]),
        ]
        spec = ModelSpec(f"grid{i}", blocks, head=head, width=(1.0, 0.5, 1.3, 0.25, 2.0)[i % 5],
                         dropout=(0.0, 0.25)[i % 2], full_res_stem_max=(0, 12, 40)[i % 3])
        cases.append((spec.name, spec, (20, 24, (1, 3)[(i // 3) % 2]), 2 + i % 9))
    return cases


def _count_mismatches(cases: list[tuple[str, ModelSpec, tuple[int, int, int], int]]) -> list[str]:
    wrong = []
    for label, spec, shape, classes in cases:
        m = build_model(spec, shape, classes)
        want = (count_params(m), count_macs(m))
        got = spec.count(shape, classes)
        if got != want:
            wrong.append(f"{label} {shape} {classes} classes: count() {got}, keras {want}")
    return wrong


def test_spec_count_matches_keras_for_the_presets():
    """ModelSpec.count is arithmetic (no TensorFlow): what `edgepool models` shows must be what Keras counts."""
    wrong = _count_mismatches([(name, spec, (28, 28, 1), 10) for name, spec in PRESETS.items()])
    assert not wrong, "\n".join(wrong)


@pytest.mark.slow
def test_spec_count_matches_keras_exactly():
    """... and for every preset, pool, head, width, padding, separable and full-resolution option."""
    wrong = _count_mismatches(_count_cases())
    assert not wrong, "\n".join(wrong)


def test_spec_count_refuses_what_build_refuses():
    spec = ModelSpec("t", [BlockSpec(2, padding="valid")] * 5)
    with pytest.raises(InputError, match="to nothing"):
        spec.count((8, 8, 1), 2)
    with pytest.raises(InputError, match="unknown head"):
        ModelSpec("t", [BlockSpec(2)], head="median").count((8, 8, 1), 2)

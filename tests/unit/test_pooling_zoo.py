"""The pooling library in the model zoo: every new `--pool` choice builds, counts and trains; the 1D
sequence model and the segmentation model (encoder indices -> decoder unpooling)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepool.errors import InputError
from edgepool.models import (
    HEAD_POOLS,
    POOL_CHOICES,
    PRESETS,
    build_model,
    build_segmentation_model,
    build_sequence_model,
    count_macs,
    count_params,
    preset,
)

NEW = ("adaptive-max", "adaptive-avg", "stochastic", "spp", "attention")


def test_new_pool_names_are_choices_and_old_ones_stay():
    assert set(NEW) <= set(POOL_CHOICES)
    assert {"max", "avg", "l2", "strided", "none"} <= set(POOL_CHOICES)
    s = preset("small").with_pool("spp")
    assert s.head == "spp" and [b.pool for b in s.blocks] == [b.pool for b in PRESETS["small"].blocks]
    assert preset("small").with_pool("adaptive-max").blocks[1].pool == "adaptive-max"
    with pytest.raises(InputError, match="unknown pool"):
        preset("small").with_pool("median")


@pytest.mark.parametrize("pool", NEW)
def test_count_matches_keras_for_the_new_pools(pool):
    shape = (13, 17, 3)  # odd sizes: adaptive bins overlap, SPP levels repeat cells
    spec = preset("small").with_pool(pool)
    m = build_model(spec, shape, 10, seed=0)
    assert spec.count(shape, 10) == (count_params(m), count_macs(m))
    assert m.output_shape == (None, 10)


def test_adaptive_blocks_use_pytorch_bins_on_odd_maps():
    m = build_model(preset("small").with_pool("adaptive-max"), (13, 17, 3), 4)
    pools = [layer for layer in m.layers if type(layer).__name__ == "AdaptiveMaxPooling2D"]
    assert [tuple(p.output_shape[1:3]) for p in pools] == [(7, 9), (4, 5), (2, 3)]  # what max 'same' gives


def test_sequence_model_trains_for_every_pool():
    from edgepool._tf import keras

    x = np.random.default_rng(0).normal(size=(16, 24, 3)).astype(np.float32)
    y = np.arange(16) % 3
    for pool in ("max", "avg", "l2", "adaptive-max", "attention"):
        m = build_sequence_model(24, 3, 3, pool=pool, seed=0)
        m.compile(optimizer=keras().optimizers.SGD(0.05),
                  loss=keras().losses.SparseCategoricalCrossentropy(from_logits=True))
        assert np.isfinite(m.train_on_batch(x, y)) and m.output_shape == (None, 3)
    any_length = build_sequence_model(None, 3, 3, pool="attention")
    assert any_length(x[:, :11]).shape == (16, 3) and any_length(x).shape == (16, 3)


def test_segmentation_model_restores_odd_sizes_and_trains():
    from edgepool._tf import keras

    m = build_segmentation_model((15, 13, 1), 3, seed=0)
    assert m.output_shape == (None, 15, 13, 3)
    names = [type(layer).__name__ for layer in m.layers]
    assert names.count("MaxPoolingWithIndices2D") == 2 and names.count("MaxUnpooling2D") == 2
    m.compile(optimizer=keras().optimizers.Adam(1e-2), loss=keras().losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(1).random((4, 15, 13, 1)).astype(np.float32)
    y = (x[..., 0] > 0.5).astype(np.int64)
    before = m.get_layer("enc0_conv").get_weights()[0].copy()
    assert np.isfinite(m.train_on_batch(x, y))
    assert not np.array_equal(before, m.get_layer("enc0_conv").get_weights()[0])  # gradient reached the encoder


def test_models_command_and_train_with_a_head_pool(cli, tmp_path):
    r = cli("models", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)
    out = tmp_path / "run"
    r = cli("train", "--data", "digits", "--model", "tiny", "--pool", "spp", "--epochs", "1", "--out", out, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["spec"]["head"] == "spp"
    r = cli("train", "--data", "digits", "--model", "tiny", "--pool", "median", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "unknown pool" in r.stderr
    assert set(HEAD_POOLS) == {"spp", "attention"}

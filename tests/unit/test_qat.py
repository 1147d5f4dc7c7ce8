"""qat.py: what TFMOT cannot wrap is named before any training, and the fine-tune is stored where export finds it."""

from __future__ import annotations

import pytest

from edgepool.errors import ExportError


def test_qat_on_an_unknown_layer_names_the_layer():
    """L2 pooling has a QuantizeConfig now (tests/unit/test_qat_custom_layers.py); LayerNormalization has none."""
    from edgepool._tf import keras
    from edgepool.qat import qat_model

    k = keras()
    inp = k.Input((8, 8, 1))
    x = k.layers.LayerNormalization(name="b0_norm")(k.layers.Conv2D(4, 3)(inp))
    with pytest.raises(ExportError, match="b0_norm") as e:
        qat_model(k.Model(inp, k.layers.Dense(3)(k.layers.Flatten()(x))))
    assert "int8" in e.value.hint


def test_check_quantizable_fails_before_training(tmp_path):
    """`quantize` on a run whose model TFMOT cannot wrap fails at once, with no QAT folder left behind."""
    from edgepool._tf import keras
    from edgepool.datasets import load_dataset
    from edgepool.models import preset
    from edgepool.pipeline import quantize, train_run
    from edgepool.recipes import load_recipe
    from edgepool.training import TrainConfig

    run = train_run(preset("tiny"), load_dataset("digits"), TrainConfig(epochs=1), tmp_path / "r")
    k = keras()  # the run's model file replaced by one holding a layer TFMOT cannot quantize
    inp = k.Input((8, 8, 1))
    x = k.layers.LayerNormalization(name="norm")(k.layers.Conv2D(4, 3)(inp))
    k.Model(inp, k.layers.Dense(10)(k.layers.Flatten()(x))).save(run.model_path)
    with pytest.raises(ExportError, match="cannot quantize"):
        quantize(run, load_recipe("int8-qat"), epochs=1)
    assert not (run.path / "qat").exists()

"""qat.py: what TFMOT cannot wrap is named before any training, and the fine-tune is stored where export finds it."""

from __future__ import annotations

import pytest

from edgepool.errors import ExportError


def test_qat_on_l2_pooling_names_the_layer():
    from edgepool.models import BlockSpec, ModelSpec, build_model
    from edgepool.qat import qat_model

    m = build_model(ModelSpec("t", [BlockSpec(4, pool="l2")], full_res_stem_max=0), (8, 8, 1), 3)
    with pytest.raises(ExportError, match="b0_l2pool") as e:
        qat_model(m)
    assert "int8" in e.value.hint


def test_check_quantizable_fails_before_training(tmp_path):
    """`quantize` on an L2-pooling run fails at once, with no QAT folder left behind."""
    from edgepool.datasets import load_dataset
    from edgepool.models import preset
    from edgepool.pipeline import quantize, train_run
    from edgepool.recipes import load_recipe
    from edgepool.training import TrainConfig

    run = train_run(preset("tiny").with_pool("l2"), load_dataset("digits"), TrainConfig(epochs=1), tmp_path / "r")
    with pytest.raises(ExportError, match="cannot quantize"):
        quantize(run, load_recipe("int8-qat"), epochs=1)
    assert not (run.path / "qat").exists()

"""The selective recipe (`int8-float-pool`): full int8 with L2 pooling kept in float, through TensorFlow's
QuantizationDebugger denylists; the result loads and runs in the LiteRT interpreter, and the Edge TPU
analysis says what the float island costs."""

from __future__ import annotations

import numpy as np
import pytest

from edgepool.errors import RecipeError
from edgepool.recipes import load_recipe
from edgepool.types import Status


@pytest.fixture(scope="module")
def l2_run(tmp_path_factory):
    """The `tiny` preset with L2 pooling, 2 epochs on digits (a few seconds)."""
    from edgepool.datasets import load_dataset
    from edgepool.models import preset
    from edgepool.pipeline import train_run
    from edgepool.training import TrainConfig

    return train_run(preset("tiny").with_pool("l2"), load_dataset("digits"),
                     TrainConfig(epochs=2, seed=0, calibration_samples=100), tmp_path_factory.mktemp("sel") / "l2")


@pytest.fixture(scope="module")
def selective(l2_run):
    from edgepool.pipeline import export

    return export(l2_run, load_recipe("int8-float-pool"))


def test_listed_layers_stay_float_the_rest_int8(selective, l2_run):
    from edgepool.inspect import read_tflite

    assert selective.status is Status.PASS, selective.reason
    g = read_tflite(selective.export.model_file).main
    by_layer = {}
    for op in g.ops:
        t = g.tensor(op.outputs[0])
        by_layer.setdefault("l2pool" if "_l2pool/" in t.name else "other", []).append((op.name, t.dtype))
    island = dict(by_layer["l2pool"])
    assert {"SQUARE", "AVERAGE_POOL_2D", "SQRT"} <= set(island)
    assert set(island.values()) == {"FLOAT32"}, island
    others = [(n, d) for n, d in by_layer["other"] if n not in ("DEQUANTIZE", "QUANTIZE")]
    assert others and all(d == "INT8" for _, d in others), others
    assert any(op.name == "CONV_2D" for op in g.ops) and any(op.name == "DEQUANTIZE" for op in g.ops)
    side = selective.export.sidecar["selective"]
    assert side["float_layers"] == ["b1_l2pool"]
    assert {o["op"] for o in side["float_ops"]} >= {"SQUARE", "AVERAGE_POOL_2D", "SQRT"}
    e = side["edgetpu"]
    assert e["first_cpu_op"] is not None and e["cpu_ops"] > 0 and "on the CPU" in e["split"]
    assert any("Edge TPU" in n for n in selective.notes)


def test_selective_model_loads_and_runs_in_litert(selective, l2_run):
    """The real LiteRT interpreter, in this process: int8 input and output as the recipe says."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=selective.export.model_file.read_bytes())
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    x = l2_run.normalize(l2_run.test_data()[0][:1]).astype(np.float32)
    scale, zp = inp["quantization"]
    it.set_tensor(inp["index"], np.clip(np.round(x / scale + zp), -128, 127).astype(np.int8))
    it.invoke()
    assert it.get_tensor(out["index"]).shape == (1, 10)
    v = selective.verification.details
    assert v["accuracy"] >= v["reference_accuracy"] - 0.02  # the float island keeps the float accuracy


def test_a_model_without_the_layers_is_plain_int8(tiny_run, tmp_path):
    from edgepool.pipeline import export

    o = export(tiny_run, load_recipe("int8-float-pool"), out=tmp_path / "e", verify=False)
    side = o.export.sidecar["selective"]
    assert side["matched"] is False and "plain int8" in side["note"]


def test_float_island_needs_full_integer(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('schema_version = 1\ndescription = "x"\nformat = "tflite"\nweights = "int8"\n'
                 'activations = "float32"\nfloat_layers = ["L2Pooling2D"]\n')
    with pytest.raises(RecipeError, match="float_layers"):
        load_recipe(p)

"""Every TFLite recipe on the tiny run: exported, verified in LiteRT, metadata round trip, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from edgepool.errors import ExistsError, RecipeError
from edgepool.export import metadata
from edgepool.pipeline import export
from edgepool.recipes import load_recipe
from edgepool.types import Status
from edgepool.verify import run_tflite_child

TFLITE_RECIPES = ["float32", "float16", "dynamic-int8", "int8", "edgetpu-int8"]


@pytest.fixture(scope="module")
def run_copy(tiny_run, tmp_path_factory):
    """A private copy of the tiny run, so exports do not leak into other tests."""
    from edgepool.runs import load_run

    dst = tmp_path_factory.mktemp("exp") / "run"
    shutil.copytree(tiny_run.path, dst)
    return load_run(dst)


@pytest.fixture(scope="module")
def exports(run_copy):
    out = {r: export(run_copy, load_recipe(r)) for r in TFLITE_RECIPES}
    return {**out, "_y": run_copy.test_data()[1]}


@pytest.mark.parametrize("recipe", TFLITE_RECIPES)
def test_recipe_exports_and_verifies(exports, recipe):
    res = exports[recipe]
    v = res.verification
    assert v.status == Status.PASS and res.passed, v
    assert v.get("samples") == len(exports["_y"]) and 0 <= v.get("accuracy") <= 1
    res = res.export
    files = {p.name for p in res.path.iterdir()}
    assert {"model.tflite", "model.json", "labels.txt", "verify.json"} <= files
    side = json.loads((res.path / "model.json").read_text())
    assert side["recipe"] == recipe and side["labels"] == [str(i) for i in range(10)]
    assert side["normalization"]["scale"] == pytest.approx(1 / 255)
    want = {"float32": "float32", "float16": "float32", "dynamic-int8": "float32", "int8": "int8", "edgetpu-int8": "uint8"}[recipe]
    assert side["input"]["dtype"] == want and side["output"]["dtype"] == want
    if want != "float32":
        assert side["input"]["scale"] > 0 and side["input"]["zero_point"] is not None
    # the embedded metadata is the sidecar
    assert metadata.read((res.path / "model.tflite").read_bytes())["labels"] == side["labels"]


def test_float32_parity_is_strict(exports):
    v = exports["float32"].verification
    assert v.get("max_abs_diff") <= 1e-4 + 1e-5 * 10 and v.get("agreement") == 1.0


def test_int8_is_smaller_than_float32(exports):
    assert exports["int8"].export.size_bytes < exports["float32"].export.size_bytes


def _conv_weight_scales(export_result) -> list[int]:
    """Number of weight scales of every CONV_2D in the export (1 = per-tensor)."""
    from edgepool.inspect.tflite import read_tflite

    sg = read_tflite(export_result.export.path / "model.tflite").subgraphs[0]
    return [len(sg.tensors[op.inputs[1]].quantization.scale) for op in sg.ops if op.name == "CONV_2D"]


def test_int8_recipe_is_per_tensor_and_edgetpu_per_channel(exports):
    """`per_channel` in a recipe reaches the converter: int8 has one scale per weight tensor."""
    per_tensor, per_channel = _conv_weight_scales(exports["int8"]), _conv_weight_scales(exports["edgetpu-int8"])
    assert per_tensor and set(per_tensor) == {1}
    assert all(n > 1 for n in per_channel) and len(per_channel) == len(per_tensor)


def test_verification_fails_loudly_on_a_wrong_model(run_copy, exports, tmp_path):
    """A float32 export whose weights were changed must fail parity (the check can fail)."""
    from edgepool.export.tflite import convert
    from edgepool.models import load_run_model
    from edgepool.verify import verify_tflite

    model = load_run_model(run_copy)
    w = model.get_weights()
    w[-1] = w[-1] + 0.05  # nudge the logits' bias
    model.set_weights(w)
    p = tmp_path / "m.tflite"
    p.write_bytes(convert(model, load_recipe("float32")))
    v = verify_tflite(p, run_copy, load_recipe("float32"))
    assert v.status == Status.FAIL and "differ" in v.reason


def test_refuses_to_overwrite_and_bad_recipe(run_copy, exports):
    with pytest.raises(ExistsError):
        export(run_copy, load_recipe("int8"))
    with pytest.raises(RecipeError):
        load_recipe("int5")
    assert not [p for p in run_copy.exports_dir().iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_qat_recipe(run_copy):
    from edgepool.pipeline import quantize

    info = quantize(run_copy, load_recipe("int8-qat"), epochs=1)
    assert info["epochs"] == 1 and 0 <= info["qat_test_accuracy"] <= 1
    with pytest.raises(ExistsError):  # refused before any fine-tuning
        quantize(run_copy, load_recipe("int8-qat"), epochs=1)
    events = []
    res = export(run_copy, load_recipe("int8-qat"), progress=events.append)
    assert not [e for e in events if e.stage == "qat"]  # the stored QAT model is used, nothing is re-trained
    side = res.export.sidecar
    assert side["qat"]["float_test_accuracy"] == pytest.approx(info["float_test_accuracy"])
    assert res.verification.get("samples") == len(run_copy.test_data()[1]) and side["input"]["dtype"] == "int8"


@pytest.mark.slow
def test_int8_export_runs_on_tflite_runtime_2_14(exports, tflite_runtime_py, run_copy, tmp_path):
    """The Raspberry Pi OS runtime (tflite-runtime 2.14, numpy<2) runs the int8 export like the host."""
    x_raw, _ = run_copy.test_data()
    x = run_copy.normalize(x_raw[:40])
    model = exports["int8"].export.path / "model.tflite"
    host = run_tflite_child(model, x)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np\n"
        "from tflite_runtime.interpreter import Interpreter\n"
        "it = Interpreter(model_content=open(sys.argv[1], 'rb').read()); it.allocate_tensors()\n"
        "i, o = it.get_input_details()[0], it.get_output_details()[0]\n"
        "s, z = i['quantization']; os_, oz = o['quantization']; out = []\n"
        "for v in np.load(sys.argv[2]):\n"
        "    it.set_tensor(i['index'], np.clip(np.round(v[None] / s + z), -128, 127).astype(np.int8)); it.invoke()\n"
        "    out.append((it.get_tensor(o['index'])[0].astype(np.float32) - oz) * os_)\n"
        "np.save(sys.argv[3], np.stack(out))\n"
    )
    subprocess.run([str(tflite_runtime_py), "-c", script, str(model), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")], check=True)
    # kernels of different releases may round differently: TFLite's own test driver allows 4 x scale
    scale = exports["int8"].export.sidecar["output"]["scale"]
    device = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(device, host, atol=4 * scale, rtol=0)
    assert np.mean(device.argmax(1) == host.argmax(1)) >= 0.95

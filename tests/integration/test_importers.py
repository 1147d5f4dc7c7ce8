"""Bring your own model (edgepool.importers): detection, normalization, the import of each kind of model on digits,
conversion for host-cpu and a Core ML profile (on Linux run by the NumPy MIL executor), and verification against
the source runtime (tf_keras, Keras 3, the SavedModel signature, onnxruntime, LiteRT). Real converters, real
runtimes, real child processes; the models are made by `tests/_byom_models.py` (no torch).
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from edgepool.errors import DataError, ExportError, InputError, ModelError
from tests import _byom_models as B


@pytest.fixture(scope="session")
def byom(tmp_path_factory: pytest.TempPathFactory):
    """The trained base model and a folder to write model files into."""
    d = tmp_path_factory.mktemp("byom-models")
    return B.train_base(), d


@pytest.fixture(scope="session")
def digits():
    from edgepool.datasets import load_dataset

    return load_dataset("digits")


# ------------------------------------------------------------------------------------------ detection (no child)


def test_detect_reads_content_not_extension(byom, tmp_path):
    from edgepool.importers import KERAS2, KERAS3, ONNX, SAVEDMODEL, TFLITE, detect

    base, d = byom
    assert detect(B.keras2_h5(base, d)).kind == KERAS2
    assert detect(B.keras2_keras(base, d)).kind == KERAS2
    assert detect(B.onnx_model(base, d)).kind == ONNX
    assert detect(B.tflite(base, d)).kind == TFLITE
    assert detect(B.savedmodel(base, d)).kind == SAVEDMODEL
    k3 = B.keras3_keras(base, d)
    assert detect(k3).kind == KERAS3
    odd = tmp_path / "model.bin"  # an extension edgepool does not know: the content decides
    odd.write_bytes((d / "net.onnx").read_bytes())
    assert detect(odd).kind == ONNX


@pytest.mark.parametrize("name, content, says", [
    ("fake.onnx", "h5", "holds an HDF5 (.h5) Keras file, not an ONNX model as its extension says"),
    ("fake.tflite", "onnx", "holds an ONNX model, not a TFLite flatbuffer"),
    ("fake.keras", "tflite", "holds a TFLite flatbuffer, not a Keras .keras archive"),
    ("notes.keras", "text", "is not a model file edgepool can read"),
    ("empty.onnx", "empty", "is empty"),
    ("archive.keras", "zip", "holds a zip archive that is not a Keras model"),
])
def test_detect_refuses_a_file_that_is_not_what_it_says(byom, tmp_path, name, content, says):
    from edgepool.importers import detect

    base, d = byom
    data = {"h5": lambda: B.keras2_h5(base, d).read_bytes(), "onnx": lambda: B.onnx_model(base, d).read_bytes(),
            "tflite": lambda: B.tflite(base, d).read_bytes(), "text": lambda: b"hello, I am a text file\n",
            "empty": lambda: b""}
    p = tmp_path / name
    if content == "zip":
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("readme.txt", "no config here")
    else:
        p.write_bytes(data[content]())
    with pytest.raises(ModelError) as e:
        detect(p)
    assert says in e.value.message and "\n" not in e.value.message
    assert e.value.hint


def test_detect_savedmodel_folder_rules(tmp_path):
    from edgepool.importers import detect

    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="without saved_model.pb"):
        detect(tmp_path / "empty")
    (tmp_path / "empty" / "saved_model.pb").write_bytes(b"\x08\x01")
    with pytest.raises(ModelError, match="pass the folder that holds it"):
        detect(tmp_path / "empty" / "saved_model.pb")


# ------------------------------------------------------------------------------------------ normalization


def test_normalizations_and_per_channel_imagenet():
    from edgepool.importers import parse_normalization
    from edgepool.numeric import normalize

    raw = np.array([[[[0, 255, 128]]]], np.uint8)
    assert parse_normalization("0..1", 1)["scale"] == pytest.approx(1 / 255)
    n = parse_normalization("-1..1", 1)
    assert normalize(np.array([0, 255]), n["scale"], n["offset"]).tolist() == pytest.approx([-1.0, 1.0])
    im = parse_normalization("imagenet", 3)
    assert len(im["scale"]) == 3 and len(im["offset"]) == 3
    x = normalize(raw, im["scale"], im["offset"])  # the one formula every reader applies, per channel
    want = (raw / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(x, want, atol=1e-5)
    assert parse_normalization("0.5,-3", 1) | {} == {"name": "0.5,-3.0", "scale": 0.5, "offset": -3.0}
    with pytest.raises(InputError, match="per RGB channel"):
        parse_normalization("imagenet", 1)
    with pytest.raises(InputError, match="is not one of"):
        parse_normalization("zscore", 1)


def test_imagenet_normalization_fits_the_model_json_schema():
    from edgepool import schemas
    from edgepool.importers import parse_normalization

    im = parse_normalization("imagenet", 3)
    side = {"schema_version": 1, "format": "tflite", "file": "model.tflite", "labels": ["a"],
            "input": {"name": "x", "shape": [1, 8, 8, 3], "dtype": "float32", "scale": None, "zero_point": None},
            "output": {"name": "y", "shape": [1, 1], "dtype": "float32", "scale": None, "zero_point": None},
            "normalization": {"scale": im["scale"], "offset": im["offset"]}}
    assert not [p for p in schemas.problems(side, schemas.MODEL) if "normalization" in p]


# ------------------------------------------------------------------------------------------ quick refusals (child)


def test_onnx_size_and_channel_mismatch_is_an_error_not_a_reshape(byom, digits, tmp_path):
    from edgepool.datasets import load_dataset
    from edgepool.importers import import_model

    base, d = byom
    onnx = B.onnx_model(base, d)
    with pytest.raises(DataError) as e:
        import_model(onnx, load_dataset("digits", channels=3), tmp_path / "run")
    assert "takes 1-channel images (NCHW [1, 1, 8, 8]), the data has 3 channel(s)" in e.value.message
    with pytest.raises(DataError) as e:
        import_model(onnx, load_dataset("digits", image_size=(10, 10)), tmp_path / "run")
    assert "takes 8x8 images" in e.value.message and "the data's are 10x10" in e.value.message
    assert not (tmp_path / "run").exists()


def test_unsupported_onnx_op_is_named(byom, digits, tmp_path):
    from edgepool.importers import import_model

    p = B.onnx_with_op(tmp_path, "Frobnicate")
    with pytest.raises(ModelError) as e:
        import_model(p, digits, tmp_path / "run")
    assert "com.example:Frobnicate" in e.value.message and "onnx2tf" in e.value.message


def test_missing_onnx_extra_is_one_line_with_the_pip_command(byom, tmp_path):
    """onnx2tf hidden from a real child Python (sys.modules entry None): the import says how to install it."""
    import subprocess
    import sys

    base, d = byom
    onnx = B.onnx_model(base, d)
    code = f"""
import sys
sys.modules["onnx2tf"] = None  # how Python hides an installed module: `import onnx2tf` raises ImportError
from edgepool.datasets import load_dataset
from edgepool.errors import InputError
from edgepool.importers import import_model
try:
    import_model({str(onnx)!r}, load_dataset("digits"), {str(tmp_path / "run")!r})
except InputError as e:
    print(e.message); print(e.hint)
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = p.stdout.strip().splitlines()
    assert lines[0] == "importing ONNX models needs the onnx extra (onnx2tf not installed)", p.stderr[-800:]
    assert lines[1] == "pip install 'edgepool[onnx]'"


def test_keras_channels_first_layout_is_an_error(tmp_path, digits):
    from edgepool._tf import keras
    from edgepool.importers import import_model

    K = keras()
    inp = K.Input((1, 8, 8))  # channels first, as a PyTorch user might rebuild it
    out = K.layers.Dense(10)(K.layers.Flatten()(inp))
    p = tmp_path / "chw.keras"
    K.Model(inp, out).save(p)
    with pytest.raises(DataError) as e:
        import_model(p, digits, tmp_path / "run")
    assert "channels-first (NCHW)" in e.value.message and "8x8x1" in e.value.message


# ------------------------------------------------------------------------------------------ each path, end to end


def _check_run(run, kind, digits):
    m = run.manifest
    assert m["kind"] == "edgepool-run" and m["source"]["kind"] == kind
    assert m["data"]["fingerprint"] == digits.fingerprint() and m["data"]["split"]["sizes"]["test"] == len(run.test_data()[1])
    assert run.calib_data()[0].shape[1:] == (8, 8, 1) and m["data"]["calibration_samples"] == 500
    assert m["input"]["scale"] == pytest.approx(1 / 255) and m["input"]["normalization"] == "0..1"
    assert m["metrics"]["test_accuracy"] > 0.8
    assert m["source"]["parity"]["agreement"] == 1.0


def _convert_and_check(run, reference_word):
    from edgepool import pipeline
    from edgepool.profiles import resolve

    res = pipeline.convert(run, [resolve("host-cpu"), resolve("iphone-15-pro")])
    for o in res.outcomes:
        assert o.passed, (o.target, o.reason)
        side = o.export.sidecar
        assert side["labels"] == run.labels and side["source_model"]["kind"] == run.manifest["source"]["kind"]
        assert side["normalization"]["scale"] == pytest.approx(1 / 255) or side["baked_normalization"]["scale"] == pytest.approx(1 / 255)
        assert (o.export.path / "labels.txt").read_text().split() == run.labels
    tfl = res.outcomes[0]
    assert reference_word in tfl.verification.details["reference"]
    assert tfl.verification.details["agreement"] >= 0.97
    return res


@pytest.mark.slow
def test_keras3_import_convert_verify(byom, digits, tmp_path):
    from edgepool.importers import import_model

    base, d = byom
    res = import_model(B.keras3_keras(base, d), digits, tmp_path / "k3")
    _check_run(res.run, "keras3", digits)
    assert res.run.model_path.name == "model.savedmodel" and "Keras 3" in res.run.manifest["source"]["qat_unavailable"]
    _convert_and_check(res.run, "Keras 3")


@pytest.mark.slow
def test_keras2_h5_import_convert_verify_and_qat_stays_possible(byom, digits, tmp_path):
    from edgepool.importers import import_model

    base, d = byom
    res = import_model(B.keras2_h5(base, d), digits, tmp_path / "h5")
    _check_run(res.run, "keras2", digits)
    assert res.run.model_path.name == "model.keras" and res.run.manifest["source"]["qat"] is True
    _convert_and_check(res.run, "tf_keras")


@pytest.mark.slow
def test_savedmodel_import_convert_verify_float32_parity(byom, digits, tmp_path):
    from edgepool import pipeline
    from edgepool.importers import import_model
    from edgepool.recipes import load_recipe

    base, d = byom
    res = import_model(B.savedmodel(base, d), digits, tmp_path / "sm")
    _check_run(res.run, "savedmodel", digits)
    _convert_and_check(res.run, "SavedModel")
    out = pipeline.export(res.run, load_recipe("float32"))
    assert out.passed and out.verification.details["max_abs_diff"] < 1e-4


@pytest.mark.slow
def test_onnx_import_convert_verify_against_onnxruntime(byom, digits, tmp_path):
    from edgepool import pipeline
    from edgepool.importers import import_model
    from edgepool.recipes import load_recipe

    base, d = byom
    res = import_model(B.onnx_model(base, d), digits, tmp_path / "onnx")
    _check_run(res.run, "onnx", digits)
    src = res.run.manifest["source"]
    assert src["layout"] == "NCHW" and src["converted_with"].startswith("onnx2tf") and (res.run.path / src["stored"]).is_file()
    _convert_and_check(res.run, "onnxruntime")
    out = pipeline.export(res.run, load_recipe("float32"))
    assert out.passed and out.verification.details["max_abs_diff"] < 1e-4
    with pytest.raises(ExportError, match="QAT .* needs a tf_keras model.*came from ONNX"):
        pipeline.export(res.run, load_recipe("int8-qat"), out=tmp_path / "qat")
    export, v = pipeline.verify(out.export.path)  # re-verification: onnxruntime again, in a child
    assert v.status.ok and "onnxruntime" in v.details["reference"]


def test_tflite_import_is_its_own_export(byom, digits, tmp_path):
    from edgepool import pipeline
    from edgepool.importers import import_model

    base, d = byom
    res = import_model(B.tflite(base, d), digits, tmp_path / "tfl")
    run = res.run
    _check_run(run, "tflite", digits)
    (exp,) = run.exports()
    assert exp.name == "imported" and exp.sidecar["recipe"] == "float32" and exp.sidecar["labels"] == run.labels
    assert exp.model_file.read_bytes() == (d / "net.tflite").read_bytes()  # not converted again
    _, v = pipeline.verify(exp.path)
    assert v.status.ok and v.details["accuracy"] == pytest.approx(run.manifest["metrics"]["test_accuracy"])
    with pytest.raises(ModelError, match="already converted"):
        pipeline.model_source(run, __import__("edgepool.recipes", fromlist=["x"]).load_recipe("int8"))


def test_replacing_an_imported_run_removes_its_model_folder(byom, digits, tmp_path):
    from edgepool.importers import import_model
    from edgepool.runs import plan_replace

    base, d = byom
    run = import_model(B.tflite(base, d), digits, tmp_path / "r").run
    (run.path / "model.savedmodel").mkdir()
    (run.path / "model.savedmodel" / "saved_model.pb").write_bytes(b"x")
    plan = plan_replace(run.path)
    assert plan.exports == ["imported"] and not [o for o in plan.other if o.startswith("model.savedmodel")]
    with pytest.raises(InputError, match="already exists"):
        import_model(d / "net.tflite", digits, run.path)
    again = import_model(d / "net.tflite", digits, run.path, force=True).run
    assert json.loads((again.path / "manifest.json").read_text())["source"]["name"] == "net.tflite"

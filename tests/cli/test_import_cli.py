"""`edgepool import` and `edgepool convert MODEL_FILE --data D`: the commands a user with their own model types.

Real files (tests/_byom_models.py), real child processes, the real LiteRT interpreter and benchmark agent.
"""

from __future__ import annotations

import json

import pytest

from tests import _byom_models as B
from tests._cli import run


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("byom-cli")
    return B.train_base(), d


def writes(marker):
    """A lambda that creates `marker` when it runs, the path a constant in its code (Keras 3 stores the bytecode)."""
    return eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")  # noqa: S307


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], lines[0]


def test_import_tflite_then_verify_inspect_and_benchmark(models, tmp_path):
    base, d = models
    out = tmp_path / "tfl"
    code, so, se = run("import", B.tflite(base, d), "--data", "digits", "--out", out, "--json")
    assert code == 0, se
    doc = json.loads(so)
    assert doc["source"]["kind"] == "tflite" and doc["labels"] == [str(i) for i in range(10)] and doc["test_accuracy"] > 0.8
    code, so, se = run("verify", out / "exports" / "imported", "--json")
    assert code == 0, se
    code, so, se = run("inspect", out / "exports" / "imported", "--json")
    assert code == 0, se
    code, so, se = run("benchmark", out, "--runs", "20", "--min-seconds", "0.05", "--windows", "2", "--warmup-runs", "2",
                       "--warmup-seconds", "0.01", "--max-samples", "20", "--json")
    assert code == 0, se
    (res,) = json.loads(so)["results"]
    assert res.get("error") is None and res["latency_ms"]["median"] > 0
    assert 0.5 < res["accuracy"] <= 1.0  # on the run's test samples, with the recorded normalization
    assert list((out / "benchmarks").glob("*.json"))
    code, so, se = run("export", out, "--recipe", "int8")
    _one_line_error(code, se, "holds an imported .tflite", "already converted")


def test_file_that_is_not_what_its_extension_says(models, tmp_path):
    base, d = models
    fake = tmp_path / "model.onnx"
    fake.write_bytes(B.keras2_h5(base, d).read_bytes())
    code, _, se = run("import", fake, "--data", "digits", "--out", tmp_path / "run")
    _one_line_error(code, se, "holds an HDF5 (.h5) Keras file, not an ONNX model as its extension says")
    code, _, se = run("convert", fake, "--data", "digits", "--profile", "host-cpu")
    _one_line_error(code, se, "not an ONNX model")
    assert not (tmp_path / "run").exists()


def test_size_and_channel_mismatch_names_the_data_option(models, tmp_path):
    base, d = models
    onnx = B.onnx_model(base, d)
    code, _, se = run("import", onnx, "--data", "digits", "--image-size", "12x12", "--out", tmp_path / "run")
    _one_line_error(code, se, "takes 8x8 images (NCHW [1, 1, 8, 8]), the data's are 12x12", "--image-size 8x8")
    code, _, se = run("import", onnx, "--data", "digits", "--channels", "3", "--out", tmp_path / "run")
    _one_line_error(code, se, "takes 1-channel images", "--channels 1")
    assert not (tmp_path / "run").exists()


def test_convert_model_file_needs_data(models):
    base, d = models
    code, _, se = run("convert", B.onnx_model(base, d), "--profile", "host-cpu")
    _one_line_error(code, se, "is a model file, not a run", "--data")


def test_lambda_layer_is_refused_and_runs_no_code(models, tmp_path):
    """A Keras 3 .keras whose Lambda writes a file when it runs: without --unsafe-load nothing is written."""
    base, d = models
    marker = tmp_path / "pwned"
    model = B.keras3_keras(base, tmp_path, lambda_fn=writes(marker), name="lambda.keras")
    marker.unlink()  # building the model in this test ran the lambda once
    code, _, se = run("import", model, "--data", "digits", "--out", tmp_path / "run")
    _one_line_error(code, se, "holds a Lambda layer", "refused in safe mode", "--unsafe-load")
    assert not marker.exists() and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_unsafe_load_says_what_it_allows_and_runs_the_code(models, tmp_path):
    base, d = models
    marker = tmp_path / "ran"
    model = B.keras3_keras(base, tmp_path, lambda_fn=writes(marker), name="lambda.keras")
    marker.unlink()
    code, so, se = run("import", model, "--data", "digits", "--out", tmp_path / "run", "--unsafe-load")
    assert code == 0, se
    assert "unsafe load: Python code stored in the model" in se and marker.exists()
    assert "loaded with unsafe load" in so


def test_custom_layer_without_custom_objects_is_named(models, tmp_path, monkeypatch):
    base, d = models
    model = B.custom_layer_model(base, tmp_path, module="byom_cli_layers")
    monkeypatch.chdir(tmp_path)
    code, _, se = run("import", model, "--data", "digits", "--out", tmp_path / "no")
    _one_line_error(code, se, "uses custom class(es) Scale", "--custom-objects")
    code, _, se = run("import", model, "--data", "digits", "--out", tmp_path / "run", "--custom-objects", "nosuchmodule:Scale")
    _one_line_error(code, se, "cannot import module 'nosuchmodule'")
    assert not (tmp_path / "no").exists() and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_custom_layer_with_custom_objects(models, tmp_path, monkeypatch):
    base, d = models
    model = B.custom_layer_model(base, tmp_path, module="byom_cli_layers2")
    monkeypatch.chdir(tmp_path)  # the module is importable from the current folder, as for a user
    code, so, se = run("import", model, "--data", "digits", "--out", tmp_path / "run", "--custom-objects", "byom_cli_layers2:Scale", "--json")
    assert code == 0, se
    doc = json.loads(so)
    assert doc["model_file"] == "model.savedmodel" and doc["source"]["loaded_with"]["custom_objects"] == ["byom_cli_layers2:Scale"]
    assert "holds custom layers" in doc["source"]["qat_unavailable"]
    code, _, se = run("quantize", tmp_path / "run", "--recipe", "int8-qat")
    _one_line_error(code, se, "QAT (recipe int8-qat) needs a tf_keras model", "holds custom layers")
    code, so, se = run("evaluate", tmp_path / "run", "--json")  # the run model loads without the user's module
    assert code == 0, se


@pytest.mark.slow
def test_convert_model_file_one_liner(models, tmp_path):
    base, d = models
    out = tmp_path / "h5run"
    code, so, se = run("convert", B.keras2_h5(base, d), "--data", "digits", "--profile", "host-cpu", "--out", out)
    assert code == 0, se
    assert "imported net.h5" in so and "host-cpu" in so and "pass" in so
    assert (out / "exports" / "host-cpu" / "model.tflite").is_file()
    assert json.loads((out / "exports" / "host-cpu" / "model.json").read_text())["source_model"]["name"] == "net.h5"

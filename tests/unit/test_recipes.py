from __future__ import annotations

import dataclasses
import json

import pytest

from edgepool.errors import RecipeError
from edgepool.recipes import QuantRecipe, list_recipes, load_recipe, recipe_names
from edgepool.types import Compression, DeploymentTarget, RecipeFormat


def test_every_shipped_recipe_validates():
    names = recipe_names()
    assert {"float32", "float16", "dynamic-int8", "int8", "int8-qat", "edgetpu-int8"} <= set(names)
    for r in list_recipes():
        assert r.description
    assert load_recipe("int8").full_integer and load_recipe("int8-qat").qat
    # int8 PTQ keeps one weight scale per tensor (see its file); the others keep TFLite's per-channel
    assert not load_recipe("int8").per_channel and load_recipe("int8-qat").per_channel
    e = load_recipe("edgetpu-int8")
    assert (e.input_type, e.output_type) == ("uint8", "uint8")


def test_typed_fields_and_plain_json():
    r = load_recipe("coreml-palettize")
    assert r.format is RecipeFormat.COREML and r.weight_compression is Compression.PALETTIZE
    assert load_recipe("int8").format is RecipeFormat.TFLITE and load_recipe("int8").weight_compression is Compression.NONE
    d = r.to_dict()
    assert type(d["format"]) is str and type(d["weight_compression"]) is str and type(d["path"]) is str
    assert json.loads(json.dumps(d))["weight_compression"] == "palettize"
    assert load_recipe(r) is r  # a QuantRecipe passes through
    assert r.weights_label == "float16 (palettize 6-bit)" and load_recipe("int8").weights_label == "int8 per-tensor"
    # settings(): only the keys that apply to the recipe's format
    tfl, cml = load_recipe("edgetpu-int8").settings(), r.settings()
    assert "per_channel" in tfl and "compute_precision" not in tfl
    assert "palettize_nbits" in cml and "weights" not in cml and "min_agreement" in cml


def test_coreml_target_rules():
    fp16, i8, pal = load_recipe("coreml-fp16"), load_recipe("coreml-int8"), load_recipe("coreml-palettize")
    assert fp16.default_coreml_target() is DeploymentTarget.iOS15
    assert i8.default_coreml_target() is DeploymentTarget.iOS16 and pal.default_coreml_target() is DeploymentTarget.iOS16
    assert fp16.coreml_target_problem(DeploymentTarget.iOS13) is None
    assert "iOS16" in (i8.coreml_target_problem(DeploymentTarget.iOS15) or "")
    assert pal.coreml_target_problem(DeploymentTarget.iOS16) is None
    pal3 = dataclasses.replace(pal, palettize_nbits=3)
    assert "iOS18" in (pal3.coreml_target_problem(DeploymentTarget.iOS17) or "")
    assert pal3.coreml_target_problem(DeploymentTarget.iOS18) is None
    assert pal3.default_coreml_target() is DeploymentTarget.iOS18
    assert "not a Core ML one" in (load_recipe("int8").coreml_target_problem(DeploymentTarget.iOS17) or "")


def _write(tmp_path, text):
    p = tmp_path / "mine.toml"
    p.write_text(text)
    return p


BASE = 'schema_version = 1\ndescription = "x"\nformat = "tflite"\n'
COREML = 'schema_version = 1\ndescription = "x"\nformat = "coreml"\n'


@pytest.mark.parametrize(
    "extra,match",
    [
        ('weights = "int4"\n', 'weights: "int4" is not allowed'),
        ("colour = 1\n", "colour: unknown key"),
        ('calibration_samples = "many"\n', 'calibration_samples: expected an integer, got "many"'),
        ('compute_precision = "float16"\n', 'compute_precision: does not apply to format "tflite"'),
        ('weights = "float32"\nactivations = "int8"\n', "int8 activations need int8 weights"),
        ('input_type = "int8"\n', "needs activations"),
        ('weights = "int8"\nactivations = "int8"\ncalibration_samples = 0\n', "out of range"),
        ('weights = "int8"\nper_channel = "no"\n', 'per_channel: expected a boolean, got "no"'),
        ('weights = "int8"\nper_channel = 0\n', "per_channel: expected a boolean, got 0"),
        ("per_channel = false\n", "per_channel applies to int8 weights only"),
        ('weights = "int8"\nactivations = "int8"\nqat_epochs = 2\nper_channel = false\n', "QAT fake-quantizes"),
        ("calibration_samples = true\n", "calibration_samples: expected an integer, got true"),
        ("min_agreement = 1.5\n", r"min_agreement: 1.5 is out of range \(expected from 0 to 1\)"),
        ("qat_learning_rate = 0\n", "qat_learning_rate: 0 is out of range"),
        ("qat_epochs = 1\n", "qat_epochs: QAT .* needs full-integer activations"),
    ],
)
def test_recipe_rejections_name_file_and_key(tmp_path, extra, match):
    p = _write(tmp_path, BASE + extra)
    with pytest.raises(RecipeError, match=match) as e:
        load_recipe(p)
    assert str(p) in e.value.message and e.value.hint


@pytest.mark.parametrize(
    "extra,match",
    [
        ("palettize_nbits = 5\n", r"palettize_nbits: 5 is not allowed \(allowed: 1, 2, 3, 4, 6, 8\)"),
        ('weight_compression = "zip"\n', 'weight_compression: "zip" is not allowed'),
        ('weights = "int8"\n', 'weights: does not apply to format "coreml"'),
        ('weight_compression = "none"\npalettize_nbits = 4\n', 'applies to weight_compression = "palettize" only'),
    ],
)
def test_coreml_recipe_rejections(tmp_path, extra, match):
    p = _write(tmp_path, COREML + extra)
    with pytest.raises(RecipeError, match=match) as e:
        load_recipe(p)
    assert str(p) in e.value.message


def test_user_recipe_by_path_and_errors(tmp_path):
    p = _write(tmp_path, BASE + 'weights = "float16"\n')
    r = load_recipe(p)
    assert r.name == "mine" and r.weights == "float16" and isinstance(r, QuantRecipe)
    assert load_recipe(str(p)) == r
    with pytest.raises(RecipeError, match="unknown recipe 'int3'") as ei:
        load_recipe("int3")
    assert "did you mean 'int8'?" in (ei.value.hint or "")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(_write(tmp_path, "schema_version = [\n"))
    with pytest.raises(RecipeError, match="format: missing") as ei:
        load_recipe(_write(tmp_path, 'schema_version = 1\ndescription = "x"\n'))
    assert ei.value.hint == 'add format = "tflite"'
    with pytest.raises(RecipeError, match="schema_version: missing"):
        load_recipe(_write(tmp_path, 'description = "x"\nformat = "tflite"\n'))
    with pytest.raises(RecipeError, match="no such file"):
        load_recipe(tmp_path / "nope.toml")

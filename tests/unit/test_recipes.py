from __future__ import annotations

import pytest

from edgepool.errors import RecipeError
from edgepool.quantize import list_recipes, load_recipe, recipe_names


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


def _write(tmp_path, text):
    p = tmp_path / "mine.toml"
    p.write_text(text)
    return p


BASE = 'schema_version = 1\ndescription = "x"\nformat = "tflite"\n'


@pytest.mark.parametrize(
    "extra,match",
    [
        ('weights = "int4"\n', "key 'weights' is 'int4'"),
        ("colour = 1\n", "unknown key 'colour'"),
        ('calibration_samples = "many"\n', "must be int"),
        ('compute_precision = "float16"\n', "does not apply to format 'tflite'"),
        ('weights = "float32"\nactivations = "int8"\n', "int8 activations need int8 weights"),
        ('input_type = "int8"\n', "needs activations"),
        ('weights = "int8"\nactivations = "int8"\ncalibration_samples = 0\n', "out of range"),
        ('weights = "int8"\nper_channel = "no"\n', "'per_channel' must be bool, not str"),
        ('weights = "int8"\nper_channel = 0\n', "'per_channel' must be bool, not int"),
        ("per_channel = false\n", "per_channel applies to int8 weights only"),
        ('weights = "int8"\nactivations = "int8"\nqat_epochs = 2\nper_channel = false\n', "QAT fake-quantizes"),
        ('calibration_samples = true\n', "must be int, not bool"),
    ],
)
def test_recipe_rejections_name_file_and_key(tmp_path, extra, match):
    p = _write(tmp_path, BASE + extra)
    with pytest.raises(RecipeError, match=match) as e:
        load_recipe(p)
    assert str(p) in e.value.message


def test_user_recipe_by_path_and_errors(tmp_path):
    p = _write(tmp_path, BASE + 'weights = "float16"\n')
    r = load_recipe(p)
    assert r.name == "mine" and r.weights == "float16"
    with pytest.raises(RecipeError, match="unknown recipe 'int3'"):
        load_recipe("int3")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(_write(tmp_path, "schema_version = [\n"))
    with pytest.raises(RecipeError, match="missing key 'format'"):
        load_recipe(_write(tmp_path, 'schema_version = 1\ndescription = "x"\n'))
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.toml")

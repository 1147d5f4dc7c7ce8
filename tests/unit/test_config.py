"""The one strict-TOML loader: every rule gives one line naming the file and key, with a hint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgepool import config
from edgepool.config import Field, Kind, Range
from edgepool.errors import ProfileError, RecipeError
from edgepool.types import Runtime

SCHEMA: dict[str, Field] = {
    "name": Field(Kind.STRING, required=True, meaning="what people call it", example='"board"'),
    "runtime": Field(Kind.STRING, required=True, choices=Runtime),
    "threads": Field(Kind.INTEGER, required=True, range=Range(1, 256), meaning="CPU threads"),
    "fast": Field(Kind.BOOLEAN),
    "ram_budget_mb": Field(Kind.INTEGER, range=Range.positive(), meaning="RAM budget in MB", needs_source=True),
    "idle_power_w": Field(Kind.NUMBER, range=Range.positive(), meaning="idle power in watts", needs_source=True),
    "tags": Field(Kind.STRINGS),
    "compute_units": Field(Kind.STRING, required=True, applies_to=("coreml",), choices=("ALL", "CPU_ONLY")),
}

VALID = """\
schema_version = 1
name = "board"
runtime = "tflite"
threads = 4
ram_budget_mb = 256
idle_power_w = 2

[sources]
ram_budget_mb = "estimate: a budget"
idle_power_w = "datasheet: page 3"
"""


def load(tmp_path: Path, text: str, error: type = ProfileError) -> dict:
    p = tmp_path / "thing.toml"
    p.write_text(text)
    return config.load_table(p, SCHEMA, error=error, what="device profile", variant="runtime")


def fails(tmp_path: Path, text: str, key: str, error: type = ProfileError) -> ProfileError:
    with pytest.raises(error) as ei:
        load(tmp_path, text, error)
    e = ei.value
    assert f"device profile {tmp_path / 'thing.toml'}: {key}: " in e.message, e.message
    assert "\n" not in e.message and e.hint and "\n" not in e.hint
    return e


def test_valid_table_is_converted(tmp_path: Path) -> None:
    v = load(tmp_path, VALID)
    assert v["runtime"] is Runtime.TFLITE and v["threads"] == 4
    assert v["idle_power_w"] == 2.0 and isinstance(v["idle_power_w"], float)  # an int is accepted for a number
    assert isinstance(v["ram_budget_mb"], int)
    assert v["sources"] == {"ram_budget_mb": "estimate: a budget", "idle_power_w": "datasheet: page 3"}
    assert "schema_version" not in v and "fast" not in v


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    e = fails(tmp_path, VALID.replace("threads = 4", "threads = 4\nthread = 2"), "thread")
    assert "unknown key" in e.message and "did you mean threads (CPU threads)?" in (e.hint or "")
    e = fails(tmp_path, VALID.replace("ram_budget_mb = 256", "ram_budget_gb = 1"), "ram_budget_gb")
    assert "ram_budget_mb" in (e.hint or "")
    e = fails(tmp_path, VALID.replace("threads = 4", "threads = 4\nzzz = 1"), "zzz")
    assert (e.hint or "").startswith("allowed keys: schema_version, name, runtime")


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    e = fails(tmp_path, VALID.replace("threads = 4", 'threads = "4"'), "threads")
    assert 'expected an integer, got "4"' in e.message and "without quotes" in (e.hint or "")
    e = fails(tmp_path, VALID.replace('name = "board"', "name = 3"), "name")
    assert "expected a string, got 3" in e.message
    e = fails(tmp_path, VALID.replace('name = "board"', 'name = ""'), "name")
    assert "non-empty string" in e.message
    e = fails(tmp_path, VALID.replace("threads = 4", "threads = 4.5"), "threads")
    assert "expected an integer, got 4.5" in e.message and "whole number" in (e.hint or "")
    e = fails(tmp_path, VALID.replace("threads = 4", "threads = 4\nfast = 1"), "fast")
    assert "expected a boolean, got 1" in e.message and "true or false" in (e.hint or "")
    e = fails(tmp_path, VALID.replace("threads = 4", "threads = 4\ntags = [1]"), "tags")
    assert "expected a list of strings" in e.message
    fails(tmp_path, VALID.replace("idle_power_w = 2\n", "idle_power_w = nan\n"), "idle_power_w")


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    e = fails(tmp_path, VALID.replace("threads = 4", "threads = true"), "threads")
    assert "expected an integer, got true" in e.message and "a boolean is not an integer" in (e.hint or "")
    e = fails(tmp_path, VALID.replace("idle_power_w = 2\n", "idle_power_w = false\n"), "idle_power_w")
    assert "expected a number, got false" in e.message


def test_enum_value_lists_the_allowed_ones(tmp_path: Path) -> None:
    e = fails(tmp_path, VALID.replace('runtime = "tflite"', 'runtime = "onnx"'), "runtime")
    assert '"onnx" is not allowed (allowed: "tflite", "edgetpu", "coreml")' in e.message
    e = fails(tmp_path, VALID.replace('runtime = "tflite"', 'runtime = "tflight"'), "runtime")
    assert 'did you mean "tflite"?' in (e.hint or "")


def test_range_is_stated(tmp_path: Path) -> None:
    e = fails(tmp_path, VALID.replace("threads = 4", "threads = 0"), "threads")
    assert "0 is out of range (expected from 1 to 256)" in e.message
    e = fails(tmp_path, VALID.replace("idle_power_w = 2\n", "idle_power_w = -1.5\n"), "idle_power_w")
    assert "-1.5 is out of range (expected greater than 0)" in e.message


def test_range_descriptions() -> None:
    assert Range(1, 256).describe() == "from 1 to 256"
    assert Range(0, None).describe() == "at least 0"
    assert Range(0, 1, lo_inclusive=False).describe() == "greater than 0 and at most 1"
    assert Range(None, 10, hi_inclusive=False).describe() == "less than 10"
    assert Range(0, 1, lo_inclusive=False).contains(1) and not Range(0, 1, lo_inclusive=False).contains(0)


def test_missing_required_key_shows_a_line_to_add(tmp_path: Path) -> None:
    e = fails(tmp_path, VALID.replace('name = "board"\n', ""), "name")
    assert "missing" in e.message and e.hint == 'add name = "board"'
    e = fails(tmp_path, VALID.replace("threads = 4\n", ""), "threads")
    assert e.hint == "add threads = 1"
    e = fails(tmp_path, VALID.replace("schema_version = 1\n", ""), "schema_version")
    assert e.hint == "add schema_version = 1"
    e = fails(tmp_path, VALID.replace("schema_version = 1", "schema_version = 2"), "schema_version")
    assert "not supported" in e.message and "schema_version = 1" in (e.hint or "")


def test_applies_to_the_variant_only(tmp_path: Path) -> None:
    e = fails(tmp_path, VALID.replace("threads = 4", 'threads = 4\ncompute_units = "ALL"'), "compute_units")
    assert 'does not apply to runtime "tflite"' in e.message and "remove it" in (e.hint or "")
    coreml = VALID.replace('runtime = "tflite"', 'runtime = "coreml"')
    e = fails(tmp_path, coreml, "compute_units")  # required where it applies
    assert "missing" in e.message and e.hint == 'add compute_units = "ALL"'
    assert load(tmp_path, coreml.replace("threads = 4", 'threads = 4\ncompute_units = "ALL"'))["compute_units"] == "ALL"


def test_missing_source(tmp_path: Path) -> None:
    e = fails(tmp_path, VALID.replace('idle_power_w = "datasheet: page 3"\n', ""), "sources.idle_power_w")
    assert "has no source" in e.message and "datasheet" in (e.hint or "")
    fails(tmp_path, VALID.split("[sources]")[0], "sources.ram_budget_mb")  # no [sources] table at all


def test_bad_source_kind_or_key(tmp_path: Path) -> None:
    e = fails(tmp_path, VALID.replace('"datasheet: page 3"', '"wikipedia: page 3"'), "sources.idle_power_w")
    assert "estimate" in (e.hint or "")
    fails(tmp_path, VALID.replace('"datasheet: page 3"', '"estimate:"'), "sources.idle_power_w")
    fails(tmp_path, VALID.replace('"datasheet: page 3"', "3"), "sources.idle_power_w")
    e = fails(tmp_path, VALID + 'threads = "estimate: x"\n', "sources.threads")
    assert "not a number that takes a source" in e.message
    text = VALID.replace("idle_power_w = 2\n", "")
    e = fails(tmp_path, text, "sources.idle_power_w")
    assert "idle_power_w is not set" in e.message
    assert config.check_source("vendor: Apple") and not config.check_source("Apple")


def test_unreadable_and_not_toml(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"^quantization recipe .*nope\.toml: no such file \(hint: check the path\)$"):
        config.read_toml(tmp_path / "nope.toml", error=RecipeError, what="quantization recipe")
    with pytest.raises(ProfileError, match="is a directory"):
        config.read_toml(tmp_path, error=ProfileError, what="device profile")
    bad = tmp_path / "bad.toml"
    bad.write_text("threads = = 4")
    with pytest.raises(ProfileError, match="not valid TOML"):
        config.read_toml(bad, error=ProfileError, what="device profile")
    bad.write_bytes(b"name = \"\xff\"\n")
    with pytest.raises(ProfileError, match="not UTF-8"):
        config.read_toml(bad, error=ProfileError, what="device profile")
    if os.geteuid() != 0:  # root reads anything
        bad.write_text(VALID)
        bad.chmod(0)
        with pytest.raises(ProfileError, match="permission denied"):
            config.read_toml(bad, error=ProfileError, what="device profile")


def test_error_class_is_the_callers(tmp_path: Path) -> None:
    e = fails(tmp_path, VALID.replace("threads = 4", "threads = 0"), "threads", error=RecipeError)
    assert isinstance(e, RecipeError) and e.exit_code == 2


def test_messages_use_the_right_article() -> None:
    assert Kind.INTEGER.with_article == "an integer" and Kind.STRING.with_article == "a string"
    assert config.toml_repr(True) == "true" and config.toml_repr("a") == '"a"' and config.toml_repr(2.0) == "2"


def test_no_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys, edgepool.config, edgepool.recipes; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

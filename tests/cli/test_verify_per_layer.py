"""`edgepool verify EXPORT --per-layer`: every quantized op's error (TensorFlow's QuantizationDebugger on the
run's test split), worst first, named by Keras layer, with the layers to keep in float; `--json` too."""

from __future__ import annotations

import json

import pytest

from tests._cli import run as cli_run


@pytest.fixture(scope="module")
def int8_export(tiny_run, tmp_path_factory):
    from edgepool.pipeline import export
    from edgepool.recipes import load_recipe

    return export(tiny_run, load_recipe("int8"), out=tmp_path_factory.mktemp("pl") / "int8", verify=False).export


def test_per_layer_json_is_sorted_and_names_layers(int8_export, tiny_run):
    from edgepool.models import load_run_model

    code, out, err = cli_run("verify", int8_export.path, "--per-layer", "--json", "--samples", "40")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["samples"] == 40 and rep["recipe"] == "int8"
    rows = rep["layers"]
    assert len(rows) >= 4
    scores = [r["rmse_scale"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    names = {layer.name for layer in load_run_model(tiny_run).layers}
    assert all(r["layers"] and set(r["layers"]) <= names for r in rows), [r["tensor"] for r in rows]
    assert {"b0_conv0", "logits"} <= {n for r in rows for n in r["layers"]}
    assert all(r["scale"] > 0 and r["num_elements"] > 0 and r["float_rmse"] is not None for r in rows)
    assert set(rep["flagged_rmse_scale"]) == {r["layers"][0] for r in rows if r["rmse_scale"] > rep["threshold_rmse_scale"]}
    trials = rep["float_trials"]  # each layer kept in float alone, measured; best first
    assert trials and {t["layer"] for t in trials} <= names
    assert [t["gain_pp"] for t in trials] == sorted((t["gain_pp"] for t in trials), reverse=True)
    assert rep["keep_float"] == [t["layer"] for t in trials if t["gain_pp"] >= 0.5]
    assert "QuantizationDebugger" in rep["source"]


def test_per_layer_table(int8_export):
    code, out, err = cli_run("verify", int8_export.path, "--per-layer", "--samples", "20")
    assert code == 0, err
    assert "rmse/scale" in out and "keep in float" in out and "b0_conv0" in out and "one layer stays float" in out


def test_per_layer_refuses_a_float_export(tiny_run, tmp_path):
    from edgepool.pipeline import export
    from edgepool.recipes import load_recipe

    e = export(tiny_run, load_recipe("float32"), out=tmp_path / "f32", verify=False).export
    code, out, err = cli_run("verify", e.path, "--per-layer")
    assert code == 2
    assert "not a full-integer" in err and len(err.strip().splitlines()) <= 3

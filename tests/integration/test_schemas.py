"""The shipped JSON schemas against what edgepool really writes: model.json of real exports (and the copy
embedded in a .tflite), a real agent's `result` event and a saved benchmark document; and that a document
breaking its schema is refused where edgepool writes it, as a bug."""

from __future__ import annotations

import copy
import json

import pytest

from edgepool import schemas
from tests._example_exports import tiny_export


@pytest.fixture(scope="module")
def exports(tiny_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("schema-exports")
    return {r: tiny_export(tiny_run, r, root) for r in ("int8", "coreml-fp16")}


def test_schemas_are_valid_draft_2020_12():
    from jsonschema import Draft202012Validator

    for name in schemas.SCHEMAS:
        doc = schemas.load(name)
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(doc)


@pytest.mark.slow
def test_real_exports_match_model_schema(exports):
    from edgepool.export import metadata

    for export in exports.values():
        assert schemas.problems(export.sidecar, schemas.MODEL) == [], export.path
    embedded = metadata.read(exports["int8"].model_file.read_bytes())
    assert schemas.problems(embedded, schemas.MODEL) == []

    # the contract is enforced: an integer input without its quantization, an unknown format, no labels
    bad = copy.deepcopy(exports["int8"].sidecar)
    bad["input"]["scale"] = None
    bad["format"] = "onnx"
    del bad["labels"]
    found = schemas.problems(bad, schemas.MODEL)
    assert any("'labels' is a required property" in p for p in found)
    assert any(p.startswith("at $.format:") for p in found)
    assert any(p.startswith("at $.input.scale:") for p in found)


@pytest.mark.slow
def test_save_export_refuses_a_sidecar_that_breaks_the_schema(exports, tmp_path):
    """A model.json edgepool would write against its own schema is a bug: SchemaViolation, nothing written."""
    from edgepool.runs import save_export
    from edgepool.types import Artifact, Format

    src = exports["int8"]
    side = {**src.sidecar, "labels": "0123456789"}
    art = Artifact(Format.TFLITE, "model.tflite", {"model.tflite": src.model_file.read_bytes()}, side)
    with pytest.raises(schemas.SchemaViolation, match=r"at \$\.labels: .*bug in edgepool"):
        save_export(art, tmp_path / "out", labels=list("0123456789"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_real_agent_result_and_saved_benchmark_match_the_schema(exports, tmp_path):
    """The local agent measures the int8 export (tiny protocol); its `result` event is a device_result, and
    the document `edgepool benchmark` saves validates (it is checked when saved, too)."""
    from edgepool.bench.protocol import BenchOptions
    from edgepool.pipeline import benchmark

    events = []
    opts = BenchOptions(runs=3, windows=2, min_seconds=0.0, warmup_min_seconds=0.0, max_samples=20)
    results, saved = benchmark([exports["int8"].path], opts, out=tmp_path / "bench.json",
                               progress=lambda ev: events.append(ev))
    assert saved == [tmp_path / "bench.json"] and results[0].error is None
    doc = json.loads(saved[0].read_text())
    assert schemas.problems(doc, schemas.BENCHMARK) == []
    assert schemas.problems(doc["results"][0], schemas.BENCHMARK, "result") == []

    from edgepool.bench.transports.local import LocalTransport

    run = LocalTransport().run({"model_path": str(exports["int8"].model_file), "runs": 2, "windows": 1,
                                "min_seconds": 0.0, "warmup_min_seconds": 0.0})
    assert run.result is not None, run.error
    assert schemas.problems(run.result, schemas.BENCHMARK, "device_result") == []
    assert schemas.problems(run.windows[0], schemas.BENCHMARK, "device_window") == []

    # optional energy / battery records (the energy work's shape) validate; a wrong kind does not
    result = copy.deepcopy(doc["results"][0])
    result["energy"] = {"kind": "measured", "mj_per_inference": 1.5, "uncertainty_mj": 0.1, "avg_power_w": 2.1,
                        "idle_power_w": 1.9, "source": "hwmon:ina226 power1", "rail": "board rails (not the 5 V input)",
                        "sample_rate_hz": 10.0, "sampler_overhead": {"cpu_s_per_s": 0.01}, "windows_mj": [1.4, 1.6],
                        "notes": []}
    result["battery"] = {"kind": "estimated", "battery_wh": 12.0, "inferences_per_charge": 2.9e7, "fps": None,
                         "hours_at_fps": None}
    assert schemas.problems(result, schemas.BENCHMARK, "result") == []
    result["energy"]["kind"] = "guessed"
    assert schemas.problems(result, schemas.BENCHMARK, "result")
    with pytest.raises(schemas.SchemaViolation):
        schemas.check_benchmark_document({**doc, "results": [result]})

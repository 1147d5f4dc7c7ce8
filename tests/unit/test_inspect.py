"""The static TFLite reader, MACs/params, arena planner and op-version support, on real converted models."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepool.errors import InputError
from edgepool.inspect import estimate_model, inspect_model
from edgepool.inspect.arena import plan_arena
from edgepool.inspect.support import check_runtime_support, min_runtime_for_op, parse_version
from edgepool.inspect.tflite import read_tflite


@pytest.fixture(scope="module")
def mixed(tflite_models):  # noqa: F811
    return tflite_models.path("mixed")


def test_reader_ops_tensors_quantization(mixed):
    m = read_tflite(mixed)
    g = m.main
    assert [op.name for op in g.ops] == [
        "CONV_2D", "MAX_POOL_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
        "MEAN", "FULLY_CONNECTED",
    ]
    assert all(op.version >= 1 for op in g.ops)
    inp = g.tensors[g.inputs[0]]
    assert inp.shape == [1, 16, 16, 3] and inp.dtype == "INT8"
    assert inp.quantization is not None and inp.quantization.scale[0] > 0
    conv_w = g.tensors[g.ops[0].inputs[1]]
    assert conv_w.is_constant and conv_w.shape == [8, 3, 3, 3] and len(conv_w.quantization.scale) == 8
    assert g.ops[0].options["fused_activation_function"] == "RELU"
    assert m.min_runtime_version  # the converter writes it
    assert m.edgepool_metadata is None
    assert m.constant_bytes > 0


def test_macs_params_match_keras(tflite_models, mixed):  # noqa: F811
    from edgepool.models import count_macs

    r = inspect_model(mixed)
    keras_model = tflite_models.keras["mixed"]
    assert r.macs == count_macs(keras_model)
    # parameters after BN folding: conv kernel + folded bias; separable dw + pw + bias; dw + bias; dense
    expected = 3 * 3 * 3 * 8 + 8 + 3 * 3 * 8 + 8 * 16 + 16 + 3 * 3 * 16 + 16 + 16 * 10 + 10
    assert r.params == expected
    assert keras_model.count_params() == expected - 8 + 4 * 8  # BN's 4 per channel fold into 1 bias


def test_arena_plan_and_peak(mixed):
    g = read_tflite(mixed).main
    plan = plan_arena(g)
    # int8: the input (768 B) lives for the whole graph; op 0 writes 16x16x8 (2048 B) and needs an
    # im2col temporary of 16*16*3*3*3 = 6912 B
    assert plan.live_bytes_per_op[0] == 768 + 2048 + 6912
    assert plan.live_bytes_per_op[1] == 768 + 2048 + 512
    assert plan.peak_op == 0 and plan.peak_live_bytes == 768 + 2048 + 6912
    assert plan.arena_bytes >= plan.peak_live_bytes
    # no two buffers alive at the same time overlap in the arena
    for a in plan.tensors:
        for b in plan.tensors:
            if a.tensor < b.tensor and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset


@pytest.mark.parametrize("name", ["mixed", "mixed-float", "l2-fallback"])
def test_arena_within_20_percent_of_litert_arena(tflite_models, name):  # noqa: F811
    """Our plan vs LiteRT's real arena: the address span of its arena tensors after allocate_tensors."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path = tflite_models.path(name)
    it = Interpreter(model_content=path.read_bytes(),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    plan = plan_arena(read_tflite(path).main)
    spans = []
    for t in plan.tensors:
        if t.tensor >= 0:
            a = it.tensor(t.tensor)()
            start = a.__array_interface__["data"][0]
            spans.append((start, start + a.nbytes))
    litert = max(e for _, e in spans) - min(s for s, _ in spans)
    assert 0.8 * litert <= plan.arena_bytes <= 1.2 * litert


def test_op_version_table():
    assert min_runtime_for_op("CONV_2D", 1) == "1.5.0"
    assert min_runtime_for_op("CONV_2D", 7) == "2.11.0"
    assert min_runtime_for_op("L2_POOL_2D", 1) == "1.5.0"
    assert min_runtime_for_op("CONV_2D", 99) is None  # not guessed
    assert min_runtime_for_op("NOT_AN_OP", 1) is None
    assert parse_version("2.14") == (2, 14, 0) < parse_version("2.14.1")


def test_support_names_op_and_version_too_new(mixed):
    m = read_tflite(mixed)
    old = check_runtime_support(m, "1.13")
    bad = [s for s in old if s.supported is False]
    assert bad and all(s.min_runtime and parse_version(s.min_runtime) > (1, 13, 0) for s in bad)
    assert f"{bad[0].op} v{bad[0].version}" in bad[0].reason and "1.13" in bad[0].reason
    assert all(s.supported for s in check_runtime_support(m, "2.14"))


def test_inspect_with_real_profile_and_estimate(mixed):
    r = inspect_model(mixed, "raspberry-pi-4")
    assert r.support and not r.unsupported_ops()
    est = r.estimate
    assert est.precision == "int8" and est.peak_gmacs == 96
    assert est.latency_ms == pytest.approx(r.macs / 96e9 * 1000)
    assert est.energy_mj == pytest.approx(5.4 * est.latency_ms)
    assert est.battery_inferences is None  # a Pi has no battery
    d = r.to_dict()
    json.dumps(d)
    assert d["totals"]["macs"] == r.macs and d["estimate"]["kind"] == "estimate"
    coral = inspect_model(mixed, "coral-usb")
    assert coral.edgetpu is not None and coral.edgetpu.fully_mapped
    assert coral.estimate.latency_ms == pytest.approx(r.macs / (coral.profile.peak_gmacs_int8 * 1e9) * 1000)


def test_estimate_is_compute_bound_only(mixed):
    """No bandwidth term: no profile has a memory bandwidth (the schema rejects the key)."""
    from edgepool.inspect import ESTIMATE_FORMULA
    from edgepool.profiles import resolve

    pi = resolve("raspberry-pi-4")
    est = estimate_model(mixed, pi)  # a DeviceProfile works as well as its name
    d = est.to_dict()
    assert not [k for k in d if "bandwidth" in k or "bytes_moved" in k or k == "memory_ms"]
    assert "bandwidth" not in ESTIMATE_FORMULA and "bytes_moved" not in ESTIMATE_FORMULA
    assert d["formula"] == ESTIMATE_FORMULA and d["profile"] == "raspberry-pi-4"
    assert est.latency_ms == pytest.approx(est.macs / (pi.peak_gmacs_int8 * 1e9) * 1000)
    assert est.memory_bytes == est.activation_bytes + est.weight_bytes


def test_export_folder_means_its_model_file(tmp_path, mixed):
    exp = tmp_path / "exports" / "int8"
    exp.mkdir(parents=True)
    (exp / "model.tflite").write_bytes(mixed.read_bytes())
    (exp / "model.json").write_text(json.dumps({"format": "tflite", "file": "model.tflite"}))
    r = inspect_model(exp, "raspberry-pi-4")
    assert r.path == exp / "model.tflite" and r.macs > 0
    assert estimate_model(exp, "raspberry-pi-4").latency_ms == pytest.approx(r.estimate.latency_ms)


def test_estimate_of_a_core_ml_export_says_tflite_only(tmp_path):
    """Said before anything reads the package (no coremltools needed)."""
    exp = tmp_path / "coreml-fp16"
    (exp / "model.mlpackage" / "Data").mkdir(parents=True)
    (exp / "model.mlpackage" / "Manifest.json").write_text("{}")
    (exp / "model.json").write_text(json.dumps({"format": "coreml", "file": "model.mlpackage"}))
    for path in (exp, exp / "model.mlpackage"):
        with pytest.raises(InputError, match=r"Core ML model.*estimates exist only for \.tflite models") as e:
            estimate_model(path, "iphone-15-pro")
        assert e.value.hint and "\n" not in e.value.message


def test_measured_latency_next_to_estimate(tmp_path, mixed):
    exp = tmp_path / "run" / "exports" / "int8"
    exp.mkdir(parents=True)
    (exp / "model.tflite").write_bytes(mixed.read_bytes())
    bench = tmp_path / "run" / "benchmarks"
    bench.mkdir()
    (bench / "a.json").write_text("{not json")
    from edgepool.bench.protocol import BenchmarkResult, BenchOptions
    from edgepool.bench.runner import results_document

    def result(path, profile, median):  # what `edgepool benchmark` saves
        return BenchmarkResult(name="int8", model_path=str(path), format="tflite", recipe="int8", device="local",
                               profile=profile, model_size_bytes=1, threads=1, delegates=[], input_mode="random",
                               latency_ms={"median": median})

    other = tmp_path / "elsewhere.tflite"
    doc = results_document([result(other, None, 9.0), result(exp / "model.tflite", None, 2.0)], BenchOptions())
    (bench / "b.json").write_text(json.dumps(doc))
    est = estimate_model(exp / "model.tflite", "host-cpu")
    assert est.measured_latency_ms == 2.0 and est.measured_source.endswith("b.json")
    assert est.achieved_fraction_of_peak == pytest.approx(est.macs / 0.002 / (est.peak_gmacs * 1e9))
    # measured on this machine, not on a Raspberry Pi: never shown next to the Pi's estimate
    assert estimate_model(exp / "model.tflite", "raspberry-pi-4").measured_latency_ms is None


def _save_measurement(run: Path, model: Path, median_ms: float, name: str = "c.json") -> None:
    """What `edgepool benchmark` saves for `model` measured on this machine (host-cpu)."""
    from edgepool.bench.protocol import BenchmarkResult, BenchOptions
    from edgepool.bench.runner import results_document

    res = BenchmarkResult(name="int8", model_path=str(model), format="tflite", recipe="int8", device="local",
                          profile=None, model_size_bytes=1, threads=1, delegates=[], input_mode="random",
                          latency_ms={"median": median_ms})
    (run / "benchmarks").mkdir(exist_ok=True)
    (run / "benchmarks" / name).write_text(json.dumps(results_document([res], BenchOptions())))


def test_measurement_faster_than_the_roofline_is_flagged(tmp_path, mixed):
    """An estimate the measurement beats is wrong: efficiency (estimate / measured latency = share of the
    peak achieved) above 1 is flagged with a note naming both times; a slower one is a plain % of peak."""
    from rich.console import Console

    from edgepool.cli._render import render_estimate
    from edgepool.profiles import resolve

    exp = tmp_path / "run" / "exports" / "int8"
    exp.mkdir(parents=True)
    model = exp / "model.tflite"
    model.write_bytes(mixed.read_bytes())
    host = resolve("host-cpu")
    roofline = estimate_model(model, host)
    assert roofline.efficiency is None and roofline.faster_than_roofline is False
    assert roofline.peak_source == host.sources["peak_gmacs_int8"]  # how the peak was obtained, shown with it

    _save_measurement(tmp_path / "run", model, roofline.latency_ms / 2)  # twice as fast as physically possible
    est = estimate_model(model, host)
    assert est.measured_latency_ms == pytest.approx(roofline.latency_ms / 2)
    assert est.efficiency == pytest.approx(2.0) and est.faster_than_roofline
    (note,) = [n for n in est.notes if "roofline" in n]
    assert re.fullmatch(r"measured [\d.]+ (µs|ms) is faster than the [\d.]+ (µs|ms) roofline: "
                        r"the profile's peak is too low", note), note
    d = est.to_dict()
    assert d["efficiency"] == pytest.approx(2.0) and d["faster_than_roofline"] is True
    assert d["peak_source"] == host.sources["peak_gmacs_int8"]
    out = io.StringIO()
    render_estimate(Console(file=out, width=300, highlight=False), est)
    text = out.getvalue()
    assert "200.0% of peak" in text and "faster than the" in text and host.sources["peak_gmacs_int8"][:40] in text

    _save_measurement(tmp_path / "run", model, roofline.latency_ms * 4, name="d.json")  # newer: 25% of peak
    os.utime(tmp_path / "run" / "benchmarks" / "d.json", (2e9, 2e9))
    slow = estimate_model(model, host)
    assert slow.efficiency == pytest.approx(0.25) and not slow.faster_than_roofline
    assert not [n for n in slow.notes if "roofline" in n]
    out = io.StringIO()
    render_estimate(Console(file=out, width=300, highlight=False), slow)
    assert "25.0% of peak" in out.getvalue() and "faster than" not in out.getvalue()


def test_edgepool_metadata_and_custom_op_reported(tmp_path, mixed):
    """Re-serialize a real model with an `edgepool` metadata entry and a custom op code."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(mixed.read_bytes(), 0)
    buf = s.BufferT()
    buf.data = np.frombuffer(json.dumps({"format": "tflite", "recipe": "int8"}).encode(), dtype=np.uint8)
    model.buffers.append(buf)
    md = s.MetadataT()
    md.name = "edgepool"
    md.buffer = len(model.buffers) - 1
    model.metadata.append(md)
    model.operatorCodes[0].builtinCode = s.BuiltinOperator.CUSTOM
    model.operatorCodes[0].deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
    model.operatorCodes[0].customCode = "MyPool"
    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    p = tmp_path / "custom.tflite"
    p.write_bytes(bytes(b.Output()))
    m = read_tflite(p)
    assert m.edgepool_metadata == {"format": "tflite", "recipe": "int8"}
    assert m.main.ops[0].name == "CUSTOM:MyPool"
    sup = check_runtime_support(m, "2.14")
    assert sup[0].supported is False and "MyPool" in sup[0].reason


@pytest.mark.parametrize("data,match", [
    (b"", "only 0 bytes"),
    (b"hello world, not a model", "not a TFLite flatbuffer"),
    (b"\x00" * 4 + b"TFL3" + b"\xff" * 8, "corrupt"),
])
def test_bad_input_is_input_error(data, match):
    with pytest.raises(InputError, match=match):
        read_tflite(data)


@pytest.mark.parametrize("keep", ["4", "12", "100", "half", "all-but-1"])
def test_truncated_model_is_input_error(mixed, tmp_path, keep):
    """Every truncation is rejected with InputError naming the file: accepting the bytes fails the test."""
    data = mixed.read_bytes()
    cut = {"half": len(data) // 2, "all-but-1": len(data) - 1}.get(keep) or int(keep)
    with pytest.raises(InputError, match="truncated|corrupt|not a TFLite") as from_bytes:
        read_tflite(data[:cut])
    assert from_bytes.value.hint
    path = tmp_path / "cut.tflite"
    path.write_bytes(data[:cut])
    with pytest.raises(InputError, match="truncated|corrupt|not a TFLite") as from_file:
        read_tflite(path)
    assert str(path) in from_file.value.message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_tflite(tmp_path / "nope.tflite")
    with pytest.raises(InputError, match="does not exist"):
        inspect_model(tmp_path / "nope.tflite")
    with pytest.raises(InputError) as e:  # a folder with no model in it, named in the message
        inspect_model(tmp_path)
    assert str(tmp_path) in e.value.message


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_reader_returns_or_raises_input_error(mixed, data):
    raw = bytearray(mixed.read_bytes())
    n = data.draw(st.integers(1, 24))
    for _ in range(n):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    try:
        m = read_tflite(bytes(raw))
    except InputError:
        return
    # a result must also survive the rest of the pipeline
    plan_arena(m.main)
    check_runtime_support(m, "2.14")


def test_import_does_not_load_tensorflow(mixed):
    code = ("import sys; from edgepool.inspect import inspect_model; import edgepool.cli.inspect, edgepool.cli.estimate; "
            f"inspect_model({str(mixed)!r}); print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

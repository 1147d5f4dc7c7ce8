"""Edge TPU compatibility rules on real int8 graphs, compiler-log parsing, and the compiler-missing path."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from edgepool.export.edgetpu import (
    INSTALL_HINT,
    compare_with_prediction,
    compile_for_edgetpu,
    parse_compiler_log,
)
from edgepool.inspect.edgetpu import analyze_edgetpu
from tests._inspect_models import convert, randomize

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "edgetpu"


def test_fully_int8_model_is_fully_mapped(tflite_models):  # noqa: F811
    a = analyze_edgetpu(tflite_models.path("mixed"))
    assert a.fully_mapped and a.cpu_ops == 0 and a.first_cpu_op is None
    assert a.to_dict()["split"].startswith("all 8 ops on the Edge TPU")


def test_fused_activation_pool_goes_to_cpu_with_everything_after(tflite_models):  # noqa: F811
    a = analyze_edgetpu(tflite_models.path("fused-pool"))
    names = [o.name for o in a.ops]
    i = names.index("MAX_POOL_2D")
    assert a.first_cpu_op == i
    assert "fused RELU" in a.ops[i].reason and "strided" in a.ops[i].suggestion
    assert all(o.on_tpu for o in a.ops[:i]) and not any(o.on_tpu for o in a.ops[i:])
    assert "one partition" in a.ops[i + 1].reason


def test_float_op_in_the_middle_and_l2_pool_suggestion(tflite_models):  # noqa: F811
    a = analyze_edgetpu(tflite_models.path("l2-fallback"))
    assert a.ops[0].name == "QUANTIZE" and not a.ops[0].on_tpu and "input" in a.ops[0].reason
    assert a.ops[1].name == "CONV_2D" and a.ops[1].on_tpu  # boundary QUANTIZE does not end the partition
    first = a.ops[a.first_cpu_op]
    assert first.name == "DEQUANTIZE" and "SQUARE" in first.reason  # float island: no int8 SQUARE/SQRT
    assert "`avg`" in first.suggestion
    sq = next(o for o in a.ops if o.name == "SQRT")
    assert "not in the Edge TPU's supported operations" in sq.reason
    assert "`max`" in sq.suggestion and "`strided`" in sq.suggestion
    assert not a.fully_mapped and a.mapped_ops == 1


def test_mean_over_channels_batch_and_dynamic_shapes(tflite_models):  # noqa: F811
    mean = analyze_edgetpu(tflite_models.path("mean-channels"))
    op = next(o for o in mean.ops if o.name == "MEAN")
    assert not op.on_tpu and "x and/or y" in op.reason
    batch = analyze_edgetpu(tflite_models.path("batch2"))
    assert batch.mapped_ops == 0 and "3 non-1 innermost" in batch.ops[0].reason
    dyn = analyze_edgetpu(tflite_models.path("dynamic"))
    assert dyn.mapped_ops == 0 and "dynamic shape" in dyn.ops[0].reason


def test_float_model_runs_on_cpu(tflite_models):  # noqa: F811
    a = analyze_edgetpu(tflite_models.path("mixed-float"))
    assert a.mapped_ops == 0 and "FLOAT32" in a.ops[0].reason and "int8" in a.ops[0].suggestion


def test_parse_partial_log_and_compare():
    log = parse_compiler_log((FIXTURES / "partial_l2pool.log").read_text())
    assert log.compiler_version == "16.0.384591198"
    assert (log.tpu_ops, log.cpu_ops, log.total_ops, log.edgetpu_subgraphs) == (4, 7, 11, 1)
    assert len(log.rows) == 11 and log.rows[4].op == "SQRT" and log.rows[4].status == "Operation not supported"
    assert log.op_counts()["CONV_2D"] == {"tpu": 1, "cpu": 1}


def test_parse_full_and_float_logs():
    full = parse_compiler_log((FIXTURES / "full_map.log").read_text())
    assert full.rows == [] and full.tpu_ops is None and full.total_ops == 9
    ops = parse_compiler_log((FIXTURES / "full_map_ops.log").read_text())
    assert (ops.tpu_ops, ops.cpu_ops) == (9, 0)  # counted from the table
    flt = parse_compiler_log((FIXTURES / "float_fallback.log").read_text())
    assert (flt.tpu_ops, flt.cpu_ops) == (0, 5)
    assert all(r.status == "Operation is working on an unsupported data type" for r in flt.rows)


def test_prediction_vs_recorded_log(tflite_models):  # noqa: F811
    a = analyze_edgetpu(tflite_models.path("mixed"))
    log = parse_compiler_log((FIXTURES / "full_map_ops.log").read_text())
    # the recorded log has a SOFTMAX and one more CONV_2D than this model: reported, op by op
    diffs = compare_with_prediction(log, a)
    assert any(d.startswith("SOFTMAX") for d in diffs) and any("compiler maps 9" in d for d in diffs)
    partial = parse_compiler_log((FIXTURES / "float_fallback.log").read_text())
    assert compare_with_prediction(partial, analyze_edgetpu(tflite_models.path("mixed-float")))  # 5 vs 8 ops


def test_compiler_missing(tmp_path, tflite_models, monkeypatch):  # noqa: F811
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    r = compile_for_edgetpu(tflite_models.path("mixed"), tmp_path / "out")
    assert not r.compiled and r.edgetpu_path is None and r.log is None
    assert r.message.startswith("not compiled for Edge TPU") and r.install_hint == INSTALL_HINT
    assert r.prediction.fully_mapped
    assert not (tmp_path / "out" / "model_edgetpu.tflite").exists()
    assert r.to_dict()["matches_prediction"] is None


@pytest.mark.skipif(sys.platform == "win32", reason="shell script stand-in")
def test_compiler_run_plumbing_with_stand_in_executable(tmp_path, tflite_models):  # noqa: F811
    """The subprocess/log/output plumbing, driven by a stand-in executable that replays a recorded log.

    This checks edgepool's handling of the compiler's files and output, not the compiler itself.
    """
    src = tmp_path / "in" / "model.tflite"
    src.parent.mkdir()
    src.write_bytes(tflite_models.path("mixed").read_bytes())
    exe = tmp_path / "edgetpu_compiler"
    exe.write_text(f"""#!/bin/sh
out="$3"; model="$4"
cp "$model" "$out/model_edgetpu.tflite"
cat {FIXTURES / 'full_map_ops.log'}
""")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    r = compile_for_edgetpu(src, tmp_path / "out", compiler=str(exe))
    assert r.compiled and r.edgetpu_path == tmp_path / "out" / "model_edgetpu.tflite" and r.edgetpu_path.exists()
    assert r.log_path.read_text().startswith("Edge TPU Compiler version")
    assert r.log.tpu_ops == 9 and r.mismatches and r.matches_prediction is False
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("preset_name", ["tiny", "small", "small-ds", "small-gap"])
def test_zoo_preset_partitions(tmp_path, preset_name):
    """Every zoo preset: max/avg/strided pooling stay fully on the Edge TPU; l2 is cut at its SQRT."""
    from edgepool.models import build_model, preset

    for pool in ("max", "avg", "strided", "l2"):
        model = build_model(preset(preset_name).with_pool(pool), (16, 16, 1), 10, seed=0)
        randomize(model)
        a = analyze_edgetpu(convert(model, "fallback" if pool == "l2" else "int8"))
        if pool == "l2":
            assert not a.fully_mapped
            first = a.ops[a.first_cpu_op]
            assert first.name == "DEQUANTIZE" and "SQUARE" in first.reason and "`max`" in first.suggestion
            assert all(o.on_tpu for o in a.ops[: a.first_cpu_op] if o.name != "QUANTIZE")
        else:
            assert a.fully_mapped, (preset_name, pool, [o.to_dict() for o in a.ops if not o.on_tpu])

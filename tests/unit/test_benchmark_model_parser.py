"""edgepool.bench.benchmark_model: LiteRT / TFLite `benchmark_model` output -> the agent's result fields.

The fixtures (tests/fixtures/benchmark_model/, see its README) are written from the tool's source format
strings, not captured: no benchmark_model binary runs on this machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edgepool.bench import benchmark_model as bm
from edgepool.bench.protocol import BenchmarkResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmark_model"
MIB = 1024 * 1024


def parse(name: str) -> dict:
    return bm.parse_benchmark_model((FIXTURES / name).read_text())


def test_classic_linux_output_without_percentiles() -> None:
    r = parse("classic_linux_xnnpack.txt")
    assert r["output_format"] == "classic" and not r["failed"] and r["errors"] == []
    assert r["init_ms"] == pytest.approx(4.213)
    assert r["first_inference_ms"] == pytest.approx(1.021)
    assert r["warmup"] == {"runs": 1183, "seconds": None, "first_ms": pytest.approx(1.021), "mean_ms": pytest.approx(0.422611)}
    lat = r["latency_ms"]
    assert lat["mean"] == pytest.approx(0.419934) and lat["std"] == pytest.approx(0.019)
    assert lat["min"] == pytest.approx(0.396) and lat["max"] == pytest.approx(1.287)
    assert lat["median"] is None and lat["p90"] is None and lat["p99"] is None  # this release prints no percentiles
    assert r["runs"] == 11907
    assert r["model_size_bytes"] == 69632
    assert r["memory"]["init_footprint_delta_bytes"] == round(3.46094 * MIB)
    assert r["memory"]["overall_footprint_delta_bytes"] == round(4.08594 * MIB)
    assert r["memory"]["peak_rss_bytes"] is None  # no periodic monitoring in this run
    assert "footprint delta" in r["memory"]["source"]
    assert r["delegation"] == [{"delegate": "TfLiteXNNPackDelegate", "nodes": 12, "total_nodes": 14, "partitions": 3,
                                "subgraph": 0, "subgraph_name": None}]
    assert r["delegate_coverage"] == {"TfLiteXNNPackDelegate": pytest.approx(12 / 14)}
    assert r["delegates_applied"] == [{"delegate": "XNNPACK", "execution": "partial", "kernels": 2}]
    assert r["params"]["num_threads"] == 4 and r["params"]["num_runs"] == 250 and r["params"]["warmup_min_secs"] == 0.5
    assert any("no percentiles" in n for n in r["notes"])


def test_litert_android_output_with_percentiles_and_peak_memory() -> None:
    r = parse("litert_android_gpu_percentiles.txt")
    assert r["output_format"] == "classic"
    lat = r["latency_ms"]
    assert (lat["p5"], lat["median"], lat["p95"]) == (pytest.approx(0.274), pytest.approx(0.284), pytest.approx(0.322))
    assert lat["mean"] == pytest.approx(0.290227) and lat["first"] == pytest.approx(0.288) and lat["last"] == pytest.approx(0.281)
    assert r["runs"] == 17226 and r["warmup"]["runs"] == 1705
    assert r["init_ms"] == pytest.approx(612.447)
    assert r["memory"]["peak_rss_bytes"] == round(58.2969 * MIB)
    assert r["memory"]["vm_rss_bytes"] == 57 * MIB
    assert r["delegation"][0]["subgraph_name"] == "main"  # "... for subgraph 0 (main)." on stderr, VERBOSE
    assert r["delegate_coverage"] == {"TfLiteGpuDelegateV2": 1.0}
    assert r["delegates_applied"] == [{"delegate": "GPU", "execution": "complete", "kernels": None}]
    assert r["params"]["use_gpu"] == 1 and r["params"]["report_peak_memory_footprint"] == 1


def test_old_release_formats() -> None:
    """No INFO prefix, `count=1 curr=N`, e-notation, `Replacing N node(s)` without a total, the old memory line."""
    r = parse("old_release_nnapi_peak_memory.txt")
    assert r["output_format"] == "classic" and not r["failed"]
    assert r["warmup"]["runs"] == 1
    assert r["warmup"]["mean_ms"] == pytest.approx(11403.859)  # from count=1 curr=11403859, not the rounded 1.14039e+07
    assert r["first_inference_ms"] == pytest.approx(11403.859)
    assert r["latency_ms"]["mean"] == pytest.approx(3.75687) and r["runs"] == 260
    assert r["memory"]["init_footprint_delta_bytes"] == 0
    assert r["memory"]["overall_footprint_delta_bytes"] == round(15.3438 * MIB)
    assert "older releases" in r["memory"]["source"]
    assert r["delegation"][0] == {"delegate": "TfLiteNnapiDelegate", "nodes": 31, "total_nodes": None, "partitions": 1,
                                  "subgraph": None, "subgraph_name": None}
    assert r["delegate_coverage"] == {}  # no total printed: coverage unknown, not guessed
    assert r["delegates_applied"][0]["execution"] == "complete"
    assert r["model_size_bytes"] == 4276350


def test_litert_tools_millisecond_block() -> None:
    r = parse("litert_tools_ms.txt")
    assert r["output_format"] == "litert"
    assert r["init_ms"] == pytest.approx(45.32)
    assert r["first_inference_ms"] == pytest.approx(120.45)
    assert r["warmup"]["runs"] == 6 and r["warmup"]["mean_ms"] == pytest.approx(98.7602)
    assert r["latency_ms"]["median"] == pytest.approx(84.87)  # the count= line has more than the block
    assert r["runs"] == 50
    assert r["throughput_mb_s"] == pytest.approx(12.45)
    assert r["memory"]["init_footprint_delta_bytes"] == round(25.60 * MIB)
    assert r["memory"]["peak_rss_bytes"] == round(35.20 * MIB)


def test_litert_block_alone_is_enough() -> None:
    text = "\n".join(line for line in (FIXTURES / "litert_tools_ms.txt").read_text().splitlines() if "count=" not in line)
    r = bm.parse_benchmark_model(text)
    assert r["output_format"] == "litert"
    lat = r["latency_ms"]
    assert lat["mean"] == pytest.approx(85.23) and lat["min"] == pytest.approx(82.10)
    assert lat["max"] == pytest.approx(92.45) and lat["std"] == pytest.approx(3.21)
    assert lat["median"] is None and r["runs"] == 50


def test_failed_run() -> None:
    r = parse("failed_op_version.txt")
    assert r["failed"] and r["output_format"] is None and r["latency_ms"] is None
    assert r["errors"][0].startswith("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'")
    assert "Benchmarking failed." in r["errors"]


def test_empty_output_is_a_failure() -> None:
    r = bm.parse_benchmark_model("")
    assert r["failed"] and r["errors"] == ["no benchmark results in the output"]


def test_logcat_lines_are_read_too() -> None:
    """`adb logcat` shows the same text behind `07-08 15:40:34.291 I/tflite  ( 6794): `."""
    text = "\n".join([
        "07-08 15:40:34.291 I/tflite  ( 6794): Replacing 792 out of 836 node(s) with delegate (TfLiteXNNPackDelegate) "
        "node, yielding 21 partitions for subgraph 0.",
        "07-08 15:40:34.401 I/tflite  ( 6794): Initialized session in 125.518ms.",
        "07-08 15:40:34.429 I/tflite  ( 6794): Running benchmark for at least 1 iterations and at least 0.5 seconds "
        "but terminate if exceeding 150 seconds.",
        "07-08 15:40:35.092 I/tflite  ( 6794): count=2 first=344846 curr=313209 min=313209 max=344846 avg=329028 "
        "std=15818 p5=313209 median=344846 p95=344846",
        "07-08 15:40:35.092 I/tflite  ( 6794): Running benchmark for at least 10 iterations and at least 1 seconds "
        "but terminate if exceeding 150 seconds.",
        "07-08 15:40:38.060 I/tflite  ( 6794): count=10 first=307053 curr=281739 min=281739 max=331407 avg=295775 "
        "std=16924 p5=281739 median=286332 p95=331407",
        "07-08 15:40:38.060 I/tflite  ( 6794): Inference timings in us: Init: 125518, First inference: 344846, "
        "Warmup (avg): 329028, Inference (avg): 295775",
        "07-08 15:40:38.060 E/tflite  ( 6794): something odd",
    ])
    r = bm.parse_benchmark_model(text)
    assert r["latency_ms"]["median"] == pytest.approx(286.332) and r["runs"] == 10
    assert r["delegate_coverage"] == {"TfLiteXNNPackDelegate": pytest.approx(792 / 836)}
    assert r["errors"] == ["something odd"]


def test_all_same_and_op_profiling_lines() -> None:
    text = "\n".join([
        "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.",
        "INFO: count=5 curr=120(all same) p5=120 median=120 p95=120",
        "",
        "INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.",
        "INFO: count=50 first=101 curr=99 min=97 max=130 avg=100.5 std=4 p5=98 median=100 p95=110",
        "INFO: Inference timings in us: Init: 900, First inference: 120, Warmup (avg): 120, Inference (avg): 100.5",
        "Operator-wise Profiling Info for Regular Benchmark Runs:",
        "Timings (microseconds): count=50 first=80 curr=79 min=77 max=90 avg=80.1 std=2",
        "Memory (bytes): count=0",
    ])
    r = bm.parse_benchmark_model(text)
    assert r["warmup"] == {"runs": 5, "seconds": None, "first_ms": pytest.approx(0.12), "mean_ms": pytest.approx(0.12)}
    assert r["latency_ms"]["mean"] == pytest.approx(0.1005) and r["latency_ms"]["max"] == pytest.approx(0.13)
    assert r["runs"] == 50  # op profiling's "Timings (microseconds): count=" is not the timed phase


def test_only_the_warmup_finished() -> None:
    text = ("INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.\n"
            "INFO: count=3 first=500 curr=400 min=400 max=500 avg=433.3 std=47\n"
            "ERROR: Failed to invoke the interpreter\nERROR: Benchmarking failed.\n")
    r = bm.parse_benchmark_model(text)
    assert r["failed"] and r["latency_ms"] is None and r["warmup"]["runs"] == 3


def test_result_fields_fit_benchmark_result() -> None:
    """The fields the agent's result holds come back under the same names, so BenchmarkResult.apply_result takes them."""
    r = parse("litert_android_gpu_percentiles.txt")
    res = BenchmarkResult(name="m", model_path="m.tflite", format="tflite", recipe=None, device="adb://X", profile=None,
                          model_size_bytes=1, threads=4, delegates=["gpu"], input_mode="random")
    res.apply_result({**r, "runtime": "benchmark_model", "windows_requested": 0, "stopped": None})
    assert res.init_ms == pytest.approx(612.447) and res.first_inference_ms == pytest.approx(5.12)
    assert res.peak_rss_bytes == round(58.2969 * MIB) and res.complete


def test_command_line_and_delegate_flags() -> None:
    args = bm.command_line("/data/local/tmp/x/benchmark_model", "/data/local/tmp/x/m.tflite", threads=4,
                           delegates=["xnnpack", "gpu", "cpu"], warmup_runs=1, warmup_min_seconds=0.5, runs=250,
                           min_seconds=5.0, max_seconds=150.0, run_delay_s=0.01)
    assert args == ["/data/local/tmp/x/benchmark_model", "--graph=/data/local/tmp/x/m.tflite", "--num_threads=4",
                    "--warmup_runs=1", "--warmup_min_secs=0.5", "--num_runs=250", "--min_secs=5", "--max_secs=150",
                    "--run_delay=0.01", "--use_xnnpack=true", "--use_gpu=true"]
    assert bm.delegate_flags(["nnapi", "NNAPI"]) == ["--use_nnapi=true"]
    with pytest.raises(ValueError):
        bm.delegate_flags(["edgetpu"])

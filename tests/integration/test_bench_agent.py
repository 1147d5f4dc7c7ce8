"""The agent in a real child process: ai_edge_litert and a separate tflite-runtime 2.14 + numpy<2 venv,
accuracy on the device with real samples, broken files, missing delegates, bad shapes, NaN outputs,
and interruption (SIGINT, SIGKILL, host Ctrl-C, max duration) keeping finished windows."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from edgepool.bench.protocol import BenchOptions, build_request
from edgepool.bench.runner import benchmark, model_size_bytes, resolve_targets, save_results
from edgepool.bench.transports.local import LocalTransport
from edgepool.errors import DeviceError, InputError, ModelError
from edgepool.types import ProgressEvent
from tests._bench_models import broken_corpus, cached_digits_run, edgetpu_like, nan_model_tflite, write_export

pytestmark = pytest.mark.slow

FAST = dict(warmup_runs=1, warmup_min_seconds=0.05, runs=20, min_seconds=0.05, windows=2)


@pytest.fixture(scope="module")
def digits():
    return cached_digits_run()


def reference_accuracy(export: Path, test_npz: Path) -> float:
    """Accuracy computed here, in-process, with the sidecar's recipe for preparing inputs."""
    from ai_edge_litert.interpreter import Interpreter

    side = json.loads((export / "model.json").read_text())
    it = Interpreter(model_content=(export / "model.tflite").read_bytes())
    it.allocate_tensors()
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    with np.load(test_npz) as z:
        x, y = z["x"], z["y"]
    xf = x.astype(np.float32) * np.float32(side["normalization"]["scale"]) + np.float32(side["normalization"]["offset"])
    if side["input"]["dtype"] == "int8":
        xf = np.clip(np.round(xf / side["input"]["scale"] + side["input"]["zero_point"]), -128, 127).astype(np.int8)
    correct = 0
    for i in range(len(x)):
        it.set_tensor(d["index"], xf[i : i + 1])
        it.invoke()
        correct += int(np.argmax(it.get_tensor(o["index"])) == y[i])
    return correct / len(x)


def test_run_directory_benchmarks_every_export_with_device_accuracy(digits):
    results = benchmark([digits.path], BenchOptions(**FAST))
    assert [r.name for r in results] == ["float32", "int8"]
    for r, export in zip(results, (digits.float_export, digits.int8_export), strict=True):
        assert r.complete and r.stopped is None and r.error is None
        assert r.runtime == "ai_edge_litert" and r.input_mode == "samples"
        assert len(r.windows) == 2 and all(w.runs >= 20 for w in r.windows)
        assert r.runs == sum(w.runs for w in r.windows) == r.latencies_ms.size
        lat = r.latency_ms
        assert 0 < lat["min"] <= lat["median"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert r.fps_median == pytest.approx(1000 / lat["median"]) and r.fps_mean == pytest.approx(1000 / lat["mean"])
        assert r.accuracy_samples == digits.n_test
        assert r.accuracy == pytest.approx(reference_accuracy(export, digits.path / "data" / "test.npz"))
        assert r.nonfinite_outputs == 0
        assert r.peak_rss_bytes > r.memory["baseline_rss_bytes"] > 0
        assert r.model_size_bytes == export.joinpath("model.tflite").stat().st_size
        env = r.environment
        assert env["cpu_count"] == os.cpu_count() and env["runtime_version"] and env["numpy"] == np.__version__
        assert env["load_average"] is not None and env["cpu_model"]
    # the float model's accuracy is the Keras model's own
    assert results[0].accuracy == pytest.approx(digits.keras_accuracy, abs=1.5 / digits.n_test)
    # int8 loses little
    assert results[1].accuracy >= digits.keras_accuracy - 0.05


def test_results_saved_in_the_run(digits, tmp_path):
    results = benchmark([digits.int8_export], BenchOptions(**FAST, threads=2, affinity=[0]))
    assert results[0].environment["affinity"] == [0]  # pinned to the chosen core
    (path,) = save_results(results, BenchOptions(**FAST))
    assert path.parent == digits.path / "benchmarks" and path.suffix == ".json"
    doc = json.loads(path.read_text())
    (m,) = doc["results"]
    assert set(m["latency_ms"]) == {"median", "p90", "p95", "p99", "mean", "std", "min", "max"}
    assert "fps" not in m
    for key in ("fps_median", "fps_mean", "peak_rss_bytes", "accuracy", "environment", "windows", "threads", "init_ms"):
        assert m[key] is not None, key
    assert m["threads"] == 2 and len(m["windows"]) == 2 and doc["interrupted"] is False
    (again,) = save_results(results, BenchOptions(**FAST))
    assert again != path  # never overwrites an earlier benchmark
    with pytest.raises(DeviceError, match="cannot pin to cores"):
        benchmark([digits.int8_export], BenchOptions(**FAST, affinity=[4096]))


def test_agent_under_tflite_runtime_214_with_numpy_1(digits, tflite_runtime_py):
    opts = BenchOptions(**FAST, python=str(tflite_runtime_py), runtime="tflite_runtime")
    (r,) = benchmark([digits.int8_export], opts)
    assert r.complete and r.runtime == "tflite_runtime" and r.runtime_version == "2.14.0"
    assert r.environment["numpy"].startswith("1.")
    assert r.accuracy == pytest.approx(reference_accuracy(digits.int8_export, digits.path / "data/test.npz"), abs=0.01)
    (rf,) = benchmark([digits.float_export], opts.__class__(**{**vars(opts), "inputs": "random"}))
    assert rf.complete and rf.input_mode == "random" and rf.accuracy is None


def test_broken_files_each_give_one_clear_input_error(digits, tmp_path):
    corpus = broken_corpus((digits.int8_export / "model.tflite").read_bytes(), tmp_path)
    for name, path in corpus.items():
        with pytest.raises(ModelError) as e:
            benchmark([path], BenchOptions(**FAST))
        msg = str(e.value)
        assert e.value.exit_code == 2, name
        assert "\n" not in msg and path.stem in msg, (name, msg)
        assert "empty" in msg or "not a valid TFLite model" in msg, (name, msg)


def test_edgetpu_model_without_its_delegate_is_a_device_error(digits, tmp_path):
    p = tmp_path / "model_edgetpu.tflite"
    p.write_bytes(edgetpu_like((digits.int8_export / "model.tflite").read_bytes()))
    with pytest.raises(DeviceError) as e:  # asks for libedgetpu.so.1, which this machine lacks
        benchmark([p], BenchOptions(**FAST))
    assert e.value.exit_code == 3 and "libedgetpu" in str(e.value)
    plain = tmp_path / "renamed.tflite"  # same graph, no hint that it needs the Edge TPU
    plain.write_bytes(p.read_bytes())
    with pytest.raises(DeviceError) as e:
        benchmark([plain], BenchOptions(**FAST))
    assert "edgetpu-custom-op" in str(e.value)


def test_shape_the_model_cannot_take(digits, tmp_path):
    req = build_request(digits.float_export / "model.tflite", BenchOptions(**FAST), 1, [],
                        {"mode": "random", "seed": 0, "input_shape": [1, 8, 8, 3]})
    run = LocalTransport().run(req)
    assert run.returncode == 2 and run.error["kind"] == "input"
    assert "cannot take input shape [1, 8, 8, 3]" in run.error["message"]
    # test samples of another size than the model input
    run_dir = tmp_path / "run"
    (run_dir / "data").mkdir(parents=True)
    np.savez(run_dir / "data" / "test.npz", x=np.zeros((4, 28, 28, 1), np.uint8), y=np.zeros(4, np.int64))
    (run_dir / "manifest.json").write_text("{}")
    exp = run_dir / "exports" / "float32"
    exp.mkdir(parents=True)
    for f in ("model.tflite", "model.json"):
        (exp / f).write_bytes((digits.float_export / f).read_bytes())
    with pytest.raises(InputError, match=r"test samples have shape \[28, 28, 1\]"):
        benchmark([exp], BenchOptions(**FAST, inputs="samples"))


def test_nan_outputs_are_detected(tmp_path):
    p = tmp_path / "nan.tflite"
    p.write_bytes(nan_model_tflite())
    (r,) = benchmark([p], BenchOptions(**FAST))
    assert r.complete and r.nonfinite_outputs and r.nonfinite_outputs > 0


def _pid_from(events):
    return next(e["pid"] for e in events if e.get("event") == "hello")


def test_sigint_to_agent_keeps_finished_windows(digits):
    req = build_request(digits.int8_export / "model.tflite",
                        BenchOptions(**{**FAST, "windows": 50, "min_seconds": 0.1}), 1, [], {"mode": "random"})
    events = []

    def on_event(ev):
        events.append(ev)
        if ev.get("event") == "window" and ev["index"] == 1:
            os.kill(_pid_from(events), signal.SIGINT)

    run = LocalTransport().run(req, on_event)
    assert run.result is not None and run.result["stopped"] == "interrupted"
    assert 2 <= len(run.windows) < 50 and run.result["windows_finished"] == len(run.windows)


def test_crash_keeps_finished_windows(digits):
    events = []

    def progress(ev):
        events.append(ev.data)
        if ev.data.get("event") == "window" and ev.data["index"] == 1:
            os.kill(_pid_from(events), signal.SIGKILL)

    (r,) = benchmark([digits.int8_export], BenchOptions(**{**FAST, "windows": 50, "min_seconds": 0.1}), progress)
    assert r.stopped == "crashed: SIGKILL" and not r.complete
    assert len(r.windows) == 2 and r.latency_ms["median"] > 0
    assert r.runtime == "ai_edge_litert" and r.init_ms is not None


def test_host_ctrl_c_forwards_to_agent_and_keeps_windows(digits):
    """A KeyboardInterrupt in the CLI process (Ctrl-C) stops the agent cleanly and skips later models."""

    def progress(ev):
        if ev.data.get("event") == "window" and ev.data["index"] == 0 and ev.message == "float32":
            raise KeyboardInterrupt

    results = benchmark([digits.path], BenchOptions(**{**FAST, "windows": 50, "min_seconds": 0.1}), progress)
    assert [r.name for r in results] == ["float32"]  # int8 never started
    (r,) = results
    assert r.interrupted and not r.complete and 1 <= len(r.windows) < 50
    assert r.environment is not None  # the agent still sent its result


def test_max_duration_reports_finished_windows(digits):
    (r,) = benchmark([digits.int8_export],
                     BenchOptions(**{**FAST, "windows": 50, "min_seconds": 0.1, "max_seconds": 0.35}))
    assert r.stopped == "max_seconds" and not r.complete
    assert 2 <= len(r.windows) <= 3 and not any(w.partial for w in r.windows)


def test_export_resolution(digits, tmp_path):
    ts = resolve_targets([digits.path, digits.int8_export / "model.tflite"])
    assert [t.name for t in ts] == ["float32", "run/int8", "run/int8"]  # clashing names get their run's name
    assert all(t.run_dir == digits.path for t in ts)
    with pytest.raises(InputError):
        resolve_targets([tmp_path / "missing"])
    with pytest.raises(InputError):
        resolve_targets([tmp_path])  # an empty folder is neither a run nor an export


def test_progress_events(digits):
    """ProgressEvent(stage="benchmark", message=<model>, done/total in windows, data=<the agent's event>)."""
    events: list[ProgressEvent] = []
    (r,) = benchmark([digits.int8_export], BenchOptions(**FAST), events.append)
    assert all(isinstance(e, ProgressEvent) and e.stage == "benchmark" and e.message == "int8" and e.total == 2
               for e in events)
    kinds = [e.data["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and {"hello", "init", "progress"} <= set(kinds)
    windows = [e for e in events if e.data["event"] == "window"]
    assert [e.done for e in windows] == [1, 2] and [e.data["index"] for e in windows] == [0, 1]
    assert all(e.data["model"] == "int8" and e.data["windows_total"] == 2 for e in events[:-1])
    assert events[-1].done == 2 and events[-1].data["result"] is r


def _run_with_core_ml_export(run: Path, tmp_path: Path) -> tuple[Path, Path, int]:
    """A copy of `run` with a Core ML export beside its .tflite ones; returns (run, export, package bytes)."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("benchmarks"))
    exp = copy / "exports" / "coreml-fp16"
    data = exp / "model.mlpackage" / "Data" / "com.apple.CoreML"
    (data / "weights").mkdir(parents=True)
    files = {exp / "model.mlpackage" / "Manifest.json": b"{}" * 300, data / "model.mlmodel": b"\0" * 5000,
             data / "weights" / "weight.bin": b"\1" * 20000}
    for f, content in files.items():
        f.write_bytes(content)
    (exp / "model.json").write_text(json.dumps({"schema_version": 1, "format": "coreml", "file": "model.mlpackage",
                                                "recipe": "coreml-fp16", "profile": "iphone-15-pro"}))
    return copy, exp, sum(len(c) for c in files.values())


def test_run_with_a_core_ml_export_skips_it_and_measures_the_rest(digits, tmp_path):
    run, exp, package_bytes = _run_with_core_ml_export(digits.path, tmp_path)
    events: list[ProgressEvent] = []
    results = benchmark([run], BenchOptions(**FAST), events.append)  # no keep_going needed: a skip is no failure
    assert [r.name for r in results] == ["coreml-fp16", "float32", "int8"]
    skipped, *measured = results
    assert skipped.skipped and "Core ML" in skipped.skipped and skipped.error is None
    assert not skipped.windows and not skipped.complete and skipped.format == "coreml"
    assert skipped.model_size_bytes == package_bytes  # the package's files, not its directory entry
    assert model_size_bytes(exp / "model.mlpackage") == package_bytes
    assert model_size_bytes(run / "exports" / "int8" / "model.tflite") == digits.int8_export.joinpath(
        "model.tflite").stat().st_size
    assert all(r.complete and r.skipped is None and r.error is None for r in measured)
    assert [e.data["event"] for e in events if e.message == "coreml-fp16"] == ["skipped"]
    (path,) = save_results(results, BenchOptions(**FAST))
    saved = {m["name"]: m for m in json.loads(path.read_text())["results"]}
    assert saved["coreml-fp16"]["skipped"] == skipped.skipped and saved["int8"]["skipped"] is None
    # named on its own, a Core ML export is still an error
    with pytest.raises(DeviceError, match="Core ML") as e:
        benchmark([exp], BenchOptions(**FAST))
    assert e.value.exit_code == 3 and e.value.hint and "later issue" not in str(e.value)


def test_profiles_this_machine_cannot_benchmark_for(digits):
    """Messages say what the user can do now, never name CLI flags or the project's plans."""
    for profile, says in (("raspberry-pi-5", "ssh transport"), ("pixel-8", "adb transport"),
                          ("iphone-15-pro", "Core ML")):
        with pytest.raises(DeviceError) as e:
            benchmark([digits.int8_export], BenchOptions(**FAST, profile=profile))
        text = str(e.value)
        assert says in text and "--" not in text and "later" not in text, text
    with pytest.raises(InputError) as e:  # a malformed address is bad input (2), not a device failure (3)
        benchmark([digits.int8_export], BenchOptions(**FAST, device="ssh:pi@raspberrypi.local"))
    assert "ssh://" in str(e.value) and "--" not in e.value.message


def test_identical_models_are_measured_once_and_shown_for_each_export(digits, tmp_path):
    """`convert --all` makes int8 exports that differ only in their embedded metadata: one agent run
    measures them, and every export gets its row saying which one was measured."""
    from edgepool.export import metadata

    run = tmp_path / "run"
    shutil.copytree(digits.path, run, ignore=shutil.ignore_patterns("benchmarks", "exports"))
    labels = [str(i) for i in range(10)]
    int8 = (digits.int8_export / "model.tflite").read_bytes()
    profiles = ("host-cpu", "pixel-8", "raspberry-pi-4", "raspberry-pi-5")
    for p in profiles:
        write_export(run, p, metadata.embed(int8, {"recipe": "int8", "profile": p}), "int8", labels)
    write_export(run, "float32", (digits.float_export / "model.tflite").read_bytes(), "float32", labels)
    events: list[ProgressEvent] = []
    results = benchmark([run], BenchOptions(**FAST), events.append)
    assert [r.name for r in results] == ["float32", *profiles]
    agent_runs = [e.message for e in events if e.data["event"] == "hello"]
    assert agent_runs == ["float32", "host-cpu"]  # two agent runs, not five
    assert [e.message for e in events if e.data["event"] == "shared"] == list(profiles[1:])
    measured = results[1]
    assert measured.measured_as is None and measured.complete and results[0].measured_as is None
    for r in results[2:]:
        assert r.measured_as == "host-cpu" and r.complete
        assert r.latency_ms == measured.latency_ms and r.accuracy == measured.accuracy and r.runs == measured.runs
        model = run / "exports" / r.name / "model.tflite"
        assert r.model_path == str(model) and r.model_size_bytes == model.stat().st_size
    (path,) = save_results(results, BenchOptions(**FAST))
    saved = {m["name"]: m for m in json.loads(path.read_text())["results"]}
    assert saved["host-cpu"]["measured_as"] is None and saved["pixel-8"]["measured_as"] == "host-cpu"
    assert saved["raspberry-pi-5"]["latency_ms"] == saved["host-cpu"]["latency_ms"]
    # other settings are another measurement: the same model outside its run is measured on random inputs
    loose = tmp_path / "loose.tflite"
    loose.write_bytes((run / "exports" / "host-cpu" / "model.tflite").read_bytes())
    events.clear()
    inside, outside = benchmark([run / "exports" / "pixel-8", loose], BenchOptions(**FAST), events.append)
    assert (inside.input_mode, outside.input_mode) == ("samples", "random")
    assert inside.measured_as is None and outside.measured_as is None
    assert [e.data["event"] for e in events].count("hello") == 2

"""What the agent records about the device around a measurement: vcgencmd throttling bits, thermal state
before and after, whether a run throttled, the temperature settle of --stable, delegate node coverage
(a real external delegate built here), qemu-user emulation; and how the leaderboard shows it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgepool.bench import agent
from edgepool.bench.protocol import BenchmarkResult, BenchOptions, build_request
from edgepool.bench.transports.local import LocalTransport
from tests._bench_models import cached_digits_run


def test_parse_vcgencmd():
    # Raspberry Pi documentation: 0x50005 = under-voltage now (bit 0), throttled now (2), both since boot (16, 18)
    assert agent.parse_throttled("throttled=0x50005") == {
        "raw": "0x50005", "flags": ["under_voltage", "throttled", "under_voltage_occurred", "throttled_occurred"]}
    assert agent.parse_throttled("throttled=0x0") == {"raw": "0x0", "flags": []}
    assert agent.parse_throttled("throttled=0xe0000")["flags"] == [
        "arm_freq_capped_occurred", "throttled_occurred", "soft_temp_limit_occurred"]
    assert agent.parse_throttled("error=1 error_msg=...") is None
    assert agent.parse_measure_temp("temp=54.2'C") == 54.2 and agent.parse_measure_temp("") is None


def _state(flags=(), temps=None, trips=None, cooling=None):
    vc = {"throttled": {"raw": "?", "flags": list(flags)}, "temp_c": None}
    return {"temperatures_c": temps, "trip_points_c": trips, "cpufreq": None, "cooling_active": cooling, "vcgencmd": vc}


def test_throttle_reasons():
    assert agent.throttle_reasons(_state(), _state()) == []
    # a sticky bit that was already set before the run says nothing about this run
    assert agent.throttle_reasons(_state(["throttled_occurred"]), _state(["throttled_occurred"])) == []
    assert agent.throttle_reasons(_state(), _state(["throttled_occurred"])) == [
        "vcgencmd: throttled during the timed phase"]
    assert agent.throttle_reasons(_state(), _state(["arm_freq_capped", "arm_freq_capped_occurred"])) == [
        "vcgencmd: arm freq capped after the timed phase", "vcgencmd: arm freq capped during the timed phase"]
    assert agent.throttle_reasons(_state(["under_voltage"]), _state()) == [
        "vcgencmd: under voltage before the timed phase"]
    hot = agent.throttle_reasons(_state(), _state(temps={"cpu-thermal": 85.5}, trips={"cpu-thermal": 85.0}))
    assert hot == ["cpu-thermal at 85.5 C reached its 85.0 C trip point after the timed phase"]
    cool = agent.throttle_reasons(_state(cooling={"cpufreq-cpu0": "2/4"}), _state())
    assert cool == ["cooling device cpufreq-cpu0 limiting the CPU (2/4) before the timed phase"]


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_settle_temperature_waits_for_a_steady_reading():
    events = []
    clock = FakeClock()
    temps = iter([60.0, 58.0, 56.0, 55.0, 54.8, 54.7, 54.6, 54.6, 54.5, 54.5, 54.5, 54.5])
    res = agent.settle_temperature(lambda *a, **k: events.append(k), clock=clock, sleep=clock.sleep,
                                   read=lambda: next(temps))
    assert res["settled"] is True and res["temp_c"] == 54.5 and 5 <= res["waited_s"] <= 11
    assert events and events[0]["phase"] == "settle" and events[0]["total"] == 60
    clock = FakeClock()
    rising = iter(range(40, 200))
    res = agent.settle_temperature(lambda *a, **k: None, clock=clock, sleep=clock.sleep, read=lambda: float(next(rising)))
    assert res["settled"] is False and res["waited_s"] == 60
    assert agent.settle_temperature(lambda *a, **k: None, read=lambda: None)["settled"] is None


def _op(index, name, inputs, outputs):
    return {"index": index, "op_name": name, "inputs": np.array(inputs), "outputs": np.array(outputs)}


# conv(0: t0,w -> t1), pool(1: t1 -> t2), reshape(2: t2 -> t3), fc(3: t3,w2 -> t4), softmax(4: t4 -> t5)
GRAPH = [_op(0, "CONV_2D", [0, 10], [1]), _op(1, "MAX_POOL_2D", [1], [2]), _op(2, "RESHAPE", [2, -1], [3]),
         _op(3, "FULLY_CONNECTED", [3, 11], [4]), _op(4, "SOFTMAX", [4], [5])]


def test_delegate_node_coverage_from_the_graph():
    # the requested delegate took conv + pool (one partition, node 5); XNNPACK took the rest later (node 6)
    ops = GRAPH + [_op(5, "DELEGATE", [0, 10], [2]), _op(6, "DELEGATE", [2, 11], [5])]
    assert agent.graph_coverage(ops, requested_end=6) == {"replaced": 2, "total": 5, "partitions": 1}
    assert agent.graph_coverage(ops, requested_end=None)["replaced"] == 5
    # took nothing: no DELEGATE node before the default delegate's
    assert agent.graph_coverage(GRAPH + [_op(5, "DELEGATE", [0, 10, 11], [5])], requested_end=5) == {
        "replaced": 0, "total": 5, "partitions": 0}
    # two partitions around a node the delegate could not take
    two = GRAPH + [_op(5, "DELEGATE", [0, 10], [2]), _op(6, "DELEGATE", [3, 11], [5])]
    assert agent.graph_coverage(two, requested_end=7) == {"replaced": 4, "total": 5, "partitions": 2}


def test_delegate_nodes_names_the_delegate_from_the_runtime_log():
    edgetpu = ("INFO: Replacing 1 out of 1 node(s) with delegate (EdgeTpuDelegateForCustomOp) node, yielding 1 "
               "partitions for the whole graph.\n"
               "VERBOSE: Replacing 3 out of 5 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 "
               "partitions for subgraph 0 (main).\n")
    got = agent.delegate_nodes(edgetpu, True, GRAPH + [_op(5, "DELEGATE", [0, 10], [2])], requested_end=6)
    assert got == {"replaced": 2, "total": 5, "partitions": 1, "delegates": ["EdgeTpuDelegateForCustomOp"],
                   "source": "graph"}
    assert agent.delegate_nodes(edgetpu, True)["source"] == "runtime log"  # no graph: the log's own count
    assert agent.delegate_nodes(edgetpu, True)["replaced"] == 1  # the default CPU delegate's line is not ours
    assert agent.delegate_nodes(edgetpu, False, GRAPH) is None  # no delegate asked for


def _fake_delegate(tmp_path: Path) -> Path:
    """A real TFLite external delegate (C, built here) that claims the first N nodes (option "nodes")."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the test delegate")
    src = tmp_path / "fake_delegate.c"
    src.write_text(FAKE_DELEGATE_C)
    lib = tmp_path / "libfake_delegate.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(lib), str(src)], check=True)
    return lib


# TfLiteContext / TfLiteRegistration / TfLiteDelegate prefixes (tensorflow/lite/core/c/common.h), unchanged
# since TF 2.x; the structs are padded with zeros for the fields newer runtimes added.
FAKE_DELEGATE_C = r"""
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
typedef struct { int size; int data[]; } IntArray;
typedef struct Context Context;
typedef struct {
  void* (*init)(Context*, const char*, size_t); void (*free_)(Context*, void*); int (*prepare)(Context*, void*);
  int (*invoke)(Context*, void*); const char* (*profiling_string)(Context*, void*); int32_t builtin_code;
  const char* custom_name; int version; char newer_fields[96];
} Registration;
typedef struct Delegate Delegate;
struct Context {
  size_t tensors_size; int (*GetExecutionPlan)(Context*, IntArray**); void* tensors; void* impl_;
  void* ResizeTensor; void* ReportError; void* AddTensors; void* GetNodeAndRegistration;
  int (*ReplaceNodeSubsetsWithDelegateKernels)(Context*, Registration, const IntArray*, Delegate*);
};
struct Delegate { void* data_; int (*Prepare)(Context*, Delegate*); void* f[3]; int64_t flags; void* opaque; char pad[128]; };
static int ok(Context* c, void* n) { (void)c; (void)n; return 0; }
static int prepare(Context* context, Delegate* delegate) {
  int want = (int)(intptr_t)delegate->data_;
  if (want <= 0) return 0;
  IntArray* plan = NULL;
  if (context->GetExecutionPlan(context, &plan) != 0) return 1;
  int n = want < plan->size ? want : plan->size;
  IntArray* nodes = malloc(sizeof(int) * (n + 1));
  nodes->size = n;
  for (int i = 0; i < n; i++) nodes->data[i] = plan->data[i];
  Registration r;
  memset(&r, 0, sizeof r);
  r.prepare = ok; r.invoke = ok; r.builtin_code = 32; r.custom_name = "EdgepoolTestDelegate"; r.version = 1;
  int status = context->ReplaceNodeSubsetsWithDelegateKernels(context, r, nodes, delegate);
  free(nodes);
  return status;
}
Delegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n, void (*report_error)(const char*)) {
  (void)report_error;
  Delegate* d = calloc(1, sizeof(Delegate));
  d->Prepare = prepare;
  for (size_t i = 0; i < n; i++) if (!strcmp(keys[i], "nodes")) d->data_ = (void*)(intptr_t)atoi(values[i]);
  return d;
}
void tflite_plugin_destroy_delegate(Delegate* d) { free(d); }
"""


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["ai_edge_litert", "tflite_runtime 2.14"])
def test_delegate_coverage_and_fallback_with_a_real_delegate(tmp_path, runtime, tflite_runtime_py):
    """A delegate that takes 0, 2 or all nodes, on LiteRT and on tflite-runtime 2.14: the result counts the
    nodes it took (not the runtime's default XNNPACK), and flags the one that took none."""
    lib = _fake_delegate(tmp_path)
    d = cached_digits_run()
    python = str(tflite_runtime_py) if runtime.startswith("tflite") else None
    got = {}
    for nodes in ("0", "2", "99"):
        req = build_request(d.int8_export / "model.tflite", BenchOptions(windows=1, runs=3, min_seconds=0.01,
                                                                         warmup_min_seconds=0.01), 1, [],
                            {"mode": "random", "seed": 0})
        req["delegates"] = [{"library": str(lib), "options": {"nodes": nodes}}]
        run = LocalTransport(python=python).run(req)
        assert run.result is not None, (run.error, run.stderr_tail)
        env = run.result["environment"]
        got[nodes] = (env["delegate_nodes"]["replaced"], env["delegate_nodes"]["total"], env["delegate_fallback"])
    assert got == {"0": (0, 5, True), "2": (2, 5, False), "99": (5, 5, False)}


def test_stderr_capture_sees_the_c_level_fd_and_passes_it_on(capfd):
    with agent._Stderr() as log:
        os.write(2, b"INFO: Replacing 2 out of 3 node(s) with delegate (X) node\n")
    assert "Replacing 2 out of 3" in log.text
    assert "Replacing 2 out of 3" in capfd.readouterr().err


def test_emulation_detection(monkeypatch):
    assert agent.emulation() is None  # this machine runs its own binaries
    monkeypatch.setattr(agent.platform, "machine", lambda: "aarch64")
    x86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu vme\n"
    arm = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n"
    monkeypatch.setattr(agent, "_read", lambda p: x86 if p == "/proc/cpuinfo" else None)
    assert agent.emulation() == "qemu-user"
    monkeypatch.setattr(agent, "_read", lambda p: arm if p == "/proc/cpuinfo" else None)
    assert agent.emulation() is None  # a real ARM kernel (and this process's exe is not qemu)


def test_stable_preset_options():
    o = BenchOptions(stable=True)
    assert (o.windows, o.min_seconds) == (10, 2.0)
    assert (BenchOptions(stable=True, windows=20, min_seconds=3).windows, BenchOptions(stable=False).windows) == (20, 5)
    req = build_request(Path("m.tflite"), o, 1, [], {"mode": "random"})
    assert req["stable"] is True and req["windows"] == 10 and req["min_seconds"] == 2.0


@pytest.fixture
def fake_vcgencmd(tmp_path, monkeypatch):
    """A `vcgencmd` on PATH that reports throttling that started during the run: get_throttled says 0x0 the
    first time (before the timed phase), then sticky bit 18 (after it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state = tmp_path / "calls"
    state.write_text("")
    script = bin_dir / "vcgencmd"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  measure_temp) echo \"temp=61.3'C\" ;;\n"
        f'  get_throttled) echo x >> "{state}"\n'
        f'    if [ $(wc -l < "{state}") -gt 1 ]; then echo throttled=0x40000; else echo throttled=0x0; fi ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return script


@pytest.mark.slow
def test_agent_records_context_and_flags_throttling(fake_vcgencmd, capsys):
    """Through a real agent process: thermal state before/after, vcgencmd, throttled flag, --stable pinning
    and settle, and the leaderboard marking the run."""
    d = cached_digits_run()
    req = build_request(d.float_export / "model.tflite", BenchOptions(windows=1, runs=5, min_seconds=0.01,
                                                                       warmup_min_seconds=0.01), 1, [],
                        {"mode": "random", "seed": 0})
    req["stable"] = True  # the agent's part of --stable (the host's part raises windows and their length)
    run = LocalTransport().run(req)
    assert run.result is not None, run.error
    env = run.result["environment"]
    assert env["affinity"] == [max(os.sched_getaffinity(0))]  # --stable pins the last core
    assert env["thermal"]["settle"]["settled"] is True  # the fake sensor is steady at 61.3 C
    assert env["thermal"]["before"]["vcgencmd"] == {"throttled": {"raw": "0x0", "flags": []}, "temp_c": 61.3}
    assert env["thermal"]["after"]["vcgencmd"]["throttled"]["flags"] == ["throttled_occurred"]
    assert env["throttled"] is True and env["throttle_reasons"] == ["vcgencmd: throttled during the timed phase"]
    assert env["delegate_nodes"] is None and env["delegate_fallback"] is False

    from edgepool.cli._bench_view import benchmark_table

    r = BenchmarkResult(name="m", model_path="m.tflite", format="tflite", recipe=None, device="ssh://pi",
                        profile=None, model_size_bytes=1, threads=1, delegates=[], input_mode="random")
    for w in run.windows:
        r.add_window(w)
    r.apply_result(run.result)
    r.environment = {**r.environment, "emulated": "qemu-user", "machine": "aarch64", "delegate_fallback": True}
    benchmark_table([r])
    out = " ".join(capsys.readouterr().out.split())
    assert "emulated: aarch64 under qemu-user" in out
    assert "throttled" in out and "delegate took no node" in out

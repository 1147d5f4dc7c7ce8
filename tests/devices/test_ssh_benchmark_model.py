"""The SSH transport in binary mode: LiteRT's `benchmark_model` run on the device instead of the agent.

The binary is a stand-in: LiteRT's prebuilt `benchmark_model` cannot be downloaded here, so each test writes a
small executable script that records its argument list (and working folder) to a file on this machine and prints
a realistic output from tests/fixtures/benchmark_model/ (the classic microsecond format and the newer millisecond
`BENCHMARK RESULTS` block). The ssh connection and the device are real: this machine's sshd on 127.0.0.1
(`loopback_sshd`), the upload, the private folder, the `sh` script that runs the binary and the clean-up.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from edgepool.bench.benchmark_model import parse_benchmark_model
from edgepool.bench.protocol import BenchOptions, build_request
from edgepool.bench.runner import benchmark, benchmark_one, plan_devices
from edgepool.bench.transports.ssh import SSH_CONFIG_ENV, SshTransport
from edgepool.errors import DeviceError
from edgepool.types import Transport

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "benchmark_model"
FAST = dict(warmup_runs=1, warmup_min_seconds=0.05, runs=10, min_seconds=0.05, windows=2)


def stand_in(tmp_path: Path, fixture: str, exit_code: int = 0) -> tuple[Path, Path]:
    """A `benchmark_model` stand-in printing `fixture`; returns (binary, the file its argv lands in)."""
    record = tmp_path / "argv.txt"
    out = tmp_path / "stand-in output.txt"
    shutil.copyfile(FIXTURES / fixture, out)
    binary = tmp_path / "benchmark_model"
    binary.write_text(
        "#!/bin/sh\n"  # plain sh, like the device: one argument a line, then the working folder
        f"{{ pwd; printf '%s\\n' \"$0\" \"$@\"; }} > {_q(record)}\n"
        f"cat {_q(out)}\n"
        f"exit {exit_code}\n"
    )
    binary.chmod(0o644)  # the transport makes it executable on the device
    return binary, record


def recorded(record: Path) -> dict:
    cwd, *argv = record.read_text().splitlines()
    return {"cwd": cwd, "argv": argv}


def _q(p: Path) -> str:
    import shlex

    return shlex.quote(str(p))


def req(model: Path, threads: int = 2, delegates: list[str] | None = None, affinity: list[int] | None = None) -> dict:
    r = build_request(model, BenchOptions(**FAST), threads, [], {"mode": "random", "seed": 0, "normalization": None})
    r["delegate_names"] = list(delegates or [])
    if affinity:
        r["affinity"] = affinity
    return r


def transport(server, device_tmp: Path, binary: Path, **kw) -> SshTransport:
    # python: a path that does not exist: binary mode never runs the device's Python
    return server.transport(python="/nonexistent/python3", tmpdir=str(device_tmp), benchmark_binary=binary, **kw)


# the classic µs format (a Linux build), the newer ms block, and an older release whose memory line is
# "Peak memory footprint (MB): init= overall=" instead of "Memory footprint delta ..."
@pytest.mark.parametrize("fixture", ["classic_linux_xnnpack.txt", "litert_tools_ms.txt",
                                     "old_release_nnapi_peak_memory.txt"])
def test_binary_mode_parses_into_the_agent_record(loopback_sshd, digits, device_tmp, tmp_path, fixture):
    binary, record = stand_in(tmp_path, fixture)
    model = digits.int8_export / "model.tflite"
    events = []
    run = transport(loopback_sshd, device_tmp, binary).run(req(model, 2, ["xnnpack"]), events.append)
    assert run.error is None and run.result is not None, run.stderr_tail
    expected = parse_benchmark_model((FIXTURES / fixture).read_text())
    res = run.result
    assert res["runtime"] == "benchmark_model" and res["transport"] == "ssh" and res["input_mode"] == "random"
    assert res["output_format"] == expected["output_format"]
    for key in ("init_ms", "first_inference_ms", "latency_ms", "runs", "memory", "warmup"):
        assert res[key] == expected[key], key
    assert res["latency_ms"]["mean"] is not None and res["init_ms"] is not None
    mem = res["memory"]
    assert mem["source"] and (mem["overall_footprint_delta_bytes"] is not None or mem["peak_rss_bytes"] is not None)
    if fixture == "litert_tools_ms.txt":
        assert res["latency_ms"]["mean"] == pytest.approx(85.23, abs=0.01)
        assert res["memory"]["peak_rss_bytes"] == round(35.20 * 1024 * 1024)
    assert res["model_size_bytes"] == model.stat().st_size
    assert res["environment"]["benchmark_binary"] == str(binary) and res["benchmark_binary"] == str(binary)
    assert [e["event"] for e in events][-1] == "result" and "hello" in [e["event"] for e in events]
    seen = recorded(record)
    argv = seen["argv"]
    assert argv[0] == "./benchmark_model" and "--graph=model.tflite" in argv
    assert "--num_threads=2" in argv and "--use_xnnpack=true" in argv and "--num_runs=20" in argv
    assert "--warmup_runs=1" in argv and "--min_secs=0.1" in argv
    assert seen["cwd"].startswith(str(device_tmp)) and run.remote_dir == seen["cwd"]
    assert (Path(seen["cwd"]) / "model.tflite").exists() is False  # removed afterwards
    assert run.returncode == 0 and run.remote_dir_removed


def test_hostile_model_name_executes_nothing(loopback_sshd, digits, device_tmp, tmp_path):
    sentinel = "pwned-by-name"
    name = f"it's a \"model\" $(touch {sentinel}) `touch {sentinel}` x.tflite"
    model = tmp_path / "models" / name
    model.parent.mkdir()
    shutil.copyfile(digits.int8_export / "model.tflite", model)
    binary, record = stand_in(tmp_path, "classic_linux_xnnpack.txt")
    run = transport(loopback_sshd, device_tmp, binary).run(req(model, 1, [], affinity=[0]))
    assert run.error is None and run.result is not None, run.stderr_tail
    argv = recorded(record)["argv"]
    assert f"--graph={name}" in argv and "--num_threads=1" in argv
    assert not any(p.exists() for p in (Path.home() / sentinel, device_tmp / sentinel, tmp_path / sentinel))
    if shutil.which("taskset"):
        assert run.result["environment"]["pinned"] is True


def test_failing_binary_is_one_line_error_and_cleans_up(loopback_sshd, digits, device_tmp, tmp_path):
    binary, _ = stand_in(tmp_path, "failed_op_version.txt", exit_code=1)
    model = digits.int8_export / "model.tflite"
    t = transport(loopback_sshd, device_tmp, binary)
    run = t.run(req(model))
    assert run.result is None and run.error is not None and run.returncode == 1 and run.remote_dir_removed
    last_error = [ln for ln in (FIXTURES / "failed_op_version.txt").read_text().splitlines()
                  if ln.startswith("ERROR:") and "Benchmarking failed" not in ln][-1]
    assert last_error.removeprefix("ERROR: ").strip() in run.error["message"]
    # through the runner: one clear DeviceError, one line
    from edgepool.bench.runner import resolve_targets

    [target] = resolve_targets([digits.int8_export])
    with pytest.raises(DeviceError) as e:
        benchmark_one(target, BenchOptions(**FAST), transport(loopback_sshd, device_tmp, binary), "dev", None, 1, [],
                      kind=Transport.SSH, binary=True)
    assert "\n" not in e.value.message and "Failed to initialize the interpreter" in e.value.message, e.value.message


def test_timeout_stops_the_binary_and_cleans_up(loopback_sshd, digits, device_tmp, tmp_path):
    binary = tmp_path / "benchmark_model"
    binary.write_text("#!/bin/sh\nexec sleep 60\n")  # one process, like the real binary
    t = transport(loopback_sshd, device_tmp, binary, timeout_s=2)
    with pytest.raises(DeviceError, match="did not finish within 2 s"):
        t.run(req(digits.int8_export / "model.tflite"))


def test_runner_and_cli(loopback_sshd, digits, device_tmp, tmp_path, cli, monkeypatch):
    binary, _ = stand_in(tmp_path, "litert_tools_ms.txt")
    monkeypatch.setenv(SSH_CONFIG_ENV, str(loopback_sshd.ssh_config))
    uri = loopback_sshd.uri(python="/nonexistent/python3", tmpdir=str(device_tmp))
    opts = BenchOptions(device=uri, benchmark_binary=str(binary), **FAST)
    [plan] = plan_devices(opts)
    assert plan.binary and plan.transport.benchmark_binary == binary
    [res] = benchmark([digits.int8_export], opts)
    assert res.error is None and res.runtime == "benchmark_model" and res.input_mode == "random"
    assert res.transport == "ssh" and res.environment["benchmark_binary"] == str(binary) and res.complete
    assert res.environment["cpu_count"] == os.cpu_count()
    out = tmp_path / "res.json"
    monkeypatch.setenv("COLUMNS", "400")  # the long device URI must not squeeze the row's columns
    r = cli("benchmark", digits.int8_export, "--device", uri, "--benchmark-binary", binary, "--runs", "10",
            "--min-seconds", "0.05", "--windows", "2", "--warmup-seconds", "0.05", "--out", out)
    assert r.exit_code == 0, r.stdout + r.stderr
    row = [ln for ln in r.stdout.splitlines() if "benchmark_model" in ln and "int8" in ln]
    assert row, r.stdout
    doc = json.loads(out.read_text())
    assert doc["results"][0]["runtime"] == "benchmark_model" and doc["results"][0]["input_mode"] == "random"


def test_interrupt_from_another_thread_stops_and_cleans_up(loopback_sshd, digits, device_tmp, tmp_path):
    import threading

    binary = tmp_path / "benchmark_model"
    binary.write_text("#!/bin/sh\nexec sleep 60\n")  # one process, like the real binary
    t = transport(loopback_sshd, device_tmp, binary)
    threading.Timer(2.0, t.interrupt).start()
    run = t.run(req(digits.int8_export / "model.tflite"))
    assert run.interrupted and run.result is None and run.remote_dir_removed

"""The SSH transport against real sshd servers: this machine's on 127.0.0.1 (fast path, the device Python is
this venv's, with ai_edge_litert) and the emulated Raspberry Pi (arm64 Debian bookworm under qemu-user with
tflite-runtime 2.14.0 + numpy<2, marked slow).

Each test checks that the private folder on the device is gone afterwards: the loopback tests give the
device its own temp folder (`?tmpdir=`) and assert it is empty, so other processes' files do not matter.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from edgepool.bench.protocol import BenchOptions, build_request
from edgepool.bench.runner import benchmark
from edgepool.bench.transports import get_transport
from edgepool.bench.transports.local import LocalTransport
from edgepool.bench.transports.ssh import SSH_CONFIG_ENV, SshTarget, SshTransport, parse_ssh_uri
from edgepool.errors import DeviceError, InputError
from tests.devices.conftest import free_port, write_client_config

FAST = dict(warmup_runs=1, warmup_min_seconds=0.05, runs=10, min_seconds=0.05, windows=2)


def request(export: Path, run_dir: Path | None = None, save_outputs: int = 0, **opts) -> dict:
    """The request the runner would send for `export` (its test samples when `run_dir` is given)."""
    side = json.loads((export / "model.json").read_text())
    inputs = {"mode": "random", "seed": 0, "normalization": side["normalization"]}
    if run_dir is not None:
        inputs.update(mode="samples", samples_path=str(run_dir / "data" / "test.npz"), max_samples=None)
    req = build_request(export / "model.tflite", BenchOptions(**{**FAST, **opts}), 1, [], inputs)
    if save_outputs:
        req["save_outputs"] = save_outputs
    return req


def outputs(run) -> np.ndarray:
    out = run.result["outputs"]
    return np.asarray(out["values"], dtype=out["dtype"])


# ------------------------------------------------------------------------------------------------ URIs
def test_parse_ssh_uri():
    assert parse_ssh_uri("ssh://pi@raspberrypi.local") == SshTarget("pi", "raspberrypi.local", None, "python3")
    assert parse_ssh_uri("ssh://10.0.0.7:2222?python=/home/pi/venv/bin/python&tmpdir=/data/tmp") == \
        SshTarget(None, "10.0.0.7", 2222, "/home/pi/venv/bin/python", "/data/tmp")
    assert parse_ssh_uri("ssh://my-pi") == SshTarget(None, "my-pi")  # an alias from ~/.ssh/config
    t = parse_ssh_uri("ssh://root@[::1]:22?python=/opt/my%20env/bin/python")
    assert (t.host, t.port, t.python, t.display) == ("::1", 22, "/opt/my env/bin/python", "root@[::1]:22")
    for bad, what in [("ssh://", "no host"), ("ssh://pi:notaport", "port"), ("ssh://pi:0", "port"),
                      ("ssh://pi:70000", "port"), ("ssh://pi/home", "path"), ("ssh://pi?pyton=/x", "unknown option"),
                      ("ssh://pi?python=", "is empty"), ("ssh://-oProxyCommand=x", "'-'"),
                      ("ssh://u:secret@pi", "password"), ("adb://x", "not an ssh:// device")]:
        with pytest.raises(InputError, match=what):
            parse_ssh_uri(bad)


def test_command_is_an_argument_list_quoted_for_the_remote_shell():
    t = SshTransport(SshTarget("pi", "pi.local", 2222, "/opt/a b/python"), ssh_config=Path("/x/ssh config"))
    argv = t.command("rm", "-rf", "--", "/tmp/edgepool-x $(reboot)")
    assert argv[:3] == ["ssh", "-F", "/x/ssh config"]
    assert ["-o", "BatchMode=yes"] == argv[3:5] and "ConnectTimeout=10" in argv
    assert argv[-3:] == ["--", "pi.local", "rm -rf -- '/tmp/edgepool-x $(reboot)'"]
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "pi"


def test_get_transport_ssh():
    t = get_transport("ssh://pi@pi.local:2222?python=/usr/bin/python3", timeout_s=5)
    assert isinstance(t, SshTransport) and t.target.port == 2222 and t.timeout_s == 5
    assert get_transport("ssh://pi.local", python="/opt/venv/bin/python").target.python == "/opt/venv/bin/python"
    from types import SimpleNamespace

    ref = SimpleNamespace(user="pi", host="fe80::1", port=None, python=None, tmpdir="/data/tmp")
    assert SshTransport.from_device(ref, timeout_s=3).target == SshTarget("pi", "fe80::1", None, "python3", "/data/tmp")


# -------------------------------------------------------------------------------------- loopback sshd
def test_loopback_runs_like_local(loopback_sshd, digits, device_tmp):
    """Same request, same Python: the same accuracy and bit-identical outputs via ssh and locally."""
    req = request(digits.int8_export, digits.path, save_outputs=20)
    events = []
    remote = loopback_sshd.transport(tmpdir=str(device_tmp)).run(req, events.append)
    local = LocalTransport().run(req)
    assert remote.error is None and remote.result is not None, remote.stderr_tail
    assert remote.returncode == 0 and remote.remote_dir_removed and remote.remote_dir.startswith(str(device_tmp))
    assert [e["event"] for e in events][:2] == ["hello", "init"] and events[-1]["event"] == "result"
    assert len(remote.windows) == 2 and all(w["runs"] >= 10 for w in remote.windows)
    assert remote.result["accuracy"] == local.result["accuracy"]
    np.testing.assert_array_equal(outputs(remote), outputs(local))
    assert outputs(remote).shape == (20, 10)
    env = remote.result["environment"]
    assert env["runtime"] == "ai_edge_litert" and env["emulated"] is None and env["machine"] == os.uname().machine
    assert env["throttled"] is False and set(env["thermal"]) >= {"before", "after"}


def test_hostile_names_are_never_run_by_a_shell(loopback_sshd, digits, tmp_path, monkeypatch):
    """Model path, device Python and device temp folder with spaces, quotes and $(...): nothing is executed."""
    sentinel = tmp_path / "pwned"
    model = tmp_path / f"it's a \"model\" $(touch {sentinel}).tflite"
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(digits.float_export / "model.tflite", model)
    pydir = tmp_path / f"py $(touch {sentinel}) 'x'"
    pydir.mkdir(parents=True)
    (pydir / "python").write_text(f"#!/bin/sh\nexec {loopback_sshd.python} \"$@\"\n")  # a venv Python, started by a script
    (pydir / "python").chmod(0o755)
    dev_tmp = tmp_path / f"tmp `touch {sentinel}` \"$HOME\""
    dev_tmp.mkdir(parents=True)
    monkeypatch.setenv(SSH_CONFIG_ENV, str(loopback_sshd.ssh_config))
    uri = loopback_sshd.uri(python=str(pydir / "python"), tmpdir=str(dev_tmp))
    [res] = benchmark([model], BenchOptions(device=uri, **FAST))
    assert res.complete and res.error is None and res.runtime == "ai_edge_litert"
    assert not sentinel.exists() and not Path("/tmp/pwned").exists()
    assert list(dev_tmp.iterdir()) == []


def test_cli_benchmark_over_ssh(loopback_sshd, digits, cli, monkeypatch, tmp_path):
    monkeypatch.setenv(SSH_CONFIG_ENV, str(loopback_sshd.ssh_config))
    out = tmp_path / "res.json"
    r = cli("benchmark", digits.int8_export, "--device", loopback_sshd.uri(), "--runs", "10", "--min-seconds",
            "0.05", "--windows", "2", "--warmup-seconds", "0.05", "--out", out)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "benchmark on ssh://root@127.0.0.1" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["results"][0]["complete"] and doc["results"][0]["environment"]["delegate_fallback"] is False


def test_unknown_host_key_says_the_command_that_fixes_it(loopback_sshd, digits, tmp_path, cli, monkeypatch):
    known = tmp_path / "known_hosts"
    known.write_text("")
    config = write_client_config(tmp_path / "ssh_config", loopback_sshd.dir / "user_key", known)
    t = loopback_sshd.transport(ssh_config=config)
    with pytest.raises(DeviceError) as e:
        t.run(request(digits.float_export))
    port = loopback_sshd.port
    assert e.value.message == f"the host key of 127.0.0.1:{port} is not known: ssh host key verification failed"
    assert f"ssh-keyscan -p {port} 127.0.0.1 >> {known}" in e.value.hint
    assert f"ssh -p {port} root@127.0.0.1" in e.value.hint
    monkeypatch.setenv(SSH_CONFIG_ENV, str(config))
    r = cli("benchmark", digits.float_export, "--device", loopback_sshd.uri())
    assert r.exit_code == 3 and "host key" in r.stderr and "Traceback" not in r.stderr
    # the hint's command, run as written (without a shell), fixes it
    scan = subprocess.run(["ssh-keyscan", "-p", str(port), "127.0.0.1"], capture_output=True, text=True, check=True)
    known.write_text(scan.stdout)
    assert t.probe()["usable_runtime"] == "ai_edge_litert"


def test_unreachable_is_one_line_exit_3(cli, digits, monkeypatch, loopback_sshd):
    monkeypatch.setenv(SSH_CONFIG_ENV, str(loopback_sshd.ssh_config))
    port = free_port()  # nothing listens there
    r = cli("benchmark", digits.float_export, "--device", f"ssh://root@127.0.0.1:{port}")
    assert r.exit_code == 3
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    assert f"127.0.0.1:{port} is unreachable: connection refused" in r.stderr and "Traceback" not in r.stderr
    assert len(lines) <= 3, r.stderr  # one error line (and its hint), nothing else


def test_connect_timeout(digits, loopback_sshd):
    """A host that does not answer: the connect timeout ends it with one line."""
    t = SshTransport(SshTarget("root", "10.255.255.1", 22, "python3"), connect_timeout_s=1,
                     ssh_config=loopback_sshd.ssh_config)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="unreachable"):
        t.run(request(digits.float_export))
    assert time.monotonic() - t0 < 15


def test_missing_python_and_missing_runtime(loopback_sshd, digits, device_tmp, monkeypatch):
    monkeypatch.setenv(SSH_CONFIG_ENV, str(loopback_sshd.ssh_config))
    with pytest.raises(DeviceError) as e:
        loopback_sshd.transport(python="/nonexistent/python3", tmpdir=str(device_tmp)).run(request(digits.float_export))
    assert e.value.message == f"no python3 at /nonexistent/python3 on root@127.0.0.1:{loopback_sshd.port}"
    assert "?python=" in e.value.hint
    bare = "/usr/bin/python3"
    if subprocess.run([bare, "-c", "import numpy"], capture_output=True).returncode == 0:
        pytest.skip(f"{bare} has numpy here; the missing-runtime case needs a Python without it")
    run = loopback_sshd.transport(python=bare, tmpdir=str(device_tmp)).run(request(digits.float_export))
    assert run.error["kind"] == "device" and run.remote_dir_removed
    assert run.error["message"].startswith(f"no TFLite runtime and no numpy for {bare}")
    assert "pip install tflite-runtime" in run.error["hint"] and "ai-edge-litert" in run.error["hint"]
    with pytest.raises(DeviceError, match="no TFLite runtime"):
        benchmark([digits.float_export], BenchOptions(device=loopback_sshd.uri(python=bare), **FAST))


def test_too_old_python(loopback_sshd, digits, device_tmp):
    old = next((p for p in ("/root/.pyenv/versions/2.7.18/bin/python", "/root/.pyenv/versions/3.8.18/bin/python")
                if os.access(p, os.X_OK)), None)
    if old is None:
        pytest.skip("no Python older than 3.9 on this machine")
    with pytest.raises(DeviceError, match=r"is Python [23]\.\d+\.\d+; the agent needs Python 3.9 or newer"):
        loopback_sshd.transport(python=old, tmpdir=str(device_tmp)).run(request(digits.float_export))


def test_out_of_disk(loopback_sshd, digits, tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24k", "tmpfs", str(tiny)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        with pytest.raises(DeviceError) as e:
            loopback_sshd.transport(tmpdir=str(tiny)).run(request(digits.float_export))
        assert e.value.message.startswith(f"no space left on root@127.0.0.1:{loopback_sshd.port} in {tiny}")
        assert "MB free" in e.value.message and "?tmpdir=" in e.value.hint
        assert list(tiny.iterdir()) == []
    finally:
        subprocess.run(["umount", str(tiny)], check=False)


def _on_first_window(action):
    state = {"pid": None, "done": False}

    def on_event(ev):
        if ev.get("event") == "hello":
            state["pid"] = ev["pid"]
        if ev.get("event") == "window" and not state["done"]:
            state["done"] = True
            action(state["pid"])

    return on_event


def test_agent_killed_mid_run_keeps_finished_windows(loopback_sshd, digits, device_tmp, monkeypatch):
    monkeypatch.setenv(SSH_CONFIG_ENV, str(loopback_sshd.ssh_config))
    t = get_transport(loopback_sshd.uri(tmpdir=str(device_tmp)))
    killed = []

    def kill(pid):
        killed.append(loopback_sshd.ssh("kill", "-9", str(pid)).returncode)

    run = t.run(request(digits.float_export, windows=50, min_seconds=0.2), _on_first_window(kill))
    assert killed == [0]
    assert run.result is None and 1 <= len(run.windows) < 50 and run.returncode == -signal.SIGKILL
    assert run.remote_dir_removed
    # through the runner the finished windows become the result, and it says why it stopped
    from edgepool.bench import runner

    class Killer:
        def run(self, req, on_event=None):
            def both(ev):
                on_event(ev)
                _hook(ev)
            _hook = _on_first_window(kill)
            return t.run(req, both)

    [target] = runner.resolve_targets([digits.float_export])
    res = runner.benchmark_one(target, BenchOptions(**{**FAST, "windows": 50, "min_seconds": 0.2}), Killer(),
                               "ssh", None, 1, [])
    assert res.stopped == "crashed: SIGKILL" and not res.complete and len(res.windows) >= 1 and res.runs > 0


def test_ctrl_c_stops_the_remote_agent_and_keeps_windows(loopback_sshd, digits, device_tmp):
    def interrupt(pid):
        raise KeyboardInterrupt

    run = loopback_sshd.transport(tmpdir=str(device_tmp)).run(
        request(digits.float_export, windows=50, min_seconds=0.2), _on_first_window(interrupt))
    assert run.interrupted and run.result is not None and run.result["stopped"] == "interrupted"
    assert 1 <= len(run.windows) < 50 and run.remote_dir_removed


def test_timeout_kills_the_agent_and_cleans_up(loopback_sshd, digits, device_tmp):
    t = loopback_sshd.transport(tmpdir=str(device_tmp), timeout_s=4)
    t0 = time.monotonic()
    run = t.run(request(digits.float_export, windows=50, min_seconds=0.5))
    assert time.monotonic() - t0 < 4 + 10
    assert run.stopped == "timeout: stopped after 4 s" and run.windows and run.result is None
    assert run.remote_dir_removed


def _session_sshd(listener: int) -> list[int]:
    """The sshd processes serving connections of the listener `listener` (its children)."""
    kids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == listener:
                kids.append(int(p.name))
    return kids


def test_connection_dropped_mid_run(loopback_sshd, digits, device_tmp):
    """The connection dies mid-run (its sshd process is killed): finished windows kept, the end explained,
    the folder removed (by the wrapper, which sees its input end, or by the second connection)."""
    before = set(_session_sshd(loopback_sshd.proc.pid))

    def drop(pid):
        for s in set(_session_sshd(loopback_sshd.proc.pid)) - before:
            os.kill(s, signal.SIGKILL)

    run = loopback_sshd.transport(tmpdir=str(device_tmp)).run(
        request(digits.float_export, windows=50, min_seconds=0.2), _on_first_window(drop))
    assert run.result is None and run.windows
    assert run.stopped.startswith("connection lost: "), run.stopped
    deadline = time.monotonic() + 20  # the wrapper on the "device" stops its agent and removes the folder
    while list(device_tmp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(device_tmp.iterdir()) == []


def test_probe(loopback_sshd, device_tmp):
    info = loopback_sshd.transport(tmpdir=str(device_tmp)).probe()
    assert info["machine"] == os.uname().machine and info["emulated"] is None
    assert info["usable_runtime"] == "ai_edge_litert" and info["numpy"] == np.__version__
    assert info["runtimes"]["ai_edge_litert"]["importable"] is True
    assert info["disk"]["free_bytes"] > 0 and info["disk"]["path"].startswith(str(device_tmp))
    assert set(info["edgetpu"]) == {"library", "pcie", "usb"} and info["remote_dir_removed"]
    bare = loopback_sshd.transport(python="/usr/bin/python3", tmpdir=str(device_tmp)).probe()
    if bare["numpy"] is None:
        assert bare["usable_runtime"] is None


# -------------------------------------------------------------------------------------- emulated Pi
def test_no_emulation_fails_under_ci_and_skips_elsewhere(monkeypatch):
    """If binfmt cannot be registered (or qemu is missing), the emulated tests fail with the reason under CI."""
    from tests.devices import build_pi, conftest

    def no_binfmt():
        raise build_pi.PiUnavailable("cannot register qemu-aarch64 with binfmt_misc: Permission denied")

    monkeypatch.setattr(build_pi, "register_binfmt", no_binfmt)
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="under CI: cannot register qemu-aarch64 with binfmt_misc"):
        conftest.pi_image()
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="cannot register qemu-aarch64"):
        conftest.pi_image()


@pytest.mark.slow
def test_emulated_pi_probe(emulated_pi):
    info = emulated_pi.transport().probe()
    assert info["machine"] == "aarch64" and info["emulated"] == "qemu-user" and info["python"] == "3.11.2"
    assert info["runtimes"]["tflite_runtime"] == {"version": "2.14.0", "importable": True, "error": None}
    assert info["numpy"].startswith("1.") and info["usable_runtime"] == "tflite_runtime"
    bare = emulated_pi.transport(python=emulated_pi.bare_python).probe()
    assert bare["numpy"] is None and bare["usable_runtime"] is None and bare["machine"] == "aarch64"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["int8", "float32"])
def test_emulated_pi_outputs_match_the_host(emulated_pi, digits, tflite_runtime_py, name):
    """The real aarch64 tflite-runtime 2.14 kernels vs this machine: the same runtime version (the x86-64
    tflite-runtime 2.14 venv) within one int8 quantization step (measured: bit-exact) and float32 within 1e-5
    relative; this machine's LiteRT within TFLite's own test-driver tolerance of 4 steps (its int8 kernels
    differ from 2.14's by up to 3 steps on a few outputs, on x86-64 alone too). The result says aarch64,
    emulated by qemu-user, tflite_runtime 2.14.0."""
    export = digits.int8_export if name == "int8" else digits.float_export
    req = request(export, digits.path, save_outputs=digits.n_test, windows=1, runs=5, min_seconds=0.01)
    run = emulated_pi.transport().run(req)
    assert run.error is None and run.result is not None, (run.error, run.stderr_tail)
    env = run.result["environment"]
    assert (env["machine"], env["emulated"], env["runtime"], env["runtime_version"]) == \
        ("aarch64", "qemu-user", "tflite_runtime", "2.14.0")
    assert env["python"] == "3.11.2" and env["numpy"].startswith("1.")
    assert run.remote_dir_removed and not emulated_pi.host_path(run.remote_dir).exists()
    same_runtime = LocalTransport(python=str(tflite_runtime_py)).run(req)
    litert = LocalTransport().run(req)
    assert same_runtime.result["runtime_version"] == "2.14.0" and litert.result["runtime"] == "ai_edge_litert"
    pi = outputs(run)
    for ref, steps in ((outputs(same_runtime), 1), (outputs(litert), 4)):
        assert pi.shape == ref.shape == (digits.n_test, 10)
        if name == "int8":
            assert np.abs(pi.astype(np.int32) - ref.astype(np.int32)).max() <= steps
        else:
            np.testing.assert_allclose(pi, ref, rtol=1e-5, atol=0)
    for ref in (same_runtime, litert):
        assert abs(run.result["accuracy"]["accuracy"] - ref.result["accuracy"]["accuracy"]) <= 2 / digits.n_test


@pytest.mark.slow
def test_emulated_pi_missing_runtime(emulated_pi, digits):
    run = emulated_pi.transport(python=emulated_pi.bare_python).run(request(digits.float_export))
    assert run.error["kind"] == "device" and "no TFLite runtime and no numpy" in run.error["message"]
    assert "pip install tflite-runtime" in run.error["hint"]
    assert run.remote_dir_removed and not emulated_pi.host_path(run.remote_dir).exists()


@pytest.mark.slow
def test_emulated_pi_agent_killed(emulated_pi, digits):
    killed = []

    def kill(pid):
        killed.append(emulated_pi.ssh("kill", "-9", str(pid)).returncode)

    run = emulated_pi.transport().run(request(digits.int8_export, windows=50, min_seconds=0.3),
                                      _on_first_window(kill))
    assert killed == [0] and run.result is None and run.windows and run.returncode == -signal.SIGKILL
    assert run.remote_dir_removed and not emulated_pi.host_path(run.remote_dir).exists()


@pytest.mark.slow
def test_emulated_pi_cli_table_says_emulated(emulated_pi, digits, cli, monkeypatch, tmp_path):
    monkeypatch.setenv(SSH_CONFIG_ENV, str(emulated_pi.ssh_config))
    r = cli("benchmark", digits.int8_export, "--device", emulated_pi.uri(), "--runs", "5", "--min-seconds", "0.05",
            "--windows", "1", "--warmup-seconds", "0.05", "--no-save")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "emulated: aarch64 under qemu-user" in " ".join(r.stdout.split())


"""The sweep through a real Ray cluster: a Ray head started on 127.0.0.1 with two CPUs (two worker processes),
`edgepool sweep --executor ray --address` in its own process. The training runs in Ray's workers, the runs
and exports come back into the sweep directory (the driver writes it), host-cpu is measured on the
driver's node and raspberry-pi-5 estimated."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ENTRY = "from edgepool.cli.main import main; main()"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_env():
    """Token authentication with a token of this test's own (whatever ~/.ray holds): the head and the driver share it."""
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    return {**os.environ, **env}


@pytest.fixture
def ray_head(ray_env):
    """`ray start --head --block` on 127.0.0.1 (its own temp dir); SIGTERM at the end stops what it started."""
    ray_cli = Path(sys.executable).parent / "ray"
    assert ray_cli.is_file(), f"Ray is not installed in this venv ({ray_cli} missing): pip install 'edgepool[ray]'"
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ep-ray-", dir="/tmp")  # Ray's socket paths must stay short
    log = open(Path(temp) / "head.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--port", str(port), "--num-cpus", "2", "--include-dashboard", "false",
                             "--disable-usage-stats", "--temp-dir", temp],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=ray_env)
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in (Path(temp) / "head.log").read_text():
            assert proc.poll() is None, "ray start failed:\n" + (Path(temp) / "head.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Ray head did not start within 180 s"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", Path(temp)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_sweep_on_a_local_ray_cluster(ray_head, ray_env, tmp_path):
    address, ray_temp = ray_head
    out = tmp_path / "sweep"
    cmd = [sys.executable, "-c", ENTRY, "sweep", "--executor", "ray", "--address", address, "--data", "digits",
           "--pool", "max,none", "--model", "tiny", "--seeds", "1", "--epochs", "1", "-p", "host-cpu,raspberry-pi-5",
           "--bench-windows", "1", "--bench-seconds", "0.2", "--bench-runs", "20", "-o", str(out), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ray_env)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert doc["executor"] == "ray" and doc["state"] == "finished"
    assert doc["counts"] == {"configs": 2, "reused": 0, "trained": 2, "converted": 4, "measured": 2, "estimated": 2,
                             "failed": 0}
    for c in doc["configs"]:
        assert c["status"] == "done"
        worker = c["trained_on"]  # a worker process of the Ray head started above: its log is there
        assert worker["ray_node_id"] and worker["pid"] != os.getpid()
        logs = list(ray_temp.glob(f"session_*/logs/python-core-worker-*_{worker['pid']}.log"))
        assert logs, f"process {worker['pid']} that trained {c['id']} is not a worker of the Ray head"
        assert c["exports"]["host-cpu"]["latency_kind"] == "measured" and c["exports"]["host-cpu"]["latency_ms"] > 0
        assert c["exports"]["raspberry-pi-5"]["latency_kind"] == "estimated"
        run = out / c["run_dir"]  # the run and its exports came back from the Ray workers
        assert (run / "model.keras").is_file() and (run / "exports" / "host-cpu" / "model.tflite").is_file()
        assert list((run / "benchmarks").glob("*.json"))
    assert set(doc["recommendation"]) == {"host-cpu", "raspberry-pi-5"}
    assert (out / "pareto.png").is_file() and (out / "table.md").is_file()

    # the export made on a Ray worker points at its run in the sweep directory (its paths are relative)
    from edgepool.runs import load_export

    run = out / doc["configs"][0]["run_dir"]
    assert load_export(run / "exports" / "raspberry-pi-5").source_run_path.resolve() == run.resolve()

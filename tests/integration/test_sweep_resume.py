"""An interrupted sweep continues where it stopped: a real `edgepool sweep` process (with its worker processes)
gets a real SIGINT on its process group mid-way, then the same command finishes it without recomputing
what was finished (done markers and trained models untouched)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

ENTRY = "from edgepool.cli.main import main; main()"


def sweep_cmd(out: Path) -> list[str]:
    return [sys.executable, "-c", ENTRY, "sweep", "--data", "digits", "--pool", "max,none", "--model", "tiny",
            "--seeds", "1", "--epochs", "1", "-p", "host-cpu", "--bench-windows", "3", "--bench-seconds", "0.4",
            "--bench-runs", "20", "-o", str(out), "--json"]


def stamps(paths: list[Path]) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in paths}


def test_interrupted_sweep_continues_without_recomputing(tmp_path):
    out = tmp_path / "sweep"
    proc = subprocess.Popen(sweep_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    children: list[psutil.Process] = []
    deadline = time.monotonic() + 300
    try:
        while not list((out / "configs").glob("*.json")):
            assert proc.poll() is None, f"the sweep ended before it could be interrupted: {proc.communicate()}"
            assert time.monotonic() < deadline, "no configuration finished within 300 s"
            children = psutil.Process(proc.pid).children(recursive=True) or children
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "run the same command again to continue" in err
    assert children, "the sweep ran no worker processes"
    time.sleep(0.5)
    assert not [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE], \
        "worker processes outlived the interrupted sweep"
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["state"] == "interrupted"
    markers = sorted((out / "configs").glob("*.json"))
    assert 1 <= len(markers) < 2, "the sweep finished before the interrupt: make its benchmarks longer"
    done = {m.stem for m in markers}
    models = sorted((out / "runs").glob("*/model.keras"))
    assert len(models) == 2, "both configurations should have been trained before any benchmark ran"
    before = stamps(markers + models)

    rerun = subprocess.run(sweep_cmd(out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    assert result["state"] == "finished"
    assert result["counts"]["reused"] == len(done) and result["counts"]["trained"] == 0
    assert result["counts"]["measured"] == 2 - len(done)
    assert stamps(markers + models) == before, "a finished configuration or a trained model was recomputed"
    assert all(c["status"] == "done" and c["exports"]["host-cpu"]["latency_kind"] == "measured" for c in result["configs"])
    assert set(result["recommendation"]) == {"host-cpu"}
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "table.csv").read_text().splitlines()) == 1 + 2
    for c in result["configs"]:  # every configuration's benchmark is kept in its run, as `edgepool benchmark` keeps it
        assert list((out / c["run_dir"] / "benchmarks").glob("*.json"))

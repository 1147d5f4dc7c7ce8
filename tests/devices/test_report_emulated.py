"""The report marks a device the agent found emulated: a real benchmark on the emulated Pi (arm64 under
qemu-user, reached over ssh), then the report of the run it was saved in."""

from __future__ import annotations

import shutil

import pytest

from edgepool.bench.transports.ssh import SSH_CONFIG_ENV


@pytest.mark.slow
def test_report_marks_the_emulated_pi(emulated_pi, digits, monkeypatch, tmp_path):
    from edgepool.bench.protocol import BenchOptions
    from edgepool.pipeline import benchmark
    from edgepool.report import build_report

    monkeypatch.setenv(SSH_CONFIG_ENV, str(emulated_pi.ssh_config))
    run = tmp_path / "run"
    shutil.copytree(digits.path, run, ignore=shutil.ignore_patterns("benchmarks"))
    device = emulated_pi.uri()
    results, saved = benchmark([run / "exports" / "int8"], BenchOptions(devices=[device], runs=5, windows=2,
                                                                       min_seconds=0.05, warmup_min_seconds=0.05))
    assert saved and results[0].error is None and results[0].environment["emulated"] == "qemu-user"
    report = build_report(run)
    html = " ".join(report.html.split())
    assert ">emulated: aarch64 under qemu-user</span>" in html  # the result's status
    assert f"<h3>{results[0].device} <span class=\"b warn\"" in html.replace("&amp;", "&")  # the device's heading
    assert "Emulated device (aarch64 under qemu-user): outputs and accuracy are the device&#x27;s, latency is the emulator&#x27;s" in html

"""`edgepool sweep` refuses bad input in one line before any work (no training runs in these tests)."""

from __future__ import annotations

import sys

import pytest


def _sweep(cli, tmp_path, *extra: str):
    return cli("sweep", "--data", "digits", "--pool", "max", "--model", "tiny", "-p", "host-cpu", "--seeds", "1",
               "-o", tmp_path / "sw", *extra)


@pytest.mark.parametrize(("extra", "message"), [
    (("--window", "0"), "--window must be >= 1"),
    (("--window", "2,x"), "window 'x' is not an integer"),
    (("--seeds", "0"), "--seeds must be >= 1"),
    (("--pool", "max,median"), "unknown pool 'median'"),
    (("--executor", "dask"), "unknown executor 'dask'"),
    (("--address", "127.0.0.1:6379"), "an address names a Ray cluster"),
    (("--device", "ssh://pi@pi5.local"), "none of the sweep's profiles is reached over ssh"),
    (("-p", "nosuch-profile"), "nosuch-profile"),
])
def test_bad_input_is_one_line_and_writes_nothing(cli, tmp_path, extra, message):
    r = _sweep(cli, tmp_path, *extra)
    assert r.exit_code == 2, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sw").exists()


def test_ray_missing_gives_the_install_line(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when Ray is not installed
    r = _sweep(cli, tmp_path, "--executor", "ray")
    assert r.exit_code == 2
    assert "needs Ray" in r.stderr and "pip install 'edgepool[ray]'" in r.stderr


def test_help_is_instant_and_lists_the_options(cli):
    r = cli("sweep", "--help")
    assert r.exit_code == 0
    for flag in ("--pool", "--window", "--width", "--seeds", "--executor", "--address", "--device", "--profile"):
        assert flag in r.stdout

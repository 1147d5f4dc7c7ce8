from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_demo_end_to_end_with_relative_paths(cli, tmp_path, monkeypatch):
    """The main job on tiny settings, run from a working directory as `make demo` does."""
    monkeypatch.chdir(tmp_path)
    r = cli("demo", "--data", "digits", "--epochs", "2", "--out", "runs/d")
    assert r.exit_code == 0, r.output
    for text in ("1/3 train", "2/3 convert", "3/3 benchmark", "raspberry-pi-5", "iphone-15-pro", "coral-usb", "median"):
        assert text in r.stdout
    exports = {p.name for p in (tmp_path / "runs/d/exports").iterdir()}
    assert {"float32", "host-cpu", "coral-usb", "iphone-12"} <= exports
    (saved,) = (tmp_path / "runs/d/benchmarks").glob("*.json")
    results = json.loads(saved.read_text())["results"]
    assert len(results) == 3 and all(m["error"] is None and m["accuracy"] is not None for m in results)

"""The wheel ships the data folders (device_profiles/, quantization/) inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_contains_profiles_and_recipes(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (whl,) = tmp_path.glob("edgepool-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    for folder in ("device_profiles", "quantization"):
        shipped = {p.name for p in (REPO / folder).glob("*.toml")}
        assert shipped and shipped <= {Path(n).name for n in names if n.startswith(f"edgepool/_data/{folder}/")}
    assert "edgepool/bench/agent.py" in names

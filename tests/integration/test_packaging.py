"""sdist -> wheel -> fresh venv: what a user installs works, and builds without warnings.

Both builds use build isolation (as pip and CI do), the wheel is built from the sdist (so a file
missing from the sdist fails here), and the installed wheel is run from a temporary directory
outside the checkout, so the checkout cannot be imported by accident.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from edgepool._paths import data_dir

REPO = Path(__file__).resolve().parents[2]
WARNING_LINE = re.compile(r"warning", re.IGNORECASE)
# What a clean clone does not have (mirrors .gitignore): a stale edgepool.egg-info/SOURCES.txt
# would be read back into the sdist file list and could hide a missing package-data entry.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache",
    ".cache", "runs", ".hypothesis",
)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "EDGEPOOL_PROFILE_PATH")}
    # distutils prints "warning: build_py: byte-compiling is disabled" when the *caller* sets this;
    # it says nothing about the project, so the builds run as a user's shell would.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} exited {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def _warning_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if WARNING_LINE.search(line)]


def _build(what: str, src: Path, outdir: Path, cwd: Path) -> Path:
    res = _run([sys.executable, "-m", "build", f"--{what}", "--outdir", str(outdir), str(src)], cwd, _clean_env(), 600)
    output = res.stdout + res.stderr
    assert not _warning_lines(output), f"{what} build printed warnings:\n" + "\n".join(_warning_lines(output))
    pattern = "edgepool-*.tar.gz" if what == "sdist" else "edgepool-*.whl"
    (built,) = outdir.glob(pattern)
    return built


@pytest.mark.slow
def test_sdist_wheel_fresh_venv(tmp_path):
    shipped = {
        f"edgepool/data/{folder}/{p.name}" for folder in ("device_profiles", "quantization")
        for p in data_dir(folder).glob("*.toml")
    }
    assert {n.split("/")[2] for n in shipped} == {"device_profiles", "quantization"}
    expected = shipped | {"edgepool/bench/agent.py"}

    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=NOT_IN_A_CLONE)
    work = tmp_path / "work"  # cwd for everything: not the checkout
    work.mkdir()

    sdist = _build("sdist", src, tmp_path / "sdist", work)
    with tarfile.open(sdist) as tf:
        in_sdist = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert expected <= in_sdist, f"missing from the sdist: {sorted(expected - in_sdist)}"
    assert "setup.py" not in in_sdist

    wheel = _build("wheel", sdist, tmp_path / "wheel", work)
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
        (meta,) = [n for n in in_wheel if n.endswith(".dist-info/METADATA")]
        metadata = zf.read(meta).decode()
    assert expected <= in_wheel, f"missing from the wheel: {sorted(expected - in_wheel)}"
    assert "License-Expression: Apache-2.0" in metadata

    venv = tmp_path / "venv"
    try:
        env = _clean_env(XDG_CONFIG_HOME=str(tmp_path / "xdg"), MPLCONFIGDIR=str(tmp_path / "mpl"))
        _run([sys.executable, "-m", "venv", str(venv)], work, env, 300)
        py, edgepool = venv / "bin" / "python", venv / "bin" / "edgepool"
        # A normal (not editable) install of the wheel under test; dependencies from the index.
        _run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel)], work, env, 1800)

        where = _run([str(py), "-c", "import edgepool; print(edgepool.__file__)"], work, env, 60).stdout.strip()
        assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(REPO), where

        def edgepool_cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
            res = _run([str(edgepool), *args], work, env, timeout)
            assert not _warning_lines(res.stderr), f"edgepool {' '.join(args)} warned:\n{res.stderr}"
            return res

        assert "raspberry-pi-5" in edgepool_cli("profiles", "list").stdout
        profiles = json.loads(edgepool_cli("profiles", "list", "--json").stdout)
        names = {p["name"] for p in profiles}
        assert names >= {Path(n).stem for n in shipped if "/device_profiles/" in n}
        assert {"raspberry-pi-5", "raspberry-pi-4", "coral-usb", "iphone-15-pro", "host-cpu"} <= names

        edgepool_cli("recipes", "list")
        recipes = json.loads(edgepool_cli("recipes", "list", "--json").stdout)
        assert {r["name"] for r in recipes} >= {Path(n).stem for n in shipped if "/quantization/" in n}

        out = tmp_path / "demo"
        edgepool_cli("demo", "--data", "digits", "--epochs", "2", "--out", str(out), timeout=900)
        assert (out / "manifest.json").is_file() and (out / "model.keras").exists()
        assert (out / "exports" / "raspberry-pi-5" / "model.tflite").is_file()
        assert (out / "exports" / "raspberry-pi-5" / "model.json").is_file()
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # a few GB with TensorFlow; keep the rest for debugging

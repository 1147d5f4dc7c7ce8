"""A second, separate Python environment with only `tflite-runtime==2.14.0` and `numpy<2`.

Raspberry Pi OS users often run tflite-runtime 2.14 (which needs numpy 1.x); tests that must prove
something works there (the benchmark agent, exported models) run it in this venv, never a mock.

The venv is built once and cached under `<repo>/.cache/tflite-rt-2.14-venv` (git-ignored, so a fresh
clone builds it on first use). A key file inside records what it was built from (the requirements and
the base interpreter); when the key differs it is rebuilt. A file lock keeps parallel test processes
from building it twice.

Use either the plain function::

    from tests._tflite_runtime_env import tflite_runtime_python
    py = tflite_runtime_python()          # Path to the venv's python

or the session fixture `tflite_runtime_py` (import it into a conftest or test module).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_DIR = REPO / ".cache" / "tflite-rt-2.14-venv"
REQUIREMENTS = ["tflite-runtime==2.14.0", "numpy<2"]
_KEY_FILE = "edgepool-venv-key.json"


def _base_python() -> str:
    """The interpreter the venv is made from: the real one behind this (possibly virtual) env."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _key() -> dict[str, object]:
    base = _base_python()
    return {
        "requirements": REQUIREMENTS,
        "base_python": base,
        "python_version": list(sys.version_info[:2]),
        "digest": hashlib.sha256(json.dumps([REQUIREMENTS, base]).encode()).hexdigest()[:16],
    }


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _is_ready(venv: Path) -> bool:
    key_path = venv / _KEY_FILE
    if not key_path.is_file() or not _venv_python(venv).exists():
        return False
    try:
        return json.loads(key_path.read_text()) == _key()
    except (OSError, json.JSONDecodeError):
        return False


def tflite_runtime_python(venv: Path = VENV_DIR) -> Path:
    """Return the python of a venv holding only tflite-runtime 2.14.0 and numpy<2, building it if needed.

    Raises RuntimeError (with pip's output) when the venv cannot be built, e.g. no registry access.
    """
    venv = Path(venv)
    if _is_ready(venv):
        return _venv_python(venv)
    with _locked(venv.parent / f".{venv.name}.lock"):
        if _is_ready(venv):  # built by another process while we waited
            return _venv_python(venv)
        shutil.rmtree(venv, ignore_errors=True)
        # A venv's scripts embed its path, so it is built in place; it counts as ready only once
        # the key file is written, after pip succeeded (a half-built venv is rebuilt next time).
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
        steps = [
            [_base_python(), "-m", "venv", str(venv)],
            [str(_venv_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             *REQUIREMENTS],
        ]
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise RuntimeError(f"building {venv} failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
        (venv / _KEY_FILE).write_text(json.dumps(_key()))
    return _venv_python(venv)


@pytest.fixture(scope="session")
def tflite_runtime_py() -> Path:
    """Session fixture: path to the python of the tflite-runtime 2.14 + numpy<2 venv."""
    return tflite_runtime_python()

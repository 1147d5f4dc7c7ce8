"""Shared fixtures. Fixture data is generated here (tiny), never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """A finished run: the `tiny` preset trained 3 epochs on digits (a few seconds). Read-only for tests."""
    from edgepool.datasets import load_dataset
    from edgepool.models import preset
    from edgepool.pipeline import save_run
    from edgepool.training import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "tiny-digits"
    result = train(preset("tiny"), load_dataset("digits"), TrainConfig(epochs=3, seed=0, calibration_samples=100))
    return save_run(result, out)


@pytest.fixture(scope="session")
def tflite_models(tmp_path_factory: pytest.TempPathFactory):
    """Tiny converted .tflite models by name (`tests/_inspect_models.py`): `.path(name)` converts on first use."""
    from tests._inspect_models import Models

    return Models(tmp_path_factory.mktemp("inspect-models"))


@pytest.fixture
def cli():
    """Invoke the edgepool CLI in-process; returns typer's Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from edgepool.cli.main import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


from tests._tflite_runtime_env import tflite_runtime_py  # noqa: E402, F401  (session fixture: tflite-runtime 2.14 venv)

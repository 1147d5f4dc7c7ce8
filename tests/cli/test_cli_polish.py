"""Everyday-use CLI polish: --debug anywhere, shell completion, instant `models`, progress for
export / verify, a readable verify table, shadow notices where a profile is used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgepool._paths import data_dir
from edgepool.errors import EdgepoolError

HEAVY = ("tensorflow", "tf_keras", "coremltools")
# Runs the real app in a fresh interpreter and reports, last on stderr, which heavy modules it loaded.
_RUN_APP = (
    "import sys\n"
    "from edgepool.cli.main import app\n"
    "try:\n"
    "    app(sys.argv[1:], prog_name='edgepool')\n"
    "finally:\n"
    f"    sys.stderr.write('\\nHEAVY=' + ','.join(sorted(set({HEAVY!r}) & set(sys.modules))))\n"
)


def run_app(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    p = subprocess.run([sys.executable, "-c", _RUN_APP, *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "80", **(env or {})}, timeout=120)
    heavy = p.stderr.rsplit("HEAVY=", 1)[-1].strip()
    return p, [m for m in heavy.split(",") if m]


def edgepool_script() -> str:
    script = shutil.which("edgepool", path=str(Path(sys.executable).parent))
    assert script, "the edgepool console script is not installed next to this interpreter"
    return script


# ------------------------------------------------------------------------------------- 14: --debug


def test_debug_after_the_subcommand(cli, tmp_path):
    with pytest.raises(EdgepoolError, match="not an edgepool export"):
        cli("verify", tmp_path, "--debug")
    with pytest.raises(EdgepoolError, match="unknown recipe"):
        cli("recipes", "show", "nope", "--debug")  # a command of a sub-app
    with pytest.raises(EdgepoolError, match="not an edgepool export"):
        cli("--debug", "verify", tmp_path)  # before the subcommand, as it always worked
    r = cli("verify", tmp_path)  # the flag does not stick to later calls
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1


def test_debug_after_the_subcommand_prints_the_traceback(tmp_path):
    p = subprocess.run([edgepool_script(), "verify", str(tmp_path), "--debug"], capture_output=True, text=True, timeout=120)
    assert "Traceback" in p.stderr and "not an edgepool export" in p.stderr, p.stderr
    p = subprocess.run([edgepool_script(), "verify", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------------- 19: completion


def test_show_completion_prints_a_script_for_the_named_shell():
    for shell, marker in (("bash", "complete -o default -F _edgepool_completion edgepool"), ("zsh", "compdef"),
                          ("fish", "complete --command edgepool")):
        p, heavy = run_app("--show-completion", shell)
        assert p.returncode == 0, p.stderr
        assert marker in p.stdout and "_EDGEPOOL_COMPLETE" in p.stdout, (shell, p.stdout)
        assert heavy == []


def test_show_completion_without_a_shell_detects_it(monkeypatch):
    import typer.completion

    from edgepool.cli import main

    monkeypatch.setattr(typer.completion, "_get_shell_name", lambda: None)  # no shell among the parents
    monkeypatch.setenv("SHELL", "/usr/bin/zsh")
    assert main._detect_shell() == "zsh"
    monkeypatch.setenv("SHELL", "")
    assert main._detect_shell() is None
    p = subprocess.run([edgepool_script(), "--show-completion"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "SHELL": "/bin/bash"})
    assert p.returncode == 0 and "_EDGEPOOL_COMPLETE" in p.stdout, p.stderr


def test_completion_of_command_names_through_the_env_var():
    for instruction in ("bash_complete", "complete_bash"):  # click's spelling and Typer's own script's
        env = {**os.environ, "_EDGEPOOL_COMPLETE": instruction, "COMP_WORDS": "edgepool ex", "COMP_CWORD": "1"}
        p = subprocess.run([edgepool_script()], capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "export" in p.stdout.split() and "train" not in p.stdout, (instruction, p.stdout)
    env = {**os.environ, "_EDGEPOOL_COMPLETE": "complete_bash", "COMP_WORDS": "edgepool profiles ", "COMP_CWORD": "2"}
    p = subprocess.run([edgepool_script()], capture_output=True, text=True, env=env, timeout=120)
    assert {"list", "show", "validate"} <= set(p.stdout.split()), p.stdout


def test_install_completion_writes_the_script(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    p = subprocess.run([edgepool_script(), "--install-completion", "bash"], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    script = tmp_path / ".bash_completions" / "edgepool.sh"
    assert script.is_file() and "_EDGEPOOL_COMPLETE" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()


def test_help_lists_completion_briefly_and_loads_no_tensorflow():
    p, heavy = run_app("--help")
    assert p.returncode == 0 and heavy == []
    lines = p.stdout.splitlines()
    for flag in ("--install-completion", "--show-completion"):
        i = next(i for i, line in enumerate(lines) if flag in line)
        assert "[SHELL]" in lines[i]
        assert lines[i + 1].strip("│ ").startswith("--"), f"{flag}'s help wraps:\n{p.stdout}"  # one line each
    assert "customize the installation" not in p.stdout


# ------------------------------------------------------------------------------------ 16: models


def test_models_loads_no_tensorflow_and_is_quick():
    t0 = time.perf_counter()
    p, heavy = run_app("models", "--json")
    seconds = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    assert heavy == [], f"`edgepool models` imported {heavy} ({seconds:.1f} s)"
    rows = {m["name"]: m for m in json.loads(p.stdout)["models"]}
    assert (rows["tiny"]["params"], rows["tiny"]["macs"]) == (9_170, 290_080)  # what Keras counts for 28x28x1
    assert (rows["small-ds"]["params"], rows["small-ds"]["macs"]) == (13_834, 366_176)
    p, heavy = run_app("models", "--input", "32x32x3", "--classes", "5")
    assert p.returncode == 0 and heavy == [] and "32x32x3" in p.stdout


# ---------------------------------------------------------------------------- 17 + 15: verify


@pytest.fixture(scope="module")
def float_export(tiny_run, tmp_path_factory):
    """A float32 export of a copy of the tiny run (its own folder: tests may re-verify it)."""
    from edgepool import pipeline
    from edgepool.recipes import load_recipe
    from edgepool.runs import load_run

    dst = tmp_path_factory.mktemp("polish") / "run"
    shutil.copytree(tiny_run.path, dst)
    outcome = pipeline.export(load_run(dst), load_recipe("float32"))
    assert outcome.export is not None and outcome.status.ok
    return outcome.export.path


def test_pipeline_verify_reports_progress(float_export):
    from edgepool import pipeline
    from edgepool.types import Status

    events = []
    export, v = pipeline.verify(float_export, progress=events.append)
    assert v.status == Status.PASS and export.path == float_export
    assert {e.stage for e in events} == {"verify"}
    assert [e.done for e in events] == sorted(e.done for e in events) and events[0].done == 0
    assert events[-1].done == events[-1].total and len(events) >= 3
    said = " ".join(e.message for e in events)
    assert "reference" in said and "test split" in said


def test_verify_and_export_show_progress_on_stderr(cli, float_export, tmp_path):
    r = cli("verify", float_export)
    assert r.exit_code == 0, r.output
    assert "verify" in r.stderr and "3/3" in r.stderr, r.stderr
    assert "verification of" in r.stdout and "100.00%" in r.stdout
    r = cli("verify", float_export, "--json")
    assert r.exit_code == 0 and r.stderr == "" and json.loads(r.stdout)["status"] == "pass"
    r = cli("verify", tmp_path)  # an error once the bar has started: still one line, no bar
    assert r.exit_code == 2 and r.stderr.strip().splitlines() == [ln for ln in r.stderr.splitlines() if "error:" in ln]
    run_dir = float_export.parent.parent
    r = cli("export", run_dir, "--recipe", "float32", "--out", tmp_path / "again")
    assert r.exit_code == 0, r.output
    assert "export" in r.stderr and "3/3" in r.stderr, r.stderr  # loading, converting, verifying, done


def _table(v, capsys) -> str:
    from edgepool.cli import verify as verify_cli

    verify_cli._render(Path("exports/coreml-fp16"), v)
    return capsys.readouterr().out


def test_verify_table_shows_percentages_pp_and_readable_criteria(capsys, monkeypatch):
    from edgepool.types import Status, Verification

    monkeypatch.setenv("COLUMNS", "200")
    v = Verification(Status.FAIL, "accuracy drop 2.50 pp > 2.00 pp", "use coreml-fp16", {
        "executor": "numpy-mil", "accuracy": 0.9632, "keras_accuracy": 0.9882, "reference_accuracy": 0.9882,
        "accuracy_delta_pp": -2.5, "agreement": 0.9711, "max_abs_diff": 0.0123, "max_rel_diff": None,
        "atol": None, "rtol": None, "compared": "logits", "samples": 1797,
        "criteria": {"atol": None, "rtol": None, "min_agreement": 0.98, "max_accuracy_drop": 0.02},
    })
    out = _table(v, capsys)
    assert "96.32%" in out and "98.82%" in out and "97.11%" in out and "-2.50 pp" in out
    assert "min agreement 98.00%" in out and "max accuracy drop 2.00 pp" in out
    assert "1,797" in out
    for raw in ("0.9632", "0.98,", "0.02", "None", "{", "=", "pp pp", "_"):
        assert raw not in out, (raw, out)
    assert out.count("98.82%") == 1  # keras_accuracy and reference_accuracy are the same figure: shown once
    # a TFLite record: the criterion is a sentence, kept as it is
    v = Verification(Status.PASS, details={"executor": "litert-interpreter (child process)", "accuracy": 0.5,
                                           "reference_accuracy": 0.5, "agreement": 1.0, "accuracy_delta_pp": 0.0,
                                           "nonfinite_outputs": 0,
                                           "criterion": "agreement >= 0.990 and accuracy drop <= 1.0 pp"})
    out = _table(v, capsys)
    assert "50.00%" in out and "100.00%" in out and "+0.00 pp" in out and "agreement >= 0.990" in out


# -------------------------------------------------------------------- 12: shadowing user profiles


@pytest.fixture
def shadowing_profile(tmp_path, monkeypatch):
    user = tmp_path / "profiles"
    user.mkdir()
    (user / "raspberry-pi-4.toml").write_text((data_dir("device_profiles") / "raspberry-pi-4.toml").read_text())
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("EDGEPOOL_PROFILE_PATH", str(user))
    return f"notice: profile raspberry-pi-4 from {user / 'raspberry-pi-4.toml'} shadows the built-in one"


@pytest.mark.parametrize("command", ["estimate", "inspect"])
def test_estimate_and_inspect_announce_a_shadowing_profile(cli, tflite_models, shadowing_profile, command):
    model = tflite_models.path("mixed")
    r = cli(command, model, "--profile", "raspberry-pi-4")
    assert r.exit_code == 0, r.output
    assert shadowing_profile in r.stderr.replace("\n", "")
    r = cli(command, model, "--profile", "raspberry-pi-4", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) and shadowing_profile in r.stderr.replace("\n", "")
    r = cli(command, model, "--profile", "raspberry-pi-5")  # a built-in no user file hides: no notice
    assert r.exit_code == 0 and "notice:" not in r.stderr

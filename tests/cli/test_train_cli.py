"""`edgepool train`: option ranges, what it says about the data, replacing a run, Ctrl-C and --resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgepool import runs

TINY = ("--data", "digits", "--model", "tiny")


@pytest.mark.parametrize(
    "args,message",
    [
        (("--width", "0"), "--width must be > 0 (got 0)"),
        (("--width", "9"), "--width must be <= 8 (got 9)"),
        (("--epochs", "0"), "--epochs must be >= 1 (got 0)"),
        (("--batch-size", "0"), "--batch-size must be >= 1 (got 0)"),
        (("--lr", "-1"), "--lr must be > 0 (got -1)"),
        (("--lr", "nan"), "--lr must be > 0 (got nan)"),
        (("--lr", "3"), "--lr must be <= 1 (got 3)"),
        (("--patience", "0"), "--patience must be >= 1 (got 0)"),
        (("--seed", "-1"), "--seed must be >= 0 (got -1)"),
        (("--image-size", "0"), "--image-size must be 1..4096 pixels a side (got 0x0)"),
        (("--image-size", "8x5000"), "--image-size must be 1..4096 pixels a side (got 8x5000)"),
        (("--image-size", "big"), "--image-size 'big' is not a size"),
        (("--channels", "2"), "--channels must be 1 or 3 (got 2)"),
    ],
)
def test_every_numeric_option_is_range_checked(cli, tmp_path, args, message):
    out = tmp_path / "run"
    r = cli("train", *TINY, "--epochs", "1", *args, "--out", out)
    assert r.exit_code == 2, r.output
    assert message in r.stderr and "hint:" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()


def test_image_size_n_is_stated_as_nxn(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("train", *TINY, "--epochs", "1", "--image-size", "16", "--out", out)
    assert r.exit_code == 0, r.output
    assert "resizing images from 8x8 to 16x16" in r.stderr
    m = json.loads((out / runs.MANIFEST).read_text())
    assert m["input"]["height"] == m["input"]["width"] == 16
    assert m["data"]["notes"] == ["resizing images from 8x8 to 16x16 (asked for; bilinear)"]


def test_params_and_macs_have_thousands_separators(cli, tmp_path):
    out = tmp_path / "run"
    r = cli("train", *TINY, "--epochs", "1", "--out", out)
    assert r.exit_code == 0, r.output
    m = json.loads((out / runs.MANIFEST).read_text())
    assert m["model"]["params"] >= 1000 and m["model"]["macs"] >= 1000
    assert re.search(r"params\W+" + re.escape(f"{m['model']['params']:,}") + r"\W", r.stdout), r.stdout
    assert re.search(r"macs\W+" + re.escape(f"{m['model']['macs']:,}") + r"\W", r.stdout), r.stdout


def _images(root: Path, per_class: dict[str, list[tuple[str, tuple[int, int]]]]) -> Path:
    for cls, specs in per_class.items():
        (root / cls).mkdir(parents=True)
        for i, (mode, size) in enumerate(specs):
            Image.new(mode, size, (40 * i % 255, 90, 10) if mode == "RGB" else 40 * i % 255).save(root / cls / f"{i}.png")
    return root


def test_mixed_images_and_skipped_files_are_named(cli, tmp_path):
    mix = [("L", (25, 25))] * 5 + [("RGB", (50, 50))] * 5
    root = _images(tmp_path / "imgs", {"a": mix, "b": mix})
    for name in ("a/bad1.png", "b/bad2.png", "b/bad3.png"):
        (root / name).write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    r = cli("train", "--data", root, "--model", "tiny", "--epochs", "1", "--out", tmp_path / "run")
    assert r.exit_code == 2 and "cannot read 3 images: a/bad1.png" in r.stderr and "b/bad3.png" in r.stderr
    r = cli("train", "--data", root, "--model", "tiny", "--epochs", "1", "--skip-bad", "--out", tmp_path / "run")
    assert r.exit_code == 0, r.output
    err = " ".join(r.stderr.split())
    assert "skipped 3 unreadable images: a/bad1.png, b/bad2.png, b/bad3.png" in err, err
    assert "images differ in size (25x25: 10, 50x50: 10): resized to 25x25" in err
    assert "channels: 3 (RGB, because 10 of 20 images are in colour)" in err
    m = json.loads((tmp_path / "run" / runs.MANIFEST).read_text())
    assert any("resized to 25x25" in n for n in m["data"]["notes"]) and len(m["data"]["skipped"]) == 3
    assert m["input"]["height"] == 25 and m["input"]["channels"] == 3


def test_force_says_what_it_replaces_and_keeps_benchmarks(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", *TINY, "--epochs", "1", "--out", out).exit_code == 0
    for name in ("int8", "coral-usb"):
        (out / "exports" / name).mkdir(parents=True)
        (out / "exports" / name / "model.json").write_text("{}")
    (out / "qat" / "int8-qat").mkdir(parents=True)
    (out / "qat" / "int8-qat" / "qat.json").write_text("{}")
    (out / "benchmarks").mkdir()
    for i in range(3):
        (out / "benchmarks" / f"b{i}.json").write_text("{}")
    (out / "notes.md").write_text("mine")
    r = cli("train", *TINY, "--epochs", "1", "--seed", "1", "--out", out, "--force", "--json")
    assert r.exit_code == 0, r.output
    err = " ".join(r.stderr.split())
    assert (f"replacing run {out}: removing the model, 2 exports (coral-usb, int8) and 1 QAT model (int8-qat); "
            "keeping 3 benchmark results and 1 other file (notes.md)") in err, err
    summary = json.loads(r.stdout)
    assert summary["replaced"]["removed"] == {"exports": ["coral-usb", "int8"], "qat": ["int8-qat"]}
    assert sorted(p.name for p in (out / "benchmarks").iterdir()) == ["b0.json", "b1.json", "b2.json"]
    assert (out / "notes.md").read_text() == "mine" and not (out / "exports").exists() and not (out / "qat").exists()
    assert json.loads((out / runs.MANIFEST).read_text())["training"]["seed"] == 1


def test_force_never_replaces_a_folder_that_is_not_a_run(cli, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.tex").write_text("years of work")
    r = cli("train", *TINY, "--epochs", "1", "--out", docs, "--force")
    assert r.exit_code == 2 and "not an edgepool run" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
    assert (docs / "thesis.tex").read_text() == "years of work"


def _interrupting_train_run(monkeypatch, after: int) -> None:
    """Make the CLI's training see a Ctrl-C once `after` epochs are done (as if the user pressed it)."""
    from edgepool import pipeline

    real = pipeline.train_run

    def train_run(*a, progress=None, **k):
        def cb(ev):
            if progress:
                progress(ev)
            if ev.done == after:
                raise KeyboardInterrupt

        return real(*a, progress=cb, **k)

    monkeypatch.setattr(pipeline, "train_run", train_run)


def test_ctrl_c_keeps_the_run_and_resume_finishes_it(cli, tmp_path, monkeypatch):
    out = tmp_path / "run"
    with monkeypatch.context() as mp:
        _interrupting_train_run(mp, 2)
        r = cli("train", *TINY, "--epochs", "4", "--out", out)
    assert r.exit_code == 130, r.output
    m = json.loads((out / runs.MANIFEST).read_text())
    k = m["training"]["best_epoch"]
    assert m["training"]["interrupted"] is True and m["training"]["epochs_run"] == 2
    err = " ".join(r.stderr.split())
    assert f"interrupted after 2 epochs: kept the best weights (epoch {k}) in {out}; `edgepool train --resume {out}` continues" in err

    r = cli("train", "--resume", out, "--lr", "0.1")
    assert r.exit_code == 2 and "--lr" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
    r = cli("train", "--resume", out, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["epochs_run"] == 4 and summary["interrupted"] is False and summary["run"] == str(out)
    m = json.loads((out / runs.MANIFEST).read_text())
    assert m["training"]["resumed_at_epochs"] == [2] and len(json.loads((out / runs.HISTORY).read_text())["loss"]) == 4
    r = cli("train", "--resume", out)
    assert r.exit_code == 2 and "was not interrupted" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
    r = cli("train", "--resume", tmp_path / "nope")
    assert r.exit_code == 2 and "does not exist" in r.stderr


_DRIVER = """
import sys
from pathlib import Path
from edgepool import pipeline
real, marker = pipeline.train_run, Path(sys.argv[1])
def train_run(*a, progress=None, **k):
    def cb(ev):
        if progress:
            progress(ev)
        marker.write_text(str(ev.done))  # tells the test how far training got
    return real(*a, progress=cb, **k)
pipeline.train_run = train_run
from edgepool.cli.main import app
sys.exit(app(sys.argv[2:], standalone_mode=True, prog_name="edgepool") or 0)
"""


@pytest.mark.slow
def test_sigint_during_training_keeps_a_resumable_run(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "epochs"
    cmd = [sys.executable, "-c", _DRIVER, str(marker), "train", "--data", "mnist-5k", "--model", "tiny",
           "--epochs", "200", "--patience", "200", "--out", str(out)]
    env = {**os.environ, "COLUMNS": "300"}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while not (marker.exists() and marker.read_text() and int(marker.read_text()) >= 2):
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "training did not reach epoch 2"
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, stderr
    m = json.loads((out / runs.MANIFEST).read_text())
    n, k = m["training"]["epochs_run"], m["training"]["best_epoch"]
    assert m["training"]["interrupted"] is True and 2 <= n < 200 and 1 <= k <= n
    assert f"interrupted after {n} epochs: kept the best weights (epoch {k}) in {out}" in " ".join(stderr.split()), stderr
    assert "Traceback" not in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epochs", "run"]  # no staging folder left
    x, y = np.load(out / runs.TEST_DATA)["x"], np.load(out / runs.TEST_DATA)["y"]
    assert len(x) == len(y) == 500

"""examples/raspberry-pi/classify.py on the emulated Raspberry Pi, against `edgepool predict`.

The script runs on the real aarch64 tflite-runtime 2.14 wheel (with numpy<2) inside the emulated Pi
(qemu-user chroot, reached over ssh), the way a Pi user runs it, on a real int8 export of the session's
tiny run. The image has no Pillow (as a fresh Raspberry Pi OS venv), so the images are binary PGM files at
the model's input size, which the script reads without Pillow; `edgepool predict` reads the same files
with Pillow on this machine. Classes must be identical and the probabilities equal to float rounding.
"""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests._example_exports import image_folder, tiny_export

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "raspberry-pi" / "classify.py"


@pytest.mark.slow
def test_pi_classifier_matches_predict(emulated_pi, tiny_run, tmp_path_factory):
    from edgepool.predict import predict

    export = tiny_export(tiny_run, "int8", tmp_path_factory.mktemp("pi-exports"))
    root, _, _ = image_folder(tiny_run, tmp_path_factory.mktemp("pi-images") / "digits", fmt="pgm")
    # a few images per class keep the emulated run short
    for d in root.iterdir():
        for f in sorted(d.iterdir())[4:]:
            f.unlink()
    host = predict(export.path, [root], top_k_classes=3)

    pillow = emulated_pi.ssh(emulated_pi.python, "-c", "import PIL")
    work = f"/tmp/edgepool-example-{secrets.token_hex(4)}"
    dest = emulated_pi.host_path(work)
    try:
        (dest / "export").mkdir(parents=True)
        shutil.copy(SCRIPT, dest / "classify.py")
        for name in ("model.tflite", "model.json"):
            shutil.copy(export.path / name, dest / "export" / name)
        shutil.copytree(root, dest / "digits")
        p = emulated_pi.ssh(emulated_pi.python, f"{work}/classify.py", f"{work}/export", f"{work}/digits", "--json",
                            timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        lines = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        # the lone .tflite carries its sidecar: the script reads it from the flatbuffer, without model.json
        one = emulated_pi.ssh(emulated_pi.python, f"{work}/classify.py", f"{work}/export/model.tflite",
                              f"{work}/digits/3", "--json", "--top-k", "1", timeout=300)
        assert one.returncode == 0, one.stderr[-2000:]
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    assert pillow.returncode != 0, "Pillow is in the emulated Pi: this test meant to cover the Pillow-free path"
    assert "tflite-runtime" not in p.stdout and len(lines) == len(host.predictions) == 40

    on_pi = {Path(r["path"]).relative_to(work + "/digits").as_posix(): r for r in lines}
    here = {Path(h.path).relative_to(root).as_posix(): h for h in host.predictions}
    i = {name: n for n, name in enumerate(here)}
    step = export.sidecar["output"]["scale"]
    assert on_pi.keys() == here.keys()
    for name, h in here.items():
        r = on_pi[name]
        assert [t["index"] for t in r["top"]] == [t["index"] for t in h.top], name
        assert r["label"] == h.label
        # the dequantized outputs: two runtime releases may round an int8 kernel differently, by one output step
        np.testing.assert_allclose(r["outputs"], host.scores[i[name]], rtol=0, atol=1.01 * step)
        np.testing.assert_allclose([t["score"] for t in r["top"]], [t["score"] for t in h.top], rtol=0.05)
    threes = [json.loads(line) for line in one.stdout.splitlines() if line.strip()]
    assert [r["index"] for r in threes] == [here[f"3/{Path(r['path']).name}"].top[0]["index"] for r in threes]

"""`edgepool predict`: an export run on image files with its own normalization and labels.

Real exports of the session's tiny run (int8 .tflite in LiteRT, a Core ML FP16 package in the NumPy MIL
executor), run on the run's test split written out as PNG files: predict's classes must be exactly the
classes verify's executors give on the same pixels, and its accuracy the accuracy verify recorded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgepool.errors import DataError, InputError, ModelError
from edgepool.predict import predict
from tests._example_exports import image_folder, tiny_export


@pytest.fixture(scope="module")
def images(tiny_run, tmp_path_factory):
    return image_folder(tiny_run, tmp_path_factory.mktemp("predict-images") / "digits")


@pytest.fixture(scope="module")
def exports(tiny_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("predict-exports")
    return {r: tiny_export(tiny_run, r, root) for r in ("int8", "coreml-fp16")}


def _by_file(res) -> dict[str, int]:
    return {p.path: p.top[0]["index"] for p in res.predictions}


@pytest.mark.slow
def test_predict_equals_verify_tflite(tiny_run, exports, images):
    """The same classes as verify's LiteRT run of the test split, and verify's recorded accuracy."""
    from edgepool.verify import run_tflite_child

    root, x, y = images
    export = exports["int8"]
    res = predict(export.path, [root], top_k_classes=3)
    assert res.executor.startswith("litert-interpreter") and res.format == "tflite"
    assert len(res.predictions) == len(y)
    verify_pred = run_tflite_child(export.verify_file, tiny_run.normalize(x)).argmax(1)
    assert np.array_equal(res.indices, verify_pred)
    assert res.accuracy == pytest.approx(export.verification()["accuracy"], abs=1e-12)
    assert all(p.expected == tiny_run.labels[int(t)] for p, t in zip(res.predictions, y, strict=True))
    top = res.predictions[0].top
    assert len(top) == 3 and top[0]["score"] >= top[1]["score"] >= top[2]["score"]


@pytest.mark.slow
def test_predict_equals_verify_coreml(tiny_run, exports, images):
    """A Core ML package: the MIL executor's classes, as verify_coreml gets them, and verify's accuracy."""
    from edgepool.verify.coreml import mil_scores

    root, x, y = images
    export = exports["coreml-fp16"]
    res = predict(export.path / "model.mlpackage", [root], top_k_classes=1)
    assert res.executor == "numpy-mil" and res.format == "coreml"
    scores, _ = mil_scores(export.model_file, x)
    assert np.array_equal(res.indices, scores.argmax(1))
    assert res.accuracy == pytest.approx(export.verification()["accuracy"], abs=1e-12)
    assert any("NumPy MIL executor" in n for n in res.notes)


@pytest.mark.slow
def test_cli_predict(cli, exports, images, tmp_path):
    """The command: --json holds every image with its top-k; the table names the model and the accuracy."""
    root, x, y = images
    export = exports["int8"]
    files = sorted((root / "3").iterdir())[:2]
    r = cli("predict", export.path, *files, "--json", "--top-k", "2")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [p["path"] for p in doc["predictions"]] == [str(f) for f in files]
    assert all(len(p["top"]) == 2 for p in doc["predictions"]) and doc["accuracy"] is None  # named files: no folder class
    assert doc["input"] == {"height": 8, "width": 8, "channels": 1, "dtype": "int8", "resize": "bilinear",
                            "sidecar": "model.json", "normalization": {"scale": pytest.approx(1 / 255), "offset": 0.0}}
    r = cli("predict", export.path, root)
    assert r.exit_code == 0
    assert "model.tflite" in r.stdout and f"of {len(y)} images" in r.stdout

    # a lone .tflite (copied out of its folder) still carries its sidecar: same classes
    lone = tmp_path / "lone.tflite"
    lone.write_bytes(export.model_file.read_bytes())
    a, b = predict(lone, files), predict(export.path, files)
    assert a.input["sidecar"] == "embedded metadata" and np.array_equal(a.indices, b.indices)


def test_predict_reads_images_like_training(tmp_path):
    """16-bit, RGBA and larger images go through the image-folder preprocessing (datasets._to_array)."""
    from PIL import Image

    from edgepool.datasets import load_dataset

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "set" / c).mkdir(parents=True)
    for i in range(3):
        Image.fromarray((rng.integers(0, 65535, (16, 16))).astype(np.uint16)).save(tmp_path / "set" / "a" / f"wide{i}.png")
        Image.fromarray(rng.integers(0, 255, (12, 12, 4)).astype(np.uint8), "RGBA").save(tmp_path / "set" / "b" / f"alpha{i}.png")
        Image.fromarray(rng.integers(0, 255, (8, 8, 3)).astype(np.uint8)).save(tmp_path / "set" / "b" / f"rgb{i}.png")
    # what training would feed (grayscale, 8x8), run through the same export
    ds = load_dataset(tmp_path / "set", channels=1, image_size=(8, 8))
    from edgepool.predict import load_images

    files = sorted((tmp_path / "set").rglob("*.png"))
    assert np.array_equal(load_images(files, (8, 8), 1), ds.x)


def test_predict_errors(tmp_path):
    """A missing image, an unreadable one, a folder without images, no export: one clear error each."""
    from edgepool.predict import image_files, load_images, open_export

    with pytest.raises(InputError, match="does not exist"):
        image_files([tmp_path / "nope.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        image_files([tmp_path / "empty"])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read 1 image: .*bad.png"):
        load_images([bad], (8, 8), 1)
    with pytest.raises(ModelError, match="not an edgepool export"):
        open_export(tmp_path / "empty")
    (tmp_path / "x.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError):
        open_export(tmp_path / "x.tflite")

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgepool.datasets import load_dataset, split
from edgepool.errors import DataError


def test_builtin_digits_and_mnist():
    d = load_dataset("digits")
    assert d.x.shape == (1797, 8, 8, 1) and d.x.dtype == np.uint8 and d.x.max() == 255
    assert d.labels == [str(i) for i in range(10)]
    m = load_dataset("mnist-5k")
    assert m.x.shape == (5000, 28, 28, 1) and np.bincount(m.y).tolist() == [500] * 10


def _folder(root: Path, classes: dict[str, list[Image.Image]]) -> Path:
    for name, imgs in classes.items():
        (root / name).mkdir(parents=True)
        for i, im in enumerate(imgs):
            im.save(root / name / f"{i}.png")
    return root


def _imgs(mode: str, n: int, size=(12, 10), value=100):
    out = []
    for i in range(n):
        if mode == "I;16":
            a = np.full(size[::-1], 256 * (value + i), np.uint16)
            out.append(Image.fromarray(a))
        elif mode == "P":
            out.append(Image.new("RGB", size, (value + i, 0, 0)).convert("P"))
        else:
            color = {"L": value + i, "RGB": (value + i, 10, 20), "RGBA": (value + i, 10, 20, 255)}[mode]
            out.append(Image.new(mode, size, color))
    return out


def test_image_folder_modes_sizes_and_channels(tmp_path):
    root = _folder(tmp_path / "d", {"a": _imgs("L", 3) + _imgs("I;16", 2), "b": _imgs("RGB", 2) + _imgs("RGBA", 2) + _imgs("P", 2, size=(20, 20))})
    ds = load_dataset(root)
    assert ds.labels == ["a", "b"]
    assert ds.x.shape == (11, 10, 12, 3)  # colour images present -> 3 channels; most common size 12x10 (WxH)
    assert ds.source["resize_method"] == "bilinear"
    gray = load_dataset(root, channels=1, image_size=(8, 8))
    assert gray.x.shape == (11, 8, 8, 1)
    # 16-bit 256*(100) maps to 100 in 8 bits
    assert abs(int(gray.x[ds.y == 0][3].mean()) - 100) <= 1


def test_corrupt_image_named_or_skipped(tmp_path):
    root = _folder(tmp_path / "d", {"a": _imgs("L", 3), "b": _imgs("L", 3)})
    bad = root / "b" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(root)
    ds = load_dataset(root, skip_bad=True)
    assert len(ds.y) == 6 and ds.source["skipped"][0]["path"].endswith("broken.png")


@pytest.mark.parametrize(
    "layout,match",
    [
        ({"a": 3, "b": 0}, "has no images"),
        ({"a": 3}, "single class"),
        ({}, "no class sub-folders"),
        ({"a": 3, "b": 2}, "needs at least 3"),
    ],
)
def test_image_folder_errors(tmp_path, layout, match):
    root = tmp_path / "d"
    root.mkdir()
    for name, n in layout.items():
        (root / name).mkdir()
        for i, im in enumerate(_imgs("L", n)):
            im.save(root / name / f"{i}.png")
    with pytest.raises(DataError, match=match):
        load_dataset(root)


def test_npz(tmp_path):
    p = tmp_path / "a.npz"
    x = np.random.default_rng(0).random((12, 6, 6)).astype(np.float32)
    np.savez(p, x=x, y=np.arange(12) % 3, labels=np.array(["cat", "dog", "owl"]))
    ds = load_dataset(p)
    assert ds.x.shape == (12, 6, 6, 1) and ds.x.dtype == np.uint8 and ds.labels == ["cat", "dog", "owl"]
    np.savez(p, x=x)
    with pytest.raises(DataError, match="no array 'y'"):
        load_dataset(p)
    p.write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot be read"):
        load_dataset(p)


def test_unknown_source():
    with pytest.raises(DataError, match="neither a built-in"):
        load_dataset("no-such-data")


def test_split_is_deterministic_stratified_and_disjoint():
    ds = load_dataset("digits")
    a, b, c = split(ds, seed=3), split(ds, seed=3), split(ds, seed=4)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "val", "test"))
    assert not np.array_equal(a.test, c.test)
    allidx = np.concatenate([a.train, a.val, a.test])
    assert len(np.unique(allidx)) == len(allidx) == len(ds.y)
    frac = np.bincount(ds.y[a.test], minlength=10) / np.bincount(ds.y, minlength=10)
    assert np.all(np.abs(frac - 0.1) < 0.02)

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


def test_npz_with_nan_says_so_and_where(tmp_path):
    p = tmp_path / "nan.npz"
    x = np.random.default_rng(0).random((20, 6, 6, 1)).astype(np.float32)
    x[12, 4, 5, 0] = np.nan
    x[13, 0, 0, 0] = np.inf
    x[19, 1, 2, 0] = -np.inf
    np.savez(p, x=x, y=np.arange(20) % 2)
    with pytest.raises(DataError, match=r"x holds 3 NaN/Inf values \(first at index \[12, 4, 5, 0\]\)") as e:
        load_dataset(p)
    assert "[0, 1]" not in e.value.message
    # out of range (but finite) values are named with where the first one is, too
    x = np.random.default_rng(0).random((20, 6, 6)).astype(np.float32)
    x[3, 2, 1] = 1.5
    np.savez(p, x=x, y=np.arange(20) % 2)
    with pytest.raises(DataError, match=r"float x must lie in \[0, 1\]: 1 value outside \(first 1\.5 at index \[3, 2, 1, 0\]\)"):
        load_dataset(p)


def _broken(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")


def test_every_unreadable_image_is_named(tmp_path):
    root = _folder(tmp_path / "d", {"a": _imgs("L", 3), "b": _imgs("L", 3)})
    for name in ("a/x.png", "b/y.png", "b/z.png"):
        _broken(root / name)
    with pytest.raises(DataError) as e:
        load_dataset(root)
    msg = e.value.message
    assert msg.startswith("cannot read 3 images: ") and "more" not in msg
    assert all(name in msg for name in ("a/x.png", "b/y.png", "b/z.png")), msg
    assert "\n" not in msg and str(root) not in msg.split(": ", 1)[1]  # paths relative to the folder: one short line
    ds = load_dataset(root, skip_bad=True)
    assert [s["path"] for s in ds.source["skipped"]] == [str(root / n) for n in ("a/x.png", "b/y.png", "b/z.png")]


def test_many_unreadable_images_are_named_up_to_a_limit(tmp_path):
    from edgepool.datasets import NAMED_FILES_LIMIT

    root = _folder(tmp_path / "d", {"a": _imgs("L", 3), "b": _imgs("L", 3)})
    n = NAMED_FILES_LIMIT + 4
    for i in range(n):
        _broken(root / "a" / f"bad{i:02d}.png")
    with pytest.raises(DataError) as e:
        load_dataset(root)
    msg = e.value.message
    assert msg.startswith(f"cannot read {n} images: ") and msg.count("bad") == NAMED_FILES_LIMIT
    assert msg.endswith("and 4 more") and "listed in the manifest" in e.value.hint


def test_mixed_sizes_and_channels_are_stated(tmp_path):
    small_gray = _imgs("L", 5, size=(25, 25))
    big_rgb = _imgs("RGB", 5, size=(50, 50))
    root = _folder(tmp_path / "d", {"a": small_gray + big_rgb, "b": _imgs("L", 5, size=(25, 25)) + _imgs("RGB", 5, size=(50, 50))})
    ds = load_dataset(root)
    assert ds.x.shape == (20, 25, 25, 3)
    notes = ds.source["notes"]
    assert "images differ in size (25x25: 10, 50x50: 10): resized to 25x25, the smallest of the most common sizes" in notes
    assert "channels: 3 (RGB, because 10 of 20 images are in colour)" in notes
    assert ds.describe()["notes"] == notes  # recorded in the manifest's data section
    # uniform images: nothing worth saying
    plain = load_dataset(_folder(tmp_path / "p", {"a": _imgs("L", 3), "b": _imgs("L", 3)}))
    assert plain.source["notes"] == []
    # a most common size wins over the others, and asked-for sizes and channels are stated as such
    root3 = _folder(tmp_path / "m", {"a": _imgs("L", 4, size=(30, 20)), "b": _imgs("L", 3, size=(30, 20)) + _imgs("L", 1, size=(8, 8))})
    assert "images differ in size (20x30: 7, 8x8: 1): resized to 20x30, the most common size" in load_dataset(root3).source["notes"]
    asked = load_dataset(root3, image_size=(16, 16), channels=3).source["notes"]
    assert "resizing images to 16x16 (asked for; bilinear)" in asked and "channels: 3 (RGB, asked for)" in asked


def test_builtin_resize_and_channel_conversion_are_stated():
    ds = load_dataset("digits", image_size=(32, 32), channels=3)
    assert ds.x.shape == (1797, 32, 32, 3)
    assert ds.source["notes"] == ["converting grayscale images to 3 channels (asked for)", "resizing images from 8x8 to 32x32 (asked for; bilinear)"]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"channels": 2}, r"channels must be 1 or 3 \(got 2\)"),
        ({"image_size": (0, 8)}, r"image size must be 1\.\.4096 pixels a side \(got 0x8\)"),
        ({"image_size": (8, 5000)}, r"image size must be 1\.\.4096 pixels a side \(got 8x5000\)"),
    ],
)
def test_load_options_are_range_checked(kwargs, match):
    with pytest.raises(DataError, match=match):
        load_dataset("digits", **kwargs)

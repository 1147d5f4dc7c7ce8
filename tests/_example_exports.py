"""Real exports of the session's `tiny_run` for the predict, schema and example tests, made once per session.

`tiny_run` is read-only, so the exports go to their own folder (`pipeline.export(..., out=...)`), verified
as `edgepool export` verifies them (their verify.json is written). `image_folder` writes the run's test
split as PNG files in class sub-folders: the same pixels verify used, as image files an app would get.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_CACHE: dict[tuple[str, str], object] = {}


def tiny_export(run, recipe: str, root: Path):
    """The `recipe` export of `run` (an edgepool.runs.Export), made on first use under `root`."""
    key = (str(run.path), recipe)
    if key not in _CACHE:
        from edgepool.pipeline import export
        from edgepool.recipes import load_recipe

        out = export(run, load_recipe(recipe), out=Path(root) / f"{run.path.name}-{recipe}")
        assert out.export is not None, out
        _CACHE[key] = out.export
    return _CACHE[key]


def image_folder(run, root: Path, fmt: str = "png") -> tuple[Path, np.ndarray, np.ndarray]:
    """The run's test split as images `root/<label>/<i>.<fmt>` (8-bit; binary PGM/PPM for "pgm");
    returns (root, x_raw, y) in the order the files sort in."""
    from PIL import Image

    x, y = run.test_data()
    labels = run.labels
    files = []
    for i, (a, label) in enumerate(zip(x, y, strict=True)):
        d = Path(root) / labels[int(label)]
        d.mkdir(parents=True, exist_ok=True)
        f = d / f"{i:04d}.{fmt}"
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(f)
        files.append(f)
    order = sorted(range(len(files)), key=lambda i: str(files[i]))
    return Path(root), x[order], y[order]

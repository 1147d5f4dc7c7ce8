"""A small segmentation model: encoder with max pooling + indices, decoder with max unpooling.

The data is generated here: 30x30 grayscale images (an odd size on purpose: 30 -> 15 -> 8 and back)
holding a filled rectangle and a filled disc on a noisy background; the labels are per-pixel
(0 background, 1 rectangle, 2 disc). Trains `edgepool.models.build_segmentation_model` (SegNet
style: `MaxPoolingWithIndices2D` in the encoder, `MaxUnpooling2D` in the decoder), reports pixel
accuracy and per-class IoU, then converts it to a float .tflite (builtin ops only, no custom op) and
checks that LiteRT gives the Keras outputs.

    .venv/bin/python examples/pooling/segmentation.py [--epochs 6] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SIZE = 30
CLASSES = ["background", "rectangle", "disc"]


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, SIZE, SIZE, 1) float32 in [0, 1] and masks (n, SIZE, SIZE) int64."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    x = rng.normal(0.2, 0.08, size=(n, SIZE, SIZE)).astype(np.float32)
    y = np.zeros((n, SIZE, SIZE), np.int64)
    for i in range(n):
        h, w = rng.integers(5, 12, 2)
        top, left = rng.integers(0, SIZE - h), rng.integers(0, SIZE - w)
        rect = (yy >= top) & (yy < top + h) & (xx >= left) & (xx < left + w)
        r = rng.integers(3, 7)
        cy, cx = rng.integers(r, SIZE - r, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        x[i][rect] += rng.uniform(0.4, 0.7)
        x[i][disc] += rng.uniform(0.4, 0.7)
        y[i][rect], y[i][disc] = 1, 2  # the disc is drawn on top
    return np.clip(x, 0, 1)[..., None], y


def iou(pred: np.ndarray, y: np.ndarray, c: int) -> float:
    inter, union = np.sum((pred == c) & (y == c)), np.sum((pred == c) | (y == c))
    return float(inter / union) if union else 1.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--out", type=Path, default=None, help="folder to write model.tflite (float32) into")
    args = ap.parse_args(argv)

    from edgepool._tf import keras
    from edgepool.compat import run_tflite
    from edgepool.export.tflite import convert
    from edgepool.inspect.tflite import read_tflite
    from edgepool.models import build_segmentation_model
    from edgepool.recipes import load_recipe

    x_train, y_train = make_data(600, seed=1)
    x_test, y_test = make_data(100, seed=2)
    k = keras()
    model = build_segmentation_model((SIZE, SIZE, 1), len(CLASSES), seed=0)
    model.compile(optimizer=k.optimizers.Adam(3e-3), loss=k.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=16, verbose=0)
    logits = model.predict(x_test, verbose=0)
    pred = logits.argmax(-1)
    print(f"segmentation (encoder max pooling + indices, decoder unpooling): {model.count_params()} parameters")
    print(f"pixel accuracy {np.mean(pred == y_test):.3f}; IoU " +
          ", ".join(f"{c} {iou(pred, y_test, i):.3f}" for i, c in enumerate(CLASSES)))

    tflite = convert(model, load_recipe("float32"), None)
    ops = sorted({op.name for op in read_tflite(tflite).main.ops})
    out = run_tflite(tflite, x_test)
    diff = float(np.max(np.abs(out - logits)))
    agree = float(np.mean(out.argmax(-1) == pred))
    print(f"float .tflite: {len(tflite)} bytes, ops {' '.join(ops)}")
    print(f"LiteRT vs Keras: max |diff| {diff:.2g}, per-pixel agreement {agree:.4f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "model.tflite").write_bytes(tflite)
        print(f"wrote {args.out / 'model.tflite'}")
    return 0 if agree > 0.999 else 1


if __name__ == "__main__":
    sys.exit(main())

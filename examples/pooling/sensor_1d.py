"""A 1D pooling model for sensor sequences, on accelerometer-like data this script generates.

Four activities, 3-axis signals of 128 samples at 50 Hz: still (noise), walking (~2 Hz sway),
running (~3 Hz, larger), jumping (periodic spikes). Trains `edgepool.models.build_sequence_model`
with the chosen 1D pooling, reports test accuracy, converts it to a full-int8 .tflite with
edgepool's exporter and checks the int8 model's accuracy in the LiteRT interpreter.

    .venv/bin/python examples/pooling/sensor_1d.py [--pool max|avg|l2|adaptive-max|attention] [--epochs 4] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

CLASSES = ["still", "walking", "running", "jumping"]
LENGTH, RATE = 128, 50.0


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n sequences (n, LENGTH, 3) float32 and their labels."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH) / RATE
    x = np.empty((n, LENGTH, 3), np.float32)
    y = rng.integers(0, len(CLASSES), n)
    for i, c in enumerate(y):
        phase = rng.uniform(0, 2 * np.pi, 3)
        noise = rng.normal(scale=0.15, size=(LENGTH, 3))
        if c == 0:
            sig = np.zeros((LENGTH, 3))
        elif c in (1, 2):
            f, amp = (rng.uniform(1.6, 2.4), 0.6) if c == 1 else (rng.uniform(2.6, 3.4), 1.4)
            sig = amp * np.sin(2 * np.pi * f * t[:, None] + phase) * rng.uniform(0.7, 1.3, 3)
        else:
            sig = np.zeros((LENGTH, 3))
            period = rng.integers(25, 40)
            for start in range(rng.integers(0, period), LENGTH, period):
                sig[start:start + 4, 2] += 3.0 * rng.uniform(0.8, 1.2)
        x[i] = sig + noise
    return x, y.astype(np.int64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", default="max", help="max | avg | l2 | adaptive-max | attention")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None, help="folder to write model.tflite (int8) into")
    args = ap.parse_args(argv)

    from edgepool._tf import keras
    from edgepool.compat import run_tflite
    from edgepool.export.tflite import convert
    from edgepool.models import build_sequence_model
    from edgepool.recipes import load_recipe

    x_train, y_train = make_data(1200, seed=1)
    x_test, y_test = make_data(300, seed=2)
    k = keras()
    model = build_sequence_model(LENGTH, 3, len(CLASSES), pool=args.pool, seed=0)
    model.compile(optimizer=k.optimizers.Adam(3e-3),
                  loss=k.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    keras_acc = float(np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test))

    tflite = convert(model, load_recipe("int8"), x_train[:200])
    int8_acc = float(np.mean(run_tflite(tflite, x_test).argmax(1) == y_test))
    print(f"sensor 1D model, pool {args.pool}: {model.count_params()} parameters")
    print(f"Keras float accuracy {keras_acc:.3f}; int8 .tflite accuracy (LiteRT) {int8_acc:.3f}; {len(tflite)} bytes")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "model.tflite").write_bytes(tflite)
        print(f"wrote {args.out / 'model.tflite'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

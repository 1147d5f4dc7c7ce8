"""Real tiny .tflite models and a run directory for the benchmark tests (no exporter needed).

`make_digits_run(root)` trains a tiny tf_keras CNN on sklearn's 8x8 digits for a few epochs and writes
a run directory the way CONTRIBUTING.md lays it out::

    root/manifest.json  root/data/test.npz  root/exports/{float32,int8}/{model.tflite,model.json}

Returns a DigitsRun with the paths and the Keras model's own test accuracy (the reference the
on-device accuracy is checked against). Also makes a broken-file corpus.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NORM = {"scale": 1.0 / 255.0, "offset": 0.0}


@dataclass
class DigitsRun:
    path: Path
    float_export: Path
    int8_export: Path
    keras_accuracy: float
    n_test: int


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # raw uint8 NHWC
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
    cut = int(0.8 * len(x))
    return x[idx[:cut]], y[idx[:cut]], x[idx[cut:]], y[idx[cut:]]


def build_model(input_shape=(8, 8, 1), filters=8, classes=10):
    from edgepool._tf import keras

    k = keras()
    k.utils.set_random_seed(0)
    return k.Sequential(
        [
            k.layers.Input(input_shape),
            k.layers.Conv2D(filters, 3, padding="same", activation="relu"),
            k.layers.MaxPooling2D(2),
            k.layers.Flatten(),
            k.layers.Dense(classes, activation="softmax"),
        ]
    )


def build_big_model(size=96, channels=3, classes=10):
    """An untrained CNN that takes several milliseconds per invoke on a desktop core (harness peer checks)."""
    from edgepool._tf import keras

    k = keras()
    k.utils.set_random_seed(0)
    return k.Sequential(
        [
            k.layers.Input((size, size, channels)),
            k.layers.Conv2D(32, 3, padding="same", activation="relu"),
            k.layers.MaxPooling2D(2),
            k.layers.Conv2D(64, 3, padding="same", activation="relu"),
            k.layers.MaxPooling2D(2),
            k.layers.Conv2D(128, 3, padding="same", activation="relu"),
            k.layers.MaxPooling2D(2),
            k.layers.Conv2D(128, 3, padding="same", activation="relu"),
            k.layers.GlobalAveragePooling2D(),
            k.layers.Dense(classes, activation="softmax"),
        ]
    )


def to_tflite(model, calib_x: np.ndarray | None = None) -> bytes:
    """float32 .tflite, or full-integer int8 (int8 input and output) when calibration data is given."""
    from edgepool._tf import quiet_stderr, tf

    t = tf()
    conv = t.lite.TFLiteConverter.from_keras_model(model)
    if calib_x is not None:
        conv.optimizations = [t.lite.Optimize.DEFAULT]

        def rep():
            for i in range(min(len(calib_x), 200)):
                yield [calib_x[i : i + 1].astype(np.float32)]

        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = t.int8
        conv.inference_output_type = t.int8
    with quiet_stderr():
        return conv.convert()


def sidecar(tflite: bytes, recipe: str, labels: list[str]) -> dict:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tflite)

    def spec(d):
        s, zp = d["quantization"]
        return {"name": d["name"], "shape": [int(v) for v in d["shape"]], "dtype": d["dtype"].__name__,
                "scale": float(s) if s else None, "zero_point": int(zp) if s else None}

    return {
        "schema_version": 1, "format": "tflite", "file": "model.tflite", "recipe": recipe, "profile": None,
        "labels": labels, "input": spec(it.get_input_details()[0]), "output": spec(it.get_output_details()[0]),
        "normalization": dict(NORM), "source_run": None, "model_spec": {}, "edgepool_version": "0.1.0",
        "created": "2025-01-01T00:00:00Z",
    }


def write_export(run: Path, name: str, tflite: bytes, recipe: str, labels: list[str]) -> Path:
    d = run / "exports" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.tflite").write_bytes(tflite)
    (d / "model.json").write_text(json.dumps(sidecar(tflite, recipe, labels), indent=2))
    return d


def make_digits_run(root: Path, epochs: int = 8) -> DigitsRun:
    xtr, ytr, xte, yte = _digits()
    norm = lambda x: x.astype(np.float32) * np.float32(NORM["scale"]) + np.float32(NORM["offset"])  # noqa: E731
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(norm(xtr), ytr, epochs=epochs, batch_size=32, verbose=0)
    keras_acc = float(np.mean(np.argmax(model.predict(norm(xte), verbose=0), axis=1) == yte))
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    np.savez_compressed(root / "data" / "test.npz", x=xte, y=yte)
    labels = [str(i) for i in range(10)]
    (root / "manifest.json").write_text(json.dumps({
        "schema_version": 1, "input": {"height": 8, "width": 8, "channels": 1, **NORM},
        "data": {"labels": labels},
    }))
    f = write_export(root, "float32", to_tflite(model), "float32", labels)
    q = write_export(root, "int8", to_tflite(model, norm(xtr)), "int8", labels)
    return DigitsRun(root, f, q, keras_acc, len(yte))


def broken_corpus(good: bytes, out: Path) -> dict[str, Path]:
    """Files a user might pass by mistake: empty, 8 bytes, truncated, bit-flipped, random, text."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    flipped = bytearray(good)
    for pos in (4, 5, 6, 7, 8, 12, 16):  # file identifier and root table offsets
        flipped[pos] ^= 0xFF
    files = {
        "empty": b"",
        "eight-bytes": good[:8],
        "truncated": good[: len(good) // 3],
        "bit-flipped": bytes(flipped),
        "random": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text": b"this is not a model\n" * 20,
    }
    paths = {}
    for name, data in files.items():
        p = out / f"{name}.tflite"
        p.write_bytes(data)
        paths[name] = p
    return paths


def edgetpu_like(tflite: bytes) -> bytes:
    """The same model with its first op turned into `edgetpu-custom-op`: it needs the Edge TPU delegate."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    m = fu.read_model_from_bytearray(bytearray(tflite))
    code = m.operatorCodes[0]
    code.builtinCode = code.deprecatedBuiltinCode = 32  # BuiltinOperator.CUSTOM
    code.customCode = b"edgetpu-custom-op"
    return bytes(fu.convert_object_to_bytearray(m))


def nan_model_tflite() -> bytes:
    """A float model whose output is NaN for inputs below 10 (log of a negative number)."""
    from edgepool._tf import keras, tf

    k, t = keras(), tf()
    inp = k.layers.Input((4,))
    out = k.layers.Lambda(lambda x: t.math.log(x - 10.0))(inp)
    return to_tflite(k.Model(inp, out))


_CACHE: dict[str, object] = {}


def cached_digits_run() -> DigitsRun:
    """One digits run per test process (built in a temp folder), shared by the benchmark test modules."""
    import tempfile

    if "run" not in _CACHE:
        _CACHE["run"] = make_digits_run(Path(tempfile.mkdtemp(prefix="edgepool-bench-")) / "run")
    return _CACHE["run"]  # type: ignore[return-value]

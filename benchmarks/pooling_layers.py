"""What the pooling library's composite layers cost in TFLite, relative to a plain MAX_POOL_2D.

For one feature map (default 1x56x56x32, and 1x28x28x64) each layer is converted alone (float32 and
full int8, edgepool's exporter) and timed in the LiteRT interpreter on this host (1 thread, XNNPACK
as LiteRT applies it by default): median of 7 windows of `--invokes` invokes after a warm-up. The
table gives microseconds per invoke, the ratio to MAX_POOL_2D 2x2/2 on the same input in the same
precision, and the TFLite ops each layer lowers to.

    .venv/bin/python benchmarks/pooling_layers.py [--invokes 200] [--shapes 56x56x32,28x28x64]

Timings on a shared machine are noisy; re-run on a quiet one for the figures that matter.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def cases(h: int, w: int) -> list[tuple[str, Callable[[Any, Any], Any]]]:
    """(label, f(get, x) -> y) for a map of h x w."""

    def unpool(get: Any, x: Any) -> Any:
        pooled, idx = get("MaxPoolingWithIndices2D")(2)(x)
        return get("MaxUnpooling2D")(2, output_size=(h, w))([pooled, idx])

    def indices(get: Any, x: Any) -> Any:
        return get("MaxPoolingWithIndices2D")(2)(x)[1]

    return [
        ("MaxPooling2D 2x2/2 (baseline)", lambda g, x: g("MaxPooling2D")(2)(x)),
        ("AveragePooling2D 2x2/2", lambda g, x: g("AveragePooling2D")(2)(x)),
        ("L2Pooling2D 2x2/2", lambda g, x: g("L2Pooling2D")(2)(x)),
        (f"AdaptiveMaxPooling2D -> {h // 2}x{w // 2} (uniform bins)", lambda g, x: g("AdaptiveMaxPooling2D")((h // 2, w // 2))(x)),
        ("AdaptiveMaxPooling2D -> 7x7", lambda g, x: g("AdaptiveMaxPooling2D")(7)(x)),
        ("AdaptiveMaxPooling2D -> 5x5", lambda g, x: g("AdaptiveMaxPooling2D")(5)(x)),
        ("AdaptiveAveragePooling2D -> 5x5", lambda g, x: g("AdaptiveAveragePooling2D")(5)(x)),
        ("SpatialPyramidPooling2D 1,2,4", lambda g, x: g("SpatialPyramidPooling2D")((1, 2, 4))(x)),
        ("MaxPoolingWithIndices2D (indices out)", indices),
        ("MaxPoolingWithIndices2D + MaxUnpooling2D", unpool),
        ("StochasticPooling2D (inference)", lambda g, x: g("StochasticPooling2D")(2)(x)),
        ("AttentionPooling", lambda g, x: g("AttentionPooling")()(x)),
    ]


def build(f: Callable[[Any, Any], Any], shape: tuple[int, int, int]) -> Any:
    from edgepool import layers
    from edgepool._tf import keras

    k = keras()
    inp = k.Input(shape)
    model = k.Model(inp, f(layers.get, inp))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.3, size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def interpreter(model: bytes | None, x: np.ndarray) -> Any:
    """An interpreter holding `model` with `x` set, run once; None when it does not run."""
    from ai_edge_litert.interpreter import Interpreter

    if model is None:
        return None
    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    v = x
    if d["dtype"] == np.int8:
        s, z = d["quantization"]
        v = np.clip(np.round(x / s + z), -128, 127)
    it.set_tensor(d["index"], v.astype(d["dtype"]))
    try:
        for _ in range(20):  # warm-up
            it.invoke()
    except RuntimeError:  # e.g. int8 DIV by a zero that was epsilon in float
        return None
    return it


def time_all(its: list[Any], invokes: int, windows: int = 7) -> list[float]:
    """Median µs per invoke of each interpreter; windows are taken round-robin so drift in the
    machine's load touches every layer alike."""
    samples: list[list[float]] = [[] for _ in its]
    for _ in range(windows):
        for i, it in enumerate(its):
            if it is None:
                continue
            t = time.perf_counter()
            for _ in range(invokes):
                it.invoke()
            samples[i].append((time.perf_counter() - t) / invokes * 1e6)
    return [statistics.median(s) if s else float("nan") for s in samples]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--invokes", type=int, default=200)
    ap.add_argument("--shapes", default="56x56x32,28x28x64")
    args = ap.parse_args(argv)

    from edgepool._tf import quiet_stderr
    from edgepool.export.tflite import convert
    from edgepool.inspect.tflite import read_tflite
    from edgepool.recipes import load_recipe

    f32, i8 = load_recipe("float32"), load_recipe("int8")
    for spec in args.shapes.split(","):
        h, w, c = (int(v) for v in spec.split("x"))
        x = np.random.default_rng(1).normal(size=(1, h, w, c)).astype(np.float32)
        calib = np.random.default_rng(2).normal(size=(16, h, w, c)).astype(np.float32)
        print(f"\ninput 1x{h}x{w}x{c}; LiteRT interpreter, 1 thread; µs per invoke (median of 7 windows x {args.invokes})")
        print(f"{'layer':45s} {'float µs':>9s} {'x max':>6s} {'int8 µs':>9s} {'x max':>6s}  TFLite ops (float)")
        built = []
        for label, f in cases(h, w):
            model = build(f, (h, w, c))
            with quiet_stderr():
                fb = convert(model, f32, None)
                try:
                    ib: bytes | None = convert(model, i8, calib)
                except Exception:  # a layer without an int8 path: reported as such
                    ib = None
            ops: list[str] = []
            for op in read_tflite(fb).main.ops:
                if op.name not in ops:
                    ops.append(op.name)
            built.append((label, interpreter(fb, x), interpreter(ib, x), len(read_tflite(fb).main.ops), ops))
        t_f = time_all([b[1] for b in built], args.invokes)
        t_i = time_all([b[2] for b in built], args.invokes)
        for (label, _, it_i, n_ops, ops), tf_us, ti_us in zip(built, t_f, t_i, strict=True):
            int8 = f"{ti_us:9.1f} {ti_us / t_i[0]:6.2f}" if it_i is not None else f"{'fails':>9s} {'':6s}"
            print(f"{label:45s} {tf_us:9.1f} {tf_us / t_f[0]:6.2f} {int8}  {n_ops} ops: {' '.join(ops)}")
    print("\nRatios are to MaxPooling2D 2x2/2 on the same input in the same precision. The machine may be busy: "
          "re-run on a quiet one.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

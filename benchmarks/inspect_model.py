# Named inspect_model.py, not inspect.py: a script in this folder would shadow the stdlib `inspect` module.
"""Inspect targets, measured: `python benchmarks/inspect_model.py`.

1. MACs and parameters read from the int8 .tflite vs the Keras model's own counts, every zoo preset.
   Keras params are compared after BatchNorm folding (count_params - 4C per BN + C folded bias).
2. Planned arena vs the RSS growth of a fresh child process from interpreter creation to after the
   first invoke (LiteRT, builtin kernels without the default XNNPACK delegate, so the arena holds the
   activations), on a float model with several MB of activations.
3. Wall time of `inspect_model` on a ~1 MB model in a fresh subprocess, and whether tensorflow was imported.
"""

from __future__ import annotations

import sys

# this file is named like the stdlib `inspect`: keep its folder off sys.path so numpy/TF import the real one
sys.path[:] = [p for p in sys.path if p and __import__("os").path.abspath(p) != __import__("os").path.dirname(
    __import__("os").path.abspath(__file__))]

import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

RSS_CHILD = r"""
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
data = open(sys.argv[1], 'rb').read()
r0 = rss()
it = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d['index'], np.random.rand(*d['shape']).astype(d['dtype']))
it.invoke()
print(rss() - r0)
"""

TIME_CHILD = r"""
import sys, time
t = time.perf_counter()
from edgepool.inspect import inspect_model
r = inspect_model(sys.argv[1])
dt = time.perf_counter() - t
print(dt, 'tensorflow' in sys.modules, r.macs)
"""


def main() -> None:
    from conftest_inspect import convert, randomize

    from edgepool._tf import keras
    from edgepool.inspect import inspect_model
    from edgepool.inspect.arena import plan_arena
    from edgepool.inspect.tflite import read_tflite
    from edgepool.models import PRESETS, build_model, count_macs, preset

    tmp = Path(tempfile.mkdtemp())
    L = keras().layers
    print("1. MACs / params: int8 .tflite (edgepool inspect) vs Keras (input 28x28x1, 10 classes)")
    print(f"{'preset':12} {'pool':8} {'keras MACs':>12} {'tflite MACs':>12} {'keras params':>13} {'folded':>8} {'tflite':>8}  match")
    for name in PRESETS:
        for pool in ("max", "strided"):
            m = build_model(preset(name).with_pool(pool), (28, 28, 1), 10, seed=0)
            randomize(m)
            bn = [ly for ly in m.layers if isinstance(ly, L.BatchNormalization)]
            folded = m.count_params() - sum(3 * ly.get_weights()[0].size for ly in bn)
            p = tmp / f"{name}-{pool}.tflite"
            p.write_bytes(convert(m, "int8"))
            r = inspect_model(p)
            ok = r.macs == count_macs(m) and r.params == folded
            print(f"{name:12} {pool:8} {count_macs(m):>12,} {r.macs:>12,} {m.count_params():>13,} {folded:>8,} {r.params:>8,}  {'yes' if ok else 'NO'}")

    print("\n2. arena plan vs RSS growth (float 224x224x3 -> conv32 -> conv32 -> pool -> dense)")
    inp = L.Input((224, 224, 3))
    x = L.Conv2D(32, 3, padding="same", activation="relu")(inp)
    x = L.Conv2D(32, 1, activation="relu")(x)
    x = L.MaxPooling2D(4)(x)
    x = L.GlobalAveragePooling2D()(x)
    big = keras().Model(inp, L.Dense(10)(x))
    bp = tmp / "big.tflite"
    bp.write_bytes(convert(big, "float"))
    plan = plan_arena(read_tflite(bp).main)
    growth = [int(subprocess.run([sys.executable, "-c", RSS_CHILD, str(bp)], capture_output=True, text=True,
                                 check=True).stdout.split()[-1]) for _ in range(3)]
    g = sorted(growth)[1]
    print(f"planned arena {plan.arena_bytes / 2**20:.2f} MiB; RSS growth (median of 3 children) {g / 2**20:.2f} MiB; "
          f"plan/measured = {plan.arena_bytes / g:.2f}")

    # Differential: the same graph at two resolutions. Fixed costs of a process (code pages, allocator
    # and thread-pool set-up, the interpreter object) cancel out; what is left is what scales with the
    # activations, which is what the arena plan claims to predict.
    def arena_and_growth(side: int) -> tuple[int, int]:
        i2 = L.Input((side, side, 3))
        y = L.Conv2D(32, 3, padding="same", activation="relu")(i2)
        y = L.Conv2D(32, 1, activation="relu")(y)
        y = L.MaxPooling2D(4)(y)
        y = L.GlobalAveragePooling2D()(y)
        mp = tmp / f"res{side}.tflite"
        mp.write_bytes(convert(keras().Model(i2, L.Dense(10)(y)), "float"))
        gs = sorted(int(subprocess.run([sys.executable, "-c", RSS_CHILD, str(mp)], capture_output=True, text=True,
                                       check=True).stdout.split()[-1]) for _ in range(5))
        return plan_arena(read_tflite(mp).main).arena_bytes, gs[2]

    (a1, g1), (a2, g2) = arena_and_growth(320), arena_and_growth(160)
    print(f"differential 320x320 vs 160x160: planned arena grows {(a1 - a2) / 2**20:.2f} MiB, RSS growth grows "
          f"{(g1 - g2) / 2**20:.2f} MiB (median of 5 children each); plan/measured = {(a1 - a2) / (g1 - g2):.2f} "
          f"(target 0.80-1.20)")

    print("\n3. inspect of a ~1 MB model in a fresh subprocess")
    inp = L.Input((32, 32, 3))
    x = L.Conv2D(64, 3, padding="same")(inp)
    x = L.Flatten()(x)
    one = keras().Model(inp, L.Dense(16)(x))
    randomize(one)
    op = tmp / "one_mb.tflite"
    op.write_bytes(convert(one, "int8"))
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", TIME_CHILD, str(op)], capture_output=True, text=True, check=True)
        total = time.perf_counter() - t
        dt, tf_loaded, _ = out.stdout.split()
        runs.append((float(dt), total, tf_loaded))
    for dt, total, tf_loaded in runs:
        print(f"size {op.stat().st_size / 1e6:.2f} MB: import+inspect {dt * 1000:.0f} ms in-process, "
              f"{total * 1000:.0f} ms whole subprocess; tensorflow imported: {tf_loaded}")


if __name__ == "__main__":
    main()

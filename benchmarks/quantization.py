"""Quantization targets on the default mnist-5k model: one table per recipe (size, accuracy, agreement,
host latency median), in one run.

Targets (issue "Quantization"): int8-qat within 0.3 pp of float and agreement >= 99.5%; int8 (PTQ)
within 0.5 pp; int8 file >= 3.5x smaller than float32; int8 median single-thread latency <= 0.6x
float32 (same run, same interpreter).
Run: .venv/bin/python benchmarks/quantization.py [RUN]   (trains runs/bench-quant if no RUN given)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

RECIPES = ["float32", "float16", "dynamic-int8", "int8", "int8-qat"]
# the shipped int8 keeps one weight scale per tensor; this row measures what per-channel would give
PER_CHANNEL = "int8-per-channel"


def median_latency_ms(model_file: Path, runs: int = 2000) -> float:
    """Median single-thread invoke() latency in the LiteRT interpreter (same loop for every model)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_file.read_bytes(), num_threads=1)
    it.allocate_tensors()
    i = it.get_input_details()[0]
    it.set_tensor(i["index"], np.zeros(i["shape"], i["dtype"]))
    for _ in range(200):
        it.invoke()
    times = np.empty(runs)
    for k in range(runs):
        t = time.perf_counter_ns()
        it.invoke()
        times[k] = time.perf_counter_ns() - t
    return float(np.median(times) / 1e6)


def export_verification(export_dir: Path) -> dict:
    from edgepool.runs import load_export

    return load_export(export_dir).verification() or {}


def main() -> int:
    from edgepool.datasets import load_dataset
    from edgepool.models import preset
    from edgepool.pipeline import export, save_run
    from edgepool.runs import load_run
    from edgepool.training import TrainConfig, train

    if len(sys.argv) > 1:
        run = load_run(sys.argv[1])
    else:
        out = Path("runs/bench-quant")
        if not out.exists():
            save_run(train(preset("small"), load_dataset("mnist-5k"), TrainConfig(seed=0)), out)
        run = load_run(out)
    import dataclasses

    from edgepool.recipes import load_recipe

    recipes = {r: load_recipe(r) for r in RECIPES}
    recipes[PER_CHANNEL] = dataclasses.replace(recipes["int8"], name=PER_CHANNEL, per_channel=True)
    res = {r: export(run, rec, out=run.export_dir(f"bench-{r}"), force=True).export for r, rec in recipes.items()}
    ver = {r: export_verification(run.export_dir(f"bench-{r}")) for r in recipes}
    lat = {r: median_latency_ms(res[r].path / "model.tflite") for r in recipes}
    f32 = res["float32"]
    print(f"run {run.path}: keras test accuracy {100 * run.manifest['metrics']['test_accuracy']:.2f}%")
    print(f"{'recipe':17} {'size':>9} {'x smaller':>9} {'accuracy':>9} {'Δ pp':>6} {'agreement':>9} {'median ms':>10} {'x f32':>6} status")
    for r in recipes:
        v = ver[r]
        print(f"{r:17} {res[r].size_bytes:>9} {f32.size_bytes / res[r].size_bytes:>9.2f} {100 * v['accuracy']:>8.2f}% "
              f"{v['accuracy_delta_pp']:>+6.2f} {100 * v['agreement']:>8.2f}% {lat[r]:>10.4f} {lat[r] / lat['float32']:>6.2f} {v['status']}")
    q, p, pc = ver["int8-qat"], ver["int8"], ver[PER_CHANNEL]
    print()
    print(f"int8-qat within 0.3 pp of float: {abs(q['accuracy_delta_pp']):.2f} pp -> {'met' if abs(q['accuracy_delta_pp']) <= 0.3 else 'NOT met'}")
    print(f"int8-qat agreement >= 99.5%: {100 * q['agreement']:.2f}% -> {'met' if q['agreement'] >= 0.995 else 'NOT met'}")
    print(f"int8 (PTQ) within 0.5 pp: {abs(p['accuracy_delta_pp']):.2f} pp -> {'met' if abs(p['accuracy_delta_pp']) <= 0.5 else 'NOT met'}")
    print(f"int8 per-tensor vs per-channel: {p['accuracy_delta_pp'] - pc['accuracy_delta_pp']:+.2f} pp, agreement"
          f" {100 * p['agreement']:.2f}% vs {100 * pc['agreement']:.2f}%")
    ratio = f32.size_bytes / res["int8"].size_bytes
    print(f"int8 >= 3.5x smaller than float32: {ratio:.2f}x -> {'met' if ratio >= 3.5 else 'NOT met'}")
    from edgepool.inspect.tflite import read_tflite

    wf, wi = (read_tflite(res[r].path / "model.tflite").constant_bytes for r in ("float32", "int8"))
    print(f"  (weights alone: {wf} vs {wi} bytes = {wf / wi:.2f}x; the rest is graph, quantization parameters and the"
          f" embedded metadata; with per-channel weight scales the file is {f32.size_bytes / res[PER_CHANNEL].size_bytes:.2f}x smaller)")
    lr = lat["int8"] / lat["float32"]
    print(f"int8 median latency <= 0.6x float32: {lr:.2f}x -> {'met' if lr <= 0.6 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

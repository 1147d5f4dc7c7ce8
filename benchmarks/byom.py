"""Bring your own model: for each import path, parity of the float32 and int8 exports with the source runtime,
and the wall time of `import` and of converting (export + verify, float32 and int8).

    .venv/bin/python benchmarks/byom.py            # a few minutes on 2 cores

The models are one small CNN trained on digits (tests/_byom_models.py), written as a tf_keras .h5, a Keras 3
.keras, a SavedModel, an ONNX file (NCHW, onnx.helper) and a .tflite. Parity is what `edgepool verify`
measures on the run's test split (179 digits): max |Δ| of the outputs (logits; int8 dequantized) and
top-1 agreement with the source runtime (tf_keras, Keras 3, the SavedModel signature, onnxruntime).
A .tflite is not converted again: its row gives the import time and its own accuracy.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from edgepool import pipeline
    from edgepool.datasets import load_dataset
    from edgepool.importers import import_model
    from edgepool.recipes import load_recipe
    from tests import _byom_models as B

    digits = load_dataset("digits")
    tmp = Path(tempfile.mkdtemp(prefix="edgepool-byom-"))
    base = B.train_base()
    paths = {
        "tf_keras .h5": B.keras2_h5(base, tmp),
        "Keras 3 .keras": B.keras3_keras(base, tmp),
        "SavedModel": B.savedmodel(base, tmp),
        "ONNX (onnx2tf)": B.onnx_model(base, tmp),
        ".tflite": B.tflite(base, tmp),
    }
    rows = []
    for name, f in paths.items():
        t0 = time.perf_counter()
        run = import_model(f, digits, tmp / "runs" / f.name).run
        t_import = time.perf_counter() - t0
        row = {"path": name, "reference": run.manifest["source"]["reference"], "import_s": t_import,
               "accuracy": run.manifest["metrics"]["test_accuracy"]}
        if run.manifest["source"]["kind"] != "tflite":
            t1 = time.perf_counter()
            for recipe in ("float32", "int8"):
                o = pipeline.export(run, load_recipe(recipe))
                v = o.verification.details
                row[recipe] = (v["max_abs_diff"], v["agreement"], o.status.value)
            row["convert_s"] = time.perf_counter() - t1
        rows.append(row)
        print(f"done: {name}", file=sys.stderr, flush=True)

    def cell(r: dict, recipe: str) -> str:
        if recipe not in r:
            return "-"
        d, a, st = r[recipe]
        return f"{d:.2g} / {a:.1%} ({st})"

    head = f"{'path':<16} {'source runtime':<44} {'acc':>6} {'float32 max|Δ| / agree':>26} {'int8 max|Δ| / agree':>24} {'import s':>9} {'convert s':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        conv = f"{r['convert_s']:.1f}" if "convert_s" in r else "-"
        print(f"{r['path']:<16} {r['reference'][:44]:<44} {r['accuracy']:>6.1%} {cell(r, 'float32'):>26} {cell(r, 'int8'):>24} "
              f"{r['import_s']:>9.1f} {conv:>10}")
    print("\nconvert s = export + verify with float32 and with int8 (PTQ); the first row's also holds the TFLite converter's "
          "one-time start-up in this process. import s = a child process that loads, converts and runs the model. "
          "Timings are wall clock on this machine; on a shared machine they are noisy.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Core ML export over the whole zoo: every preset x every downsampling choice x every coreml recipe.

For each (preset, pool) a model is trained briefly, exported with each Core ML recipe and verified on
the test split with the NumPy MIL executor (Core ML itself on macOS). Prints one row per export:
size, weight bytes and their ratio to the FP32 export, accuracy, top-1 agreement with Keras,
max |logit diff| and the verification status.

    .venv/bin/python benchmarks/coreml.py                      # mnist-5k, 3 epochs, everything
    .venv/bin/python benchmarks/coreml.py --data digits --presets tiny --pools max,l2

Targets (issue): every preset and downsampling choice converts; the executor agrees with Keras within
FP16 tolerance (atol 1e-2 on logits; 1e-4 for FP32) with top-1 agreement >= 99.5%; FP16 weights about
half the FP32 size, 8-bit about a quarter.
"""

from __future__ import annotations

import os
import sys

# benchmarks/ holds inspect.py, which would shadow the standard library's `inspect` for numpy
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

RECIPES = ("coreml-fp32", "coreml-fp16", "coreml-int8", "coreml-palettize")


def _profile(target: str | None):
    """A Core ML profile for `--target` (None: no profile, each recipe's default target)."""
    if target is None:
        return None
    from edgepool.profiles import resolve
    from edgepool.types import DeploymentTarget

    return dataclasses.replace(resolve("iphone-15-pro"), deployment_target=DeploymentTarget.parse(target))


def main(argv: list[str] | None = None) -> int:
    from edgepool.datasets import load_dataset
    from edgepool.export import coreml
    from edgepool.export.source import ModelSource
    from edgepool.models import POOLS, PRESETS, preset
    from edgepool.recipes import load_recipe
    from edgepool.training import TrainConfig, train
    from edgepool.types import Compression, Status
    from edgepool.verify.coreml import verify_coreml

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="mnist-5k")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--pools", default=",".join(POOLS))
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--target", default=None, help="deployment target, e.g. iOS17 (default: per recipe)")
    args = ap.parse_args(argv)

    ds = load_dataset(args.data)
    recipes = [load_recipe(r) for r in args.recipes.split(",")]
    profile = _profile(args.target)
    header = (
        f"{'preset':<9} {'pool':<8} {'recipe':<17} {'size_kB':>8} {'weights_kB':>10} {'w/fp32':>6} "
        f"{'keras_acc':>9} {'acc':>7} {'agree':>7} {'max_diff':>9} {'rel':>8} {'atol':>6} {'conv_s':>6} {'ver_s':>6}  status"
    )
    print(f"data={args.data} epochs={args.epochs} python={sys.version.split()[0]}")
    print(header)
    print("-" * len(header))
    failures = 0
    rows = 0
    for pname in args.presets.split(","):
        for pool in args.pools.split(","):
            spec = preset(pname).with_pool(pool)
            cfg = TrainConfig(epochs=args.epochs, patience=args.epochs, seed=0)
            res = train(spec, ds, cfg)
            model = res.model
            x_raw = ds.x[res.split.test]
            y = ds.y[res.split.test]
            x = (x_raw.astype(np.float32) * np.float32(res.input_spec["scale"])) + np.float32(
                res.input_spec["offset"]
            )
            keras_logits = model.predict(x, batch_size=256, verbose=0)
            source = ModelSource(
                model, list(ds.labels), res.input_spec, metadata={"description": f"{pname}/{pool}", "source_run": "benchmark"}
            )
            fp32_weights = None
            for recipe in recipes:
                t0 = time.perf_counter()
                try:
                    art = coreml.export(source, recipe, profile)
                except Exception as e:  # report and go on: the table is the result
                    failures += 1
                    print(f"{pname:<9} {pool:<8} {recipe.name:<17} EXPORT FAILED: {e}")
                    continue
                try:
                    conv_s = time.perf_counter() - t0
                    side = art.sidecar
                    t0 = time.perf_counter()
                    v = verify_coreml(art.files[art.model_file], x_raw, y, keras_logits, recipe)
                    ver_s = time.perf_counter() - t0
                finally:
                    coreml.discard(art)  # measured, not kept
                if recipe.weight_compression is Compression.NONE and recipe.compute_precision == "float32":
                    fp32_weights = side["weights_bytes"]
                ratio = f"{side['weights_bytes'] / fp32_weights:.2f}" if fp32_weights else "-"
                d = v.details
                acc = "-" if d["accuracy"] is None else f"{d['accuracy']:.4f}"
                agree = "-" if d["agreement"] is None else f"{d['agreement']:.4f}"
                diff = "-" if d["max_abs_diff"] is None else f"{d['max_abs_diff']:.2e}"
                rel = "-" if d["max_rel_diff"] is None else f"{d['max_rel_diff']:.1e}"
                atol = "-" if d["atol"] is None else f"{d['atol']:.0e}"
                status = v.status.value + (f" ({v.reason})" if v.status is Status.UNVERIFIED else "")
                print(
                    f"{pname:<9} {pool:<8} {recipe.name:<17} {side['size_bytes'] / 1e3:>8.1f} "
                    f"{side['weights_bytes'] / 1e3:>10.1f} {ratio:>6} {d['keras_accuracy']:>9.4f} {acc:>7} "
                    f"{agree:>7} {diff:>9} {rel:>8} {atol:>6} {conv_s:>6.1f} {ver_s:>6.1f}  {status}",
                    flush=True,
                )
                rows += 1
                failures += v.status is not Status.PASS
    print(f"{rows} exports verified, {failures} not passing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Quantized pooling: what full int8 costs each pooling choice, and what QAT / the selective recipe win back.

For each pooling choice (max, avg, l2, strided, none) on mnist-5k with the `small` preset: float (Keras)
test accuracy, int8 PTQ accuracy (recipe `int8`), QAT accuracy (`int8-qat`, edgepool's QuantizeConfig
wraps the custom layers), selective accuracy (`int8-float-pool`: the layers that lose accuracy in 8 bits
kept in float; only where the model has such a layer), file sizes, host latency (median single-thread
LiteRT invoke), the Edge TPU cost of the float island, and what `verify --per-layer` names.
Target: L2's int8 loss within 0.5 pp of its float accuracy (the best int8 recipe; met / not met).

Then the argmax flip rate of max pooling: on the trained `max` model, for every 2x2 window of the
activations feeding each max pool (test split), the selected element (first maximum in row-major order,
the tie rule of max-pool-with-indices) in float vs in the int8 model (its dequantized intermediate tensors,
LiteRT `experimental_preserve_all_tensors=True`), and what max unpooling of the float pooled values at the
int8 indices does to the unpooled map.

Run: .venv/bin/python benchmarks/pooling_quant.py [--epochs 6] [--qat-epochs 2] [--out runs/bench-pooling-quant]
Latency is measured on this machine as it is: on a busy machine the milliseconds are noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# benchmarks/ holds scripts named like stdlib modules (inspect.py): never import from this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

POOLS = ["max", "avg", "l2", "strided", "none"]
TARGET_PP = 0.5


def median_latency_ms(model_file: Path, runs: int = 500) -> float:
    """Median single-thread invoke() latency in the LiteRT interpreter (same loop for every model)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model_file.read_bytes(), num_threads=1)
    it.allocate_tensors()
    i = it.get_input_details()[0]
    it.set_tensor(i["index"], np.zeros(i["shape"], i["dtype"]))
    for _ in range(50):
        it.invoke()
    times = np.empty(runs)
    for k in range(runs):
        t = time.perf_counter_ns()
        it.invoke()
        times[k] = time.perf_counter_ns() - t
    return float(np.median(times) / 1e6)


def get_run(out: Path, pool: str, epochs: int, preset_name: str = "small"):
    from edgepool.datasets import load_dataset
    from edgepool.models import preset
    from edgepool.pipeline import train_run
    from edgepool.runs import load_run
    from edgepool.training import TrainConfig

    path = out / (pool if preset_name == "small" else f"{pool}-{preset_name}")
    if (path / "manifest.json").is_file():
        run = load_run(path)
        if run.manifest["training"].get("epochs") == epochs:
            return run
    return train_run(preset(preset_name).with_pool(pool), load_dataset("mnist-5k"), TrainConfig(epochs=epochs, seed=0),
                     path, force=True)


def export_row(run, recipe_name: str, qat_epochs: int) -> dict:
    from edgepool import pipeline
    from edgepool.recipes import load_recipe

    recipe = load_recipe(recipe_name)
    if recipe.qat:
        pipeline.quantize(run, recipe, epochs=qat_epochs, force=True)
    o = pipeline.export(run, recipe, force=True)
    if o.export is None:
        return {"error": o.reason}
    d = o.verification.details if o.verification else {}
    row = {"accuracy": d.get("accuracy"), "keras": d.get("reference_accuracy"), "agreement": d.get("agreement"),
           "size": o.export.size_bytes, "latency_ms": median_latency_ms(o.export.model_file),
           "path": o.export.path, "selective": o.export.sidecar.get("selective")}
    return row


def advised_recipe(out: Path, keep_float: list[str]) -> Path:
    """A copy of int8-float-pool whose float island also holds the layers `verify --per-layer` named."""
    from edgepool.recipes import load_recipe

    shipped = load_recipe("int8-float-pool")
    layers = ", ".join(f'"{n}"' for n in [*shipped.float_layers, *keep_float])
    text = shipped.path.read_text().replace(
        "float_layers = [" + ", ".join(f'"{n}"' for n in shipped.float_layers) + "]", f"float_layers = [{layers}]")
    path = out / "int8-float-pool-advised.toml"
    path.write_text(text)
    return path


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


# ------------------------------------------------------------------ argmax flip rate


def windows_argmax(a: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(index in the k*k window, first maximum in row-major order; max value) for NHWC `a`, valid windows."""
    n, h, w, c = a.shape
    h2, w2 = h // k, w // k
    v = a[:, : h2 * k, : w2 * k, :].reshape(n, h2, k, w2, k, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h2, w2, c, k * k)
    return v.argmax(-1), v.max(-1)


def flip_rate(run, export_dir: Path, samples: int = 300) -> list[dict]:
    """Per max pool of the run's model: how often int8 selects another element than float."""
    from edgepool._tf import keras, quiet_stderr
    from edgepool.models import load_run_model
    from edgepool.runs import load_export
    from edgepool.verify.per_layer import tensors_by_name

    model = load_run_model(run)
    k = keras()
    pools = [layer for layer in model.layers if isinstance(layer, k.layers.MaxPooling2D)]
    x_raw, _ = run.test_data()
    x = run.normalize(x_raw[:samples]).astype(np.float32)
    feeds = [p.input for p in pools]
    with quiet_stderr():
        floats = k.Model(model.input, feeds).predict(x, verbose=0)
    floats = floats if isinstance(floats, list) else [floats]
    export = load_export(export_dir)
    with quiet_stderr():
        q = tensors_by_name(export.model_file.read_bytes(), x)
    rows = []
    for pool, fa in zip(pools, floats, strict=True):
        # the int8 tensor feeding the pool: the fused CONV_2D output named after the ReLU before it
        feed_layer = pool.inbound_nodes[0].inbound_layers.name
        name = next((n for n in q if any(p.split("/")[1:2] == [feed_layer] for p in n.split(";"))), None)
        if name is None:
            rows.append({"pool": pool.name, "error": f"no int8 tensor for {feed_layer}"})
            continue
        qa = np.concatenate(q[name]).reshape(fa.shape)
        # edgepool's MaxPoolingWithIndices2D / MaxUnpooling2D (first maximum in row-major order) on both
        fv, fi, qv, qi, ref, moved, q_all = with_indices_layers(fa, qa)
        np_fi, np_qi = windows_argmax(fa)[0], windows_argmax(qa)[0]
        same_as_numpy = bool(np.array_equal(fi != qi, np_fi != np_qi))
        flipped = fi != qi
        live = fv > 0  # windows whose float max is positive (all-zero ReLU windows tie everywhere)
        top2 = np.sort(windows_values(fa), -1)[..., -2:]
        ties = top2[..., 1] == top2[..., 0]
        norm = float(np.sqrt(np.mean(ref.astype(np.float64) ** 2))) or 1.0
        rows.append({
            "pool": pool.name, "windows": int(flipped.size), "flip_rate": float(flipped.mean()),
            "flip_rate_live": float(flipped[live].mean()) if live.any() else 0.0,
            "flip_rate_untied": float(flipped[live & ~ties].mean()) if (live & ~ties).any() else 0.0,
            "float_ties_live": float(ties[live].mean()) if live.any() else 0.0,
            "unpool_rel_rmse_flips": float(np.sqrt(np.mean((moved - ref) ** 2))) / norm,
            "unpool_rel_rmse_int8": float(np.sqrt(np.mean((q_all - ref) ** 2))) / norm,
            "pooled_rel_rmse_int8": float(np.sqrt(np.mean((qv - fv) ** 2))) / (float(np.sqrt(np.mean(fv ** 2))) or 1.0),
            "support_changed": float(np.mean((ref != 0) != (q_all != 0))),
            "numpy_reference_agrees": same_as_numpy,
        })
    return rows


def with_indices_layers(fa: np.ndarray, qa: np.ndarray) -> tuple[np.ndarray, ...]:
    """Pooled values and indices of float / int8 activations through edgepool's MaxPoolingWithIndices2D, and
    MaxUnpooling2D of: float values at float indices (reference), float values at int8 indices (the flips
    alone), int8 values at int8 indices (the int8 model's unpooled map)."""
    from edgepool.layers import get

    pool = get("MaxPoolingWithIndices2D")(2, "valid")
    unpool_layer = get("MaxUnpooling2D")(2, output_size=fa.shape[1:3])
    fv, fi = (np.asarray(t) for t in pool(fa))
    qv, qi = (np.asarray(t) for t in pool(qa.astype(np.float32)))
    ref, moved, q_all = (np.asarray(unpool_layer([v, i])) for v, i in ((fv, fi), (fv, qi), (qv, qi)))
    return fv, fi, qv, qi, ref, moved, q_all


def windows_values(a: np.ndarray, k: int = 2) -> np.ndarray:
    n, h, w, c = a.shape
    h2, w2 = h // k, w // k
    return a[:, : h2 * k, : w2 * k, :].reshape(n, h2, k, w2, k, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h2, w2, c, k * k)


# ------------------------------------------------------------------ main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6, help="training epochs per model (default 6)")
    ap.add_argument("--qat-epochs", type=int, default=2, help="QAT fine-tune epochs (default 2)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-pooling-quant")
    ap.add_argument("--pools", default=",".join(POOLS))
    ap.add_argument("--gap", default="l2", help="pools also trained with the small-gap preset (global-average "
                    "head, where L2's int8 loss was reported); '' for none")
    args = ap.parse_args()
    from edgepool import pipeline

    jobs = [(p, "small") for p in args.pools.split(",") if p] + [(p, "small-gap") for p in args.gap.split(",") if p]
    results: dict[str, dict] = {}
    t0 = time.time()
    for pool, preset_name in jobs:
        run = get_run(args.out, pool, args.epochs, preset_name)
        label = pool if preset_name == "small" else f"{pool} (gap)"
        keras_acc = run.manifest["metrics"]["test_accuracy"]
        r = {"keras": keras_acc, "float32": export_row(run, "float32", 0), "int8": export_row(run, "int8", 0),
             "int8-qat": export_row(run, "int8-qat", args.qat_epochs)}
        sel = export_row(run, "int8-float-pool", 0)
        if sel.get("selective") and sel["selective"].get("matched"):
            r["int8-float-pool"] = sel
        rep = pipeline.per_layer(r["int8"]["path"])
        r["keep_float"] = rep.keep_float
        if "int8-float-pool" in r and rep.keep_float:
            # the per-layer report's advice on top of the shipped recipe: a copy with those layers in float too
            r["int8-float-pool+"] = export_row(run, str(advised_recipe(args.out, rep.keep_float)), 0)
        r["worst"] = [(e.layer, e.op, e.rmse_scale, e.float_rmse) for e in rep.errors[:3]]
        results[label] = r
        print(f"[{time.time() - t0:.0f} s] {label}: keras {pct(keras_acc)}, int8 {pct(r['int8'].get('accuracy'))}",
              flush=True)

    print(f"\nmnist-5k, preset small ('(gap)': small-gap), {args.epochs} training epochs (seed 0), QAT {args.qat_epochs} epochs; "
          "test split 500 images (1 image = 0.2 pp); latency: median single-thread LiteRT invoke, this machine")
    head = (f"{'pool':8} {'keras':>7} {'f32 tfl':>7} {'int8':>7} {'Δ pp':>6} {'QAT':>7} {'Δ pp':>6} {'select':>7} "
            f"{'Δ pp':>6} {'f32 KB':>7} {'int8 KB':>7} {'sel KB':>7} {'f32 ms':>7} {'int8 ms':>7} {'sel ms':>7}")
    print(head)
    for pool, r in results.items():
        k = r["keras"]
        sel = r.get("int8-float-pool", {})

        def d(row: dict, k: float = k) -> str:
            return "-" if row.get("accuracy") is None else f"{100 * (row['accuracy'] - k):+.2f}"

        def kb(row: dict) -> str:
            return "-" if not row.get("size") else f"{row['size'] / 1024:.1f}"

        def ms(row: dict) -> str:
            return "-" if not row.get("latency_ms") else f"{row['latency_ms']:.3f}"

        print(f"{pool:8} {pct(k):>7} {pct(r['float32'].get('accuracy')):>7} {pct(r['int8'].get('accuracy')):>7} "
              f"{d(r['int8']):>6} {pct(r['int8-qat'].get('accuracy')):>7} {d(r['int8-qat']):>6} "
              f"{pct(sel.get('accuracy')):>7} {d(sel):>6} {kb(r['float32']):>7} {kb(r['int8']):>7} {kb(sel):>7} "
              f"{ms(r['float32']):>7} {ms(r['int8']):>7} {ms(sel):>7}")
    print("\nverify --per-layer on each int8 export (worst ops by rmse/scale; accumulated error vs the float model):")
    for pool, r in results.items():
        worst = "; ".join(f"{layer} {op} {rs:.2f} ({'-' if fr is None else f'{100 * fr:.0f}%'})"
                          for layer, op, rs, fr in r["worst"])
        print(f"  {pool:8} keep in float: {', '.join(r['keep_float']) or 'none':30} worst: {worst}")
    for pool, r in results.items():
        adv = r.get("int8-float-pool+")
        if adv and adv.get("accuracy") is not None:
            print(f"  {pool:8} int8-float-pool + those layers in float: {pct(adv['accuracy'])} "
                  f"({100 * (adv['accuracy'] - r['keras']):+.2f} pp), {adv['size'] / 1024:.1f} KB, "
                  f"{adv['latency_ms']:.3f} ms; Edge TPU: {adv['selective']['edgetpu']['split']}")
    for pool, r in results.items():
        s = r.get("int8-float-pool", {}).get("selective")
        if s:
            e = s["edgetpu"]
            ops = ", ".join(o["op"] for o in s["float_ops"])
            print(f"\nselective {pool}: float layers {', '.join(s['float_layers'])}; float ops {ops}\n"
                  f"  Edge TPU (predicted): {e['split']}; plain int8: {e['plain_int8_split']} ({e['extra_cpu_ops']:+d} CPU ops)")
    for name in [n for n in results if n.startswith("l2")]:
        r = results[name]
        options = {n: r[n]["accuracy"] for n in ("int8", "int8-qat", "int8-float-pool", "int8-float-pool+")
                   if r.get(n, {}).get("accuracy") is not None}
        best = max(options, key=options.__getitem__)
        loss = 100 * (r["keras"] - options[best])
        status = "MET" if loss <= TARGET_PP else "NOT MET"
        print(f"\ntarget: L2 int8 within {TARGET_PP} pp of float, {name}: {status} with {best} "
              f"({pct(options[best])} vs keras {pct(r['keras'])}: {loss:+.2f} pp loss; "
              + ", ".join(f"{n} {100 * (r['keras'] - a):+.2f} pp" for n, a in options.items()) + ")")
    if "max" in results:
        print("\nargmax flip rate, max pooling (2x2 windows of the activations feeding each max pool of the trained "
              "max model, first 300 test images, float vs the int8 model's dequantized tensors, through edgepool's "
              "MaxPoolingWithIndices2D / MaxUnpooling2D; ties: first maximum in row-major order):")
        for row in flip_rate(get_run(args.out, "max", args.epochs), results["max"]["int8"]["path"]):
            if "error" in row:
                print(f"  {row['pool']}: {row['error']}")
                continue
            print(f"  {row['pool']}: {row['windows']:,} windows; flipped {100 * row['flip_rate']:.2f}% of all, "
                  f"{100 * row['flip_rate_live']:.2f}% of windows with a positive max "
                  f"({100 * row['flip_rate_untied']:.2f}% where float has a unique max; float ties "
                  f"{100 * row['float_ties_live']:.2f}%)\n"
                  f"    unpooled map, relative RMS error: flips alone {100 * row['unpool_rel_rmse_flips']:.2f}%, "
                  f"int8 indices+values {100 * row['unpool_rel_rmse_int8']:.2f}% (pooled values alone "
                  f"{100 * row['pooled_rel_rmse_int8']:.2f}%); nonzero positions changed {100 * row['support_changed']:.2f}%"
                  f"; NumPy argmax reference agrees: {'yes' if row['numpy_reference_agrees'] else 'NO'}")
    print(f"\ntotal {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

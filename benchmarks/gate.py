"""The gate's figure: it fails a model trained for 1 epoch and passes an identical retrain.

On digits (sklearn's 8x8 set, no download): a baseline (the default model, --epochs 15, seed 0), a
candidate trained for 1 epoch, and an identical retrain of the baseline (same seed and settings). Each is
exported with the int8 recipe (verified), all three are benchmarked on this machine in one `benchmark`
call, then `edgepool gate CANDIDATE --baseline BASELINE` runs for both candidates (the real command, in a
child process) with the shipped default thresholds. Prints both tables, the exit codes and the timings.

Run: .venv/bin/python benchmarks/gate.py [--epochs 15] [--keep DIR]   (a few minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15, help="epochs of the baseline and of its identical retrain")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--keep", type=Path, help="keep the runs in this folder (default: a temporary one, removed)")
    args = ap.parse_args()

    from edgepool import pipeline
    from edgepool.bench.protocol import BenchOptions
    from edgepool.datasets import load_dataset
    from edgepool.models import DEFAULT_PRESET, preset
    from edgepool.recipes import load_recipe
    from edgepool.training import TrainConfig

    root = args.keep or Path(tempfile.mkdtemp(prefix="edgepool-gate-figure-"))
    root.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(args.data)
    plan = {"baseline": args.epochs, "one-epoch": 1, "retrain": args.epochs}
    timings = {}
    paths = {}
    for name, epochs in plan.items():
        t = time.perf_counter()
        run = pipeline.train_run(preset(DEFAULT_PRESET), ds, TrainConfig(epochs=epochs, seed=0), root / name, force=True)
        outcome = pipeline.export(run, load_recipe("int8"), force=True)
        timings[name] = time.perf_counter() - t
        paths[name] = run.path
        print(f"{name:10} {epochs:3d} epochs: Keras test accuracy {100 * run.manifest['metrics']['test_accuracy']:.2f}%, "
              f"int8 {outcome.status.value} ({100 * outcome.verification.details['accuracy']:.2f}%), "
              f"train + export {timings[name]:.1f} s", flush=True)
    t = time.perf_counter()
    options = BenchOptions(windows=5, runs=50, min_seconds=0.5)
    results, saved = pipeline.benchmark([paths["baseline"], paths["one-epoch"], paths["retrain"]], options, keep_going=True)
    bench_s = time.perf_counter() - t
    shared = [r.name for r in results if r.measured_as]
    print(f"benchmark (one call, 3 runs, 5 windows of >= 0.5 s): {bench_s:.1f} s"
          + (f"; measured once for identical model bytes: {', '.join(shared)}" if shared else ""))
    codes = {}
    env = {**os.environ, "COLUMNS": "160"}
    for cand in ("one-epoch", "retrain"):
        print(f"\n$ edgepool gate {cand} --baseline baseline")
        t = time.perf_counter()
        p = subprocess.run([str(Path(sys.executable).parent / "edgepool"), "gate", str(paths[cand]), "--baseline",
                            str(paths["baseline"])], capture_output=True, text=True, env=env, cwd=root)
        codes[cand] = p.returncode
        print(p.stdout.rstrip())
        if p.stderr.strip():
            print(p.stderr.rstrip())
        print(f"exit code {p.returncode} ({time.perf_counter() - t:.1f} s)")
    print()
    print(f"figure ({args.data}, default model, int8, this machine): 1-epoch candidate -> exit {codes['one-epoch']} "
          f"({'FAIL' if codes['one-epoch'] == 1 else 'unexpected'}); identical retrain -> exit {codes['retrain']} "
          f"({'PASS' if codes['retrain'] == 0 else 'unexpected'})")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if codes == {"one-epoch": 1, "retrain": 0} else 1


if __name__ == "__main__":
    sys.exit(main())

"""Per-tensor vs per-channel int8 weight scales across the model zoo: accuracy, agreement, file size.

The shipped `int8` recipe stores one weight scale per tensor (`per_channel = false`); this script is
the measurement behind that choice. For every preset x pooling it trains a short model (12 epochs),
exports it with `int8` and with the same recipe at `per_channel = true`, and prints both verified on
the held-out test split.
Run: .venv/bin/python benchmarks/per_channel.py [DATASET]   (default mnist-5k; ~5 min on 2 cores)
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

POOLS = ["max", "avg", "l2", "strided"]


def main() -> int:
    from edgepool.datasets import load_dataset
    from edgepool.models import PRESETS, preset
    from edgepool.pipeline import export, save_run
    from edgepool.recipes import load_recipe
    from edgepool.training import TrainConfig, train

    ds = load_dataset(sys.argv[1] if len(sys.argv) > 1 else "mnist-5k")
    per_tensor = load_recipe("int8")
    per_channel = dataclasses.replace(per_tensor, name="int8-per-channel", per_channel=True)
    print(f"{'model':10} {'pool':8} {'keras':>7} | {'per-tensor':>10} {'agree':>7} {'bytes':>6} | {'per-channel':>11} {'agree':>7} {'bytes':>6} | smaller")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in PRESETS:
            for pool in POOLS:
                spec = preset(name)
                spec = dataclasses.replace(spec, blocks=[dataclasses.replace(b, pool=pool) for b in spec.blocks])
                run = save_run(train(spec, ds, TrainConfig(epochs=12, seed=0)), Path(tmp) / f"{name}-{pool}")
                t, c = (export(run, r) for r in (per_tensor, per_channel))
                vt, vc = t.verification, c.verification
                t, c = t.export, c.export
                worst = min(worst, vt["accuracy_delta_pp"] - vc["accuracy_delta_pp"])
                print(
                    f"{name:10} {pool:8} {100 * vt['reference_accuracy']:6.2f}% | {100 * vt['accuracy']:9.2f}% {100 * vt['agreement']:6.2f}% "
                    f"{t.size_bytes:>6} | {100 * vc['accuracy']:10.2f}% {100 * vc['agreement']:6.2f}% {c.size_bytes:>6} | "
                    f"{100 * (1 - t.size_bytes / c.size_bytes):5.1f}%",
                    flush=True,
                )
    print(f"largest accuracy loss of per-tensor against per-channel: {-worst:.2f} pp on {ds.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

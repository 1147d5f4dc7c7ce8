"""Sweep figures (prints tables; never asserted).

    .venv/bin/python benchmarks/sweep.py [--epochs 10] [--out DIR] [--skip-sequential] [--skip-ray] [--quick]

Expected run time on a quiet 2-core machine: ~20-30 minutes in all (part 1 ~4-6 min, part 2a ~8-10 min,
part 2b ~5-7 min, part 3 ~3-5 min). Measured while 8 sessions shared the 2 cores (load average 4-12): part 1
took 15.3 min at 10 epochs and 3.9 min at 3 epochs. `--quick` (digits, tiny model, 1 epoch) only checks that
the script works.

1. The 5-choice pooling sweep (max, avg, l2, strided, none; the `small` model) on mnist-5k for host-cpu
   (measured here) and raspberry-pi-5 (estimated from its profile), --seeds 1, with `--executor local` (one
   worker process per core, TensorFlow's threads split between them): wall time (target <= 12 min), the table
   and the recommendation; sweep.json, table.md and pareto.png are in DIR/local.
2. The same sweep from scratch, one job after another: (a) the same jobs (one worker process, the same
   TensorFlow thread count per job as in part 1) into DIR/sequential: the speed-up of part 1 over it is the
   figure (target >= 1.6x); (b) one worker with every core per job (as `edgepool train` runs) into
   DIR/sequential-all-cores, printed beside it: how much of the gain TensorFlow's own threading takes back.
3. A tiny sweep (digits, the `tiny` model, the five pools, 2 epochs, host-cpu + raspberry-pi-5) with the local
   executor and through Ray (a Ray instance started on this machine, two CPUs, as `--executor ray` does without
   an address): the two tables side by side (training is deterministic per seed, so accuracies should match
   exactly; measured latencies differ by noise) and the overhead Ray adds (wall-time difference, Ray start-up
   included).

Epochs: 10 by default, chosen so the 5-choice sweep fits the 12-minute target on 2 cores with room to spare,
while the pools separate clearly (the small model passes 97 % on mnist-5k within 10 epochs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/ holds scripts named like stdlib modules (inspect.py): never import from this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

POOLS = ["max", "avg", "l2", "strided", "none"]
BENCH = {"runs": 50, "windows": 3, "min_seconds": 0.5}


def spec_for(data: str, model: str, epochs: int, profiles: list[str]):  # -> SweepSpec
    from edgepool.sweep import BenchSettings, SweepSpec

    return SweepSpec(data=data, pools=list(POOLS), profiles=profiles, models=[model], seeds=1, epochs=epochs,
                     bench=BenchSettings(**BENCH))


def progress(ev) -> None:  # noqa: ANN001
    print(f"    [{ev.done}/{ev.total}] {ev.message}", flush=True)


def run(spec, out: Path, **kw):  # noqa: ANN001, ANN201
    from edgepool.sweep import run_sweep

    t0 = time.perf_counter()
    result = run_sweep(spec, out, progress=progress, **kw)
    return result, time.perf_counter() - t0


def show(result, wall: float, title: str) -> None:  # noqa: ANN001
    from edgepool.sweep.results import table_markdown

    t = result.document["timings"]
    print(f"\n### {title}\nwall time {wall:.1f} s ({wall / 60:.2f} min); summed job times: training {t['train_s']:.0f} s, "
          f"conversion {t['convert_s']:.0f} s, benchmarks {t['bench_s']:.0f} s; counts {result.counts}")
    print(table_markdown(result.document))
    if result.failures:
        print("failures:", *result.failures, sep="\n  ")


def compare(a, b) -> None:  # noqa: ANN001
    """Accuracy (Keras and export) and latency of the same configuration in two sweeps."""
    print("| profile | configuration | Keras acc local / ray | export acc local / ray | latency ms local / ray | kind |")
    print("|---|---|---|---|---|---|")
    rb = {c["id"]: c for c in b.document["configs"]}
    worst_acc = 0.0
    for ca in a.document["configs"]:
        cb = rb[ca["id"]]
        for prof, ea in ca["exports"].items():
            eb = cb["exports"].get(prof, {})
            worst_acc = max(worst_acc, abs((ea.get("accuracy") or 0) - (eb.get("accuracy") or 0)),
                            abs((ca.get("accuracy") or 0) - (cb.get("accuracy") or 0)))
            print(f"| {prof} | {ca['id']} | {_pct(ca.get('accuracy'))} / {_pct(cb.get('accuracy'))} | "
                  f"{_pct(ea.get('accuracy'))} / {_pct(eb.get('accuracy'))} | {_ms(ea.get('latency_ms'))} / "
                  f"{_ms(eb.get('latency_ms'))} | {ea.get('latency_kind')} |")
    same = a.document["recommendation"] == b.document["recommendation"]
    print(f"\nlargest accuracy difference: {100 * worst_acc:.2f} pp; same recommendation: {same} "
          f"(local {a.document['recommendation']}, ray {b.document['recommendation']})")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None, help="where the sweep directories go (default: a new temp folder)")
    ap.add_argument("--skip-sequential", action="store_true", help="skip part 2 (the one-after-another baseline)")
    ap.add_argument("--skip-ray", action="store_true", help="skip part 3 (Ray)")
    ap.add_argument("--quick", action="store_true", help="digits + tiny model + 1 epoch in parts 1-2: a check, not figures")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="edgepool-sweep-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        sys.exit(f"{out} is not empty: the figures need sweeps from scratch; give a new --out")
    from edgepool.sweep.spec import cpu_count

    data, model, epochs = ("digits", "tiny", 1) if args.quick else ("mnist-5k", "small", args.epochs)
    profiles = ["host-cpu", "raspberry-pi-5"]
    print(f"sweep figures: {data}, model {model}, pools {','.join(POOLS)}, epochs {epochs}, seeds 1, profiles "
          f"{' + '.join(profiles)} (raspberry-pi-5 estimated), benchmarks {BENCH}; {cpu_count()} cores; output in {out}")

    print("\n== 1. --executor local (parallel workers)")
    par, par_wall = run(spec_for(data, model, epochs, profiles), out / "local")
    show(par, par_wall, "5-choice sweep, --executor local")
    print(f"target <= 12 min: {'met' if par_wall <= 720 else 'NOT met'} ({par_wall / 60:.2f} min)")

    if not args.skip_sequential:
        cores = cpu_count()
        threads = max(1, cores // min(cores, len(POOLS)))  # what each job of part 1 had
        print(f"\n== 2a. the same jobs one after another (one worker, {threads} TensorFlow thread(s) per job as in part 1)")
        seq, seq_wall = run(spec_for(data, model, epochs, profiles), out / "sequential", workers=1, threads=threads)
        show(seq, seq_wall, "5-choice sweep, the same jobs one after another")
        print(f"\n== 2b. one job after another with every core ({cores} TensorFlow threads, as `edgepool train` runs)")
        seq_all, seq_all_wall = run(spec_for(data, model, epochs, profiles), out / "sequential-all-cores", workers=1)
        show(seq_all, seq_all_wall, "5-choice sweep, one job after another, every core per job")
        speedup = seq_wall / par_wall
        print(f"\nspeed-up of --executor local over the same jobs one after another: {seq_wall:.1f} s / {par_wall:.1f} s = "
              f"{speedup:.2f}x (target >= 1.6x: {'met' if speedup >= 1.6 else 'NOT met'})")
        print(f"speed-up over one job after another with every core per job: {seq_all_wall:.1f} s / {par_wall:.1f} s = "
              f"{seq_all_wall / par_wall:.2f}x")

    if not args.skip_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            sys.exit("part 3 needs Ray: pip install 'edgepool[ray]' (or --skip-ray)")
        print("\n== 3. a tiny sweep: local executor vs Ray (a local Ray instance, 2 CPUs)")
        tiny = spec_for("digits", "tiny", 2, profiles)
        loc, loc_wall = run(tiny, out / "tiny-local")
        ray_res, ray_wall = run(tiny, out / "tiny-ray", executor="ray")
        show(loc, loc_wall, "tiny sweep, --executor local")
        show(ray_res, ray_wall, "tiny sweep, --executor ray")
        print("\n### local vs ray, per configuration")
        compare(loc, ray_res)
        print(f"\nRay overhead: {ray_wall:.1f} s vs {loc_wall:.1f} s local = {ray_wall - loc_wall:+.1f} s "
              f"({ray_wall / loc_wall:.2f}x), Ray start-up included")
    print(f"\nsweep directories (sweep.json, table.md, table.csv, pareto.png) in {out}")


if __name__ == "__main__":
    main()

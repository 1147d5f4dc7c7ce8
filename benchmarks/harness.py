"""Benchmark-engine targets, side by side in one run (prints figures; not asserted in CI).

    .venv/bin/python benchmarks/harness.py [--threads 1] [--quick]

For each model (a CNN big enough that a run takes several ms, and the small demo-like digits CNN in
float32 and int8), on this machine and thread count:
1. peer: Google's own `python -m ai_edge_litert.tools.benchmark_litert_model --model=M
   --num_threads=T --num_runs=N --warmup_runs=W --result_json=F` (its median is rounded to 0.01 ms);
   target: edgepool's median within +-5% of the peer's;
2. bare: a fresh Python process timing a bare `invoke()` loop (perf_counter_ns around each call);
   target: edgepool median - bare median <= max(2 us, 2% of bare);
3. repeatability: two back-to-back edgepool benchmarks; target: medians within +-5%.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

# benchmarks/ holds scripts named like stdlib modules (inspect.py): never import from this folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BARE = textwrap.dedent(
    """
    import sys, time, numpy as np
    from ai_edge_litert.interpreter import Interpreter
    path, threads, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    it = Interpreter(model_content=open(path, "rb").read(), num_threads=threads)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    if np.dtype(d["dtype"]).kind == "f":
        x = rng.uniform(-1, 1, d["shape"]).astype(d["dtype"])
    else:
        x = rng.integers(-128, 128, d["shape"]).astype(d["dtype"])
    it.set_tensor(d["index"], x)
    invoke, clock = it.invoke, time.perf_counter_ns
    end = clock() + 500_000_000
    while clock() < end:
        invoke()
    lat = []
    for _ in range(runs):
        t0 = clock(); invoke(); lat.append(clock() - t0)
    print(float(np.median(lat)) / 1e6)
    """
)


def make_models(out: Path) -> dict[str, Path]:
    from tests._bench_models import build_big_model, cached_digits_run, to_tflite

    out.mkdir(parents=True, exist_ok=True)
    big = out / "cnn224.tflite"
    if not big.exists():
        big.write_bytes(to_tflite(build_big_model(size=224)))
    digits = cached_digits_run()
    return {
        "cnn224-float32": big,
        "digits-float32": digits.float_export / "model.tflite",
        "digits-int8": digits.int8_export / "model.tflite",
    }


def peer_median_ms(model: Path, threads: int, runs: int, warmup: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "r.json"
        cmd = [sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model", f"--model={model}",
               f"--num_threads={threads}", f"--num_runs={runs}", f"--warmup_runs={warmup}", f"--result_json={res}"]
        subprocess.run(cmd, check=True, capture_output=True)
        return float(json.loads(res.read_text())["latency"]["median_ms"])


def bare_median_ms(model: Path, threads: int, runs: int) -> float:
    out = subprocess.run([sys.executable, "-c", BARE, str(model), str(threads), str(runs)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def edgepool_median_ms(model: Path, threads: int, min_seconds: float, windows: int) -> tuple[float, float | None, int]:
    from edgepool.bench import BenchOptions, benchmark

    (r,) = benchmark([model], BenchOptions(threads=threads, inputs="random", min_seconds=min_seconds, windows=windows))
    return r.latency_ms["median"], r.window_spread, r.runs


def _rel(a: float, b: float) -> str:
    return f"{(a - b) / b:+.1%}" if b > 0 else "-"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    import os
    import statistics

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (edgepool, peer, bare, edgepool)")
    ap.add_argument("--quick", action="store_true", help="shorter windows (noisier)")
    ap.add_argument("--out", type=Path, default=REPO / ".cache" / "bench-harness")
    a = ap.parse_args()
    min_s, windows = (0.5, 3) if a.quick else (1.0, 5)
    models = make_models(a.out)
    load0 = os.getloadavg()
    print(f"threads={a.threads}  rounds={a.rounds}  edgepool windows={windows} x >= {min_s}s  "
          f"python={sys.version.split()[0]}  load average at start {load0[0]:.2f} on {os.cpu_count()} cores")
    rows = []
    for name, path in models.items():
        e1s, e2s, peers, bares, spreads, runs = [], [], [], [], [], 0
        for _ in range(a.rounds):  # interleaved, so a busy machine hurts every tool alike
            e1, spread, n = edgepool_median_ms(path, a.threads, min_s, windows)
            big = e1 >= 1.0
            peer_runs = max(50, int(5000 / max(e1, 1e-3))) if big else 20000
            peers.append(peer_median_ms(path, a.threads, min(peer_runs, 20000), 5))
            bares.append(bare_median_ms(path, a.threads, max(200, min(200000, int(5000 / max(e1, 1e-3))))))
            e2, _, _ = edgepool_median_ms(path, a.threads, min_s, windows)
            e1s.append(e1)
            e2s.append(e2)
            spreads.append(spread or 0.0)
            runs += n
        med = statistics.median
        rows.append((name, med(e1s), med(e2s), med(peers), med(bares), med(spreads), runs, med(e1s) >= 1.0,
                     e1s, peers, bares, e2s))

    print()
    hdr = f"{'model':16} {'edgepool ms':>12} {'again ms':>10} {'peer ms':>9} {'bare ms':>10} {'vs peer':>8} " \
          f"{'overhead':>10} {'repeat':>7} {'spread':>7} {'runs':>8}"
    print(hdr)
    print("-" * len(hdr))
    for name, e1, e2, peer, bare, spread, n, *_ in rows:
        print(f"{name:16} {e1:12.4f} {e2:10.4f} {peer:9.2f} {bare:10.4f} {_rel(e1, peer):>8} "
              f"{(e1 - bare) * 1000:+8.2f}us {(e2 - e1) / e1:+7.1%} {spread:7.1%} {n:8d}")
    print("\nper round (edgepool / peer / bare / edgepool again, ms):")
    for name, *_, e1s, peers, bares, e2s in rows:
        cells = "  ".join(f"{a:.4f}/{b:.2f}/{c:.4f}/{d:.4f}" for a, b, c, d in zip(e1s, peers, bares, e2s, strict=True))
        print(f"  {name:16} {cells}")
    print()
    for name, e1, e2, peer, bare, _, _, big, *_ in rows:
        allowed = max(0.002, 0.02 * bare)
        checks = [
            (f"median within +-5% of benchmark_litert_model ({e1:.3f} vs {peer:.2f} ms)", abs(e1 - peer) / peer <= 0.05)
            if big else (f"peer comparison skipped: the peer prints {peer:.2f} ms (0.01 ms resolution)", None),
            (f"overhead {1000 * (e1 - bare):+.2f} us <= {1000 * allowed:.2f} us", e1 - bare <= allowed),
            (f"repeatability {(e2 - e1) / e1:+.1%} within +-5%", abs(e2 - e1) / e1 <= 0.05),
        ]
        for text, ok in checks:
            print(f"  {name:16} {'SKIP' if ok is None else verdict(ok)}  {text}")
    load1 = os.getloadavg()
    print(f"\nload average at end {load1[0]:.2f} (figures above ~1 per core are disturbed by other work)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

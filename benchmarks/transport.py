"""SSH transport figures, side by side in one run (prints tables; never asserted).

    .venv/bin/python benchmarks/transport.py [--repeats 3] [--no-pi]      (as root: it starts sshd servers)

1. Overhead: the wall time of `benchmark --device ssh://...` (the library call the CLI makes) minus the
   agent's own run time on the device (its process, start to exit, timed by the transport's wrapper there),
   for a ~40 KB and a ~5 MB model, over this machine's sshd on 127.0.0.1 (target <= 1.0 s) and over the
   emulated Raspberry Pi (arm64 sshd under qemu-user, tests/devices/build_pi.py). One bare `ssh HOST true`
   round trip is printed beside it for scale. Median of --repeats runs.
2. Local vs SSH: the same model and settings (the default protocol: 5 windows of >= 50 runs and >= 1 s,
   1 thread) measured via `--device local` and via ssh to the loopback sshd, alternated --repeats times;
   target: the median latencies within 3 %.
3. Parity: the TFLite export of every built-in TFLite / Edge TPU profile (a tiny digits run trained here)
   run on the emulated aarch64 Pi (tflite-runtime 2.14.0, numpy 1.x) against this machine: the same runtime
   on x86-64 (tflite-runtime 2.14 venv) and this machine's LiteRT. int8 outputs: the largest difference in
   quantization steps; float outputs: the largest difference relative to the output's largest magnitude
   (float32 kernels sum in another order on aarch64, so logits near zero differ more in relative terms);
   accuracy on the test split.
"""

from __future__ import annotations

import argparse
import os
import statistics
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

import numpy as np  # noqa: E402

QUICK = dict(windows=1, runs=10, min_seconds=0.1, warmup_runs=1, warmup_min_seconds=0.05)


def dense_model(path: Path, inputs: int, hidden: int) -> Path:
    """A float32 MLP whose file size is set by its weights: (inputs*hidden + hidden*10) * 4 bytes."""
    from edgepool._tf import keras
    from tests._bench_models import to_tflite

    k = keras()
    k.utils.set_random_seed(0)
    m = k.Sequential([k.layers.Input((inputs,)), k.layers.Dense(hidden, activation="relu"), k.layers.Dense(10)])
    path.write_bytes(to_tflite(m))
    return path


class Spy:
    """Keeps each SshRun the runner's transport returns (for the agent's own time on the device)."""

    def __init__(self) -> None:
        from edgepool.bench.transports import ssh

        self.runs: list = []
        original = ssh.SshTransport.run

        def run(transport, request, on_event=None):
            r = original(transport, request, on_event)
            self.runs.append(r)
            return r

        ssh.SshTransport.run = run


def ssh_round_trip(server) -> float:
    t0 = time.perf_counter()
    server.ssh("true")
    return time.perf_counter() - t0


def overhead(server, models: dict[str, Path], repeats: int, spy: Spy) -> list[tuple[str, float, float, float]]:
    from edgepool.bench.protocol import BenchOptions
    from edgepool.bench.runner import benchmark

    os.environ["EDGEPOOL_SSH_CONFIG"] = str(server.ssh_config)
    rows = []
    for name, model in models.items():
        walls, agents = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            [res] = benchmark([model], BenchOptions(device=server.uri(), **QUICK))
            walls.append(time.perf_counter() - t0)
            agents.append(spy.runs[-1].agent_seconds)
            assert res.complete, res
        wall, agent = statistics.median(walls), statistics.median(agents)
        rows.append((name, wall, agent, statistics.median(w - a for w, a in zip(walls, agents, strict=True))))
    return rows


def print_overhead(label: str, rows, rtt: float, target: float | None) -> None:
    print(f"\n{label} (bare `ssh HOST true`: {rtt:.3f} s)")
    print(f"  {'model':<16}{'wall':>9}{'agent':>9}{'overhead':>10}  target")
    for name, wall, agent, over in rows:
        verdict = "" if target is None else (f"<= {target:.1f} s " + ("ok" if over <= target else "MISSED"))
        print(f"  {name:<16}{wall:>8.2f}s{agent:>8.2f}s{over:>9.2f}s  {verdict}")


def local_vs_ssh(server, model: Path, repeats: int) -> None:
    from edgepool.bench.protocol import BenchOptions
    from edgepool.bench.runner import benchmark

    os.environ["EDGEPOOL_SSH_CONFIG"] = str(server.ssh_config)
    local, remote = [], []
    for i in range(repeats):  # alternated, and the order flipped each round, so a drift in load hits both
        pair = [("local", local), (server.uri(), remote)]
        for device, out in pair if i % 2 == 0 else pair[::-1]:
            [res] = benchmark([model], BenchOptions(device=device, threads=1))
            out.append(res.latency_ms["median"])
    lm, rm = statistics.median(local), statistics.median(remote)
    delta = rm / lm - 1
    print(f"\nlocal vs ssh to 127.0.0.1, {model.stat().st_size / 1e3:.0f} KB CNN, default protocol, 1 thread, "
          f"alternated {repeats}x (order flipped each round); CPU pressure now: {_cpu_pressure()}")
    print("  local medians: " + ", ".join(f"{x:.3f}" for x in local) + " ms")
    print("  ssh medians:   " + ", ".join(f"{x:.3f}" for x in remote) + " ms")
    print(f"  median of medians: local {lm:.3f} ms, ssh {rm:.3f} ms, difference {delta:+.2%} "
          f"(target within 3 %: {'ok' if abs(delta) <= 0.03 else 'MISSED'})")


def _cpu_pressure() -> str:
    """The share of the last minute in which some runnable task waited for a CPU (other load on this machine)."""
    try:
        some = open("/proc/pressure/cpu").read().split("\n")[0]
        return f"{float(some.split('avg60=')[1].split()[0]):.0f}% (PSI avg60), load {os.getloadavg()[0]:.2f}"
    except (OSError, IndexError, ValueError):
        return f"load {os.getloadavg()[0]:.2f}"


EXTRA_RECIPES = ("float32", "float16", "dynamic-int8")  # recipes no built-in profile uses, for contrast


def parity(server, work: Path) -> None:
    from edgepool import profiles
    from edgepool.bench.protocol import BenchOptions, build_request
    from edgepool.bench.transports.local import LocalTransport
    from edgepool.datasets import load_dataset
    from edgepool.errors import EdgepoolError
    from edgepool.models import preset
    from edgepool.pipeline import export, save_run
    from edgepool.recipes import load_recipe
    from edgepool.runs import find_model_file, read_json
    from edgepool.training import TrainConfig, train
    from tests._tflite_runtime_env import tflite_runtime_python

    run = save_run(train(preset("tiny"), load_dataset("digits"), TrainConfig(epochs=3, seed=0, calibration_samples=100)),
                   work / "parity-run")
    rt214 = LocalTransport(python=str(tflite_runtime_python()))
    print("\nparity: each built-in TFLite profile's export on the emulated Pi (aarch64, tflite-runtime 2.14.0) "
          "vs this machine")
    print("  (rows in parentheses: a recipe no built-in profile uses, exported without a profile)")
    print(f"  {'profile':<18}{'recipe':<14}{'output':<9}{'Pi acc':>8}{'vs x86 2.14':>14}{'vs LiteRT':>12}  note")
    jobs = [(name, profiles.resolve(name)) for name in profiles.names()]
    jobs = [(name, prof, prof.recipe) for name, prof in jobs if prof.runtime.value in ("tflite", "edgetpu")]
    jobs += [(f"({recipe})", None, recipe) for recipe in EXTRA_RECIPES]
    for name, prof, recipe in jobs:
        try:
            outcome = export(run, load_recipe(recipe), profile=prof, verify=False, force=True)
        except EdgepoolError as e:
            print(f"  {name:<18}{recipe:<14}{'-':<9}{'-':>8}{'-':>14}{'-':>12}  export failed: {e.message}")
            continue
        if outcome.export is None:
            print(f"  {name:<18}{recipe:<14}{'-':<9}{'-':>8}{'-':>14}{'-':>12}  export failed: {outcome.error}")
            continue
        folder = outcome.export.path
        model = folder / "model.tflite"  # an Edge TPU export's CPU model (no Edge TPU on the Pi)
        if not model.is_file():
            model = find_model_file(folder)
        side = read_json(folder / "model.json")
        if outcome.error is not None:
            print(f"  {name:<18}note: {outcome.error}")
        inputs = {"mode": "samples", "seed": 0, "normalization": side["normalization"],
                  "samples_path": str(run.path / "data" / "test.npz"), "max_samples": None}
        req = build_request(model, BenchOptions(**QUICK), 1, [], inputs)
        n = len(np.load(run.path / "data" / "test.npz")["y"])
        req["save_outputs"] = n
        pi = server.transport().run(req)
        if pi.result is None:
            err = (pi.error or {}).get("message", pi.stderr_tail.splitlines()[-1:] or "failed")
            print(f"  {name:<18}{recipe:<14}{side['output']['dtype']:<9}{'-':>8}{'-':>14}{'-':>12}  "
                  f"the Pi's runtime refused it: {err}")
            continue
        cols = []
        for ref_run in (rt214.run(req), LocalTransport().run(req)):
            if ref_run.result is None:
                cols.append("refused")
                continue
            a = np.asarray(pi.result["outputs"]["values"], dtype=np.float64)
            b = np.asarray(ref_run.result["outputs"]["values"], dtype=np.float64)
            if pi.result["outputs"]["scale"]:  # quantized output: steps
                cols.append(f"{int(np.abs(a - b).max())} step(s)")
            else:
                # float32 kernels sum in another order on aarch64: near-zero logits differ in relative terms,
                # so the difference is given relative to the output's largest magnitude
                cols.append(f"{np.abs(a - b).max() / np.abs(b).max():.1e} rel")
        env = pi.result["environment"]
        note = f"{env['machine']}, {env['emulated']}, {model.name}"
        print(f"  {name:<18}{recipe:<14}{pi.result['outputs']['dtype']:<9}"
              f"{pi.result['accuracy']['accuracy']:>8.1%}{cols[0]:>14}{cols[1]:>12}  {note}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-pi", action="store_true", help="skip the emulated Pi (overhead over it, and parity)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root: this script starts sshd servers (and the emulated Pi)", file=sys.stderr)
        return 2
    from tests._bench_models import build_big_model, to_tflite
    from tests.devices import build_pi
    from tests.devices.conftest import loopback_server, pi_server

    spy = Spy()
    with tempfile.TemporaryDirectory(prefix="edgepool-transport-bench-") as tmp:
        work = Path(tmp)
        models = {}
        for label, (inputs, hidden) in {"small": (64, 150), "large": (1024, 1220)}.items():
            m = dense_model(work / f"{label}.tflite", inputs, hidden)
            models[f"{m.stat().st_size / 1e3:.0f} KB" if m.stat().st_size < 1e6 else f"{m.stat().st_size / 1e6:.1f} MB"] = m
        cnn = work / "cnn.tflite"
        cnn.write_bytes(to_tflite(build_big_model()))
        print(f"models: {', '.join(models)} (float32 MLPs), CNN {cnn.stat().st_size / 1e3:.0f} KB; "
              f"this machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
        with loopback_server(work / "sshd") as lo:
            print_overhead("overhead over sshd on 127.0.0.1 (x86-64; median of "
                           f"{args.repeats})", overhead(lo, models, args.repeats, spy), ssh_round_trip(lo), 1.0)
            local_vs_ssh(lo, cnn, args.repeats)
        if args.no_pi:
            return 0
        try:
            image = build_pi.build()
        except build_pi.PiUnavailable as e:
            print(f"\nemulated Pi unavailable: {e}")
            return 1
        print(f"\nemulated Pi image: {image.dir} (built in {image.info.get('build_total_seconds')} s: "
              f"{image.info.get('build_seconds')})")
        with pi_server(image, work / "pi") as pi:
            print_overhead(f"overhead over the emulated Pi's sshd (arm64 under qemu-user; median of {args.repeats})",
                           overhead(pi, models, args.repeats, spy), ssh_round_trip(pi), None)
            parity(pi, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())

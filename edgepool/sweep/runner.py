"""The sweep driver: plan the jobs from what the sweep directory already holds, hand them to an executor,
and write every result into the sweep directory as it arrives (the driver is the only writer).

Layout of SWEEP:

    sweep.json          the shape the report reads: configs, pareto, recommendation (+ settings, groups, timings)
    table.csv table.md  one row per profile and group (mean ± spread over seeds)
    pareto.png          accuracy vs latency per profile
    runs/<id>/          each configuration's run directory (exports in runs/<id>/exports/<profile>/)
    configs/<id>.json   the done marker: the configuration's finished record, written atomically

A configuration with a done marker is never recomputed; a run directory that exists is never retrained
(runs are written atomically); an export that was verified is never re-exported. A configuration is done
when every profile has its export (or the error that stopped it) and its latency (measured or estimated).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import runs
from ..errors import EdgepoolError, InputError
from ..types import ProgressEvent, ProgressFn
from . import jobs
from .spec import LOCAL, Assignment, Config, SweepSpec, assign_devices, cpu_count, device_key

SWEEP_FILE = "sweep.json"
TABLE_CSV = "table.csv"
TABLE_MD = "table.md"
PARETO_PNG = "pareto.png"
RUNS = "runs"
MARKERS = "configs"
SCHEMA_VERSION = 1
EXECUTORS = ("local", "ray")


@dataclass
class Task:
    kind: str  # train | convert | bench
    config: str  # configuration id
    profile: str | None = None
    device: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.config}" + (f" for {self.profile}" if self.profile else "") + \
            (f" on {self.device}" if self.kind == "bench" else "")


@dataclass
class SweepResult:
    path: Path
    document: dict[str, Any]
    counts: dict[str, int]
    wall_s: float
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)

    @property
    def configs(self) -> list[dict[str, Any]]:
        return self.document["configs"]


def load_sweep(path: str | Path) -> dict[str, Any]:
    """SWEEP/sweep.json (or a sweep directory) as a dict."""
    p = Path(path)
    f = p / SWEEP_FILE if p.is_dir() else p
    if not f.is_file():
        raise InputError(f"{p} is not a sweep directory (no {SWEEP_FILE})", "pass the folder a sweep wrote")
    return runs.read_json(f)


class Sweep:
    """The state of one sweep directory: records per configuration, what is left to do, and writing it."""

    def __init__(self, spec: SweepSpec, out: Path, profiles: list[Any], assignments: list[Assignment]) -> None:
        self.spec, self.out, self.profiles, self.assignments = spec, out, profiles, assignments
        self.by_profile = {a.profile: a for a in assignments}
        self.configs: dict[str, Config] = {c.id: c for c in spec.configs()}
        self.records: dict[str, dict[str, Any]] = {}
        self.counts = {"configs": len(self.configs), "reused": 0, "trained": 0, "converted": 0, "measured": 0,
                       "estimated": 0, "failed": 0}
        self.failures: list[str] = []
        self.timings: dict[str, float] = {"train_s": 0.0, "convert_s": 0.0, "bench_s": 0.0}
        self.pending_exports: dict[str, dict[str, dict[str, Any]]] = {}  # converted, waiting for their benchmark

    # ------------------------------------------------------------ planning

    def run_dir(self, cid: str) -> Path:
        return self.out / RUNS / cid

    def marker(self, cid: str) -> Path:
        return self.out / MARKERS / f"{cid}.json"

    def plan(self) -> list[Task]:
        """Records from the markers and folders already there, and the tasks still to do."""
        tasks: list[Task] = []
        for cid, cfg in self.configs.items():
            rec: dict[str, Any] = {**cfg.to_dict(), "status": "pending", "run_dir": f"{RUNS}/{cid}", "accuracy": None,
                                   "exports": {}}
            old = runs.read_json(self.marker(cid)) if self.marker(cid).is_file() else None
            if isinstance(old, dict):
                rec.update({k: v for k, v in old.items() if k not in ("exports", "status")})
                for a in self.assignments:  # a profile measured the same way before is kept
                    e = (old.get("exports") or {}).get(a.profile)
                    if e is not None and self._same_way(e, a):
                        rec["exports"][a.profile] = e
                if old.get("status") == "failed":
                    rec["status"] = "failed"
            self.records[cid] = rec
            if rec["status"] == "failed" or self._complete(rec):
                if rec["status"] != "failed":
                    rec["status"] = "done"
                self.counts["reused"] += 1
                continue
            if not jobs.trained(self.run_dir(cid)):
                tasks.append(Task("train", cid))
                continue
            rec.update(jobs.run_summary(self.run_dir(cid)))
            tasks.extend(self.after_train(cid))
        return tasks

    def _same_way(self, e: dict[str, Any], a: Assignment) -> bool:
        if e.get("error"):  # an export that cannot be made stays an error; one that might work is tried again
            return not e["error"].get("retry")
        if e.get("export_dir") is None:
            return False
        if a.device is None:
            return e.get("latency_kind") in ("estimated", None) and "latency_ms" in e
        return e.get("latency_kind") == "measured" and e.get("device_uri") == a.device

    def _complete(self, rec: dict[str, Any]) -> bool:
        return all(a.profile in rec["exports"] for a in self.assignments)

    def after_train(self, cid: str) -> list[Task]:
        rec = self.records[cid]
        return [Task("convert", cid, a.profile) for a in self.assignments if a.profile not in rec["exports"]]

    # ------------------------------------------------------------ results

    def on_train(self, task: Task, res: dict[str, Any]) -> list[Task]:
        rec = self.records[task.config]
        if "error" in res:
            return self._fail(task, res["error"])
        rec.update({k: v for k, v in res.items() if k != "trained"})
        if res.get("trained"):
            self.counts["trained"] += 1
            self.timings["train_s"] += float(res.get("train_s") or 0)
        return self.after_train(task.config)

    def on_convert(self, task: Task, res: dict[str, Any], seconds: float) -> list[Task]:
        rec = self.records[task.config]
        assert task.profile is not None
        a = self.by_profile[task.profile]
        self.timings["convert_s"] += seconds
        if "error" in res:
            err = res["error"]
            self.failures.append(f"{task.label}: {err['message']}")
            rec["exports"][task.profile] = {"recipe": None, "size_bytes": None, "accuracy": None, "latency_ms": None,
                                            "latency_kind": None, "status": "error", "error": err}
            if err.get("retry"):
                rec["exports"].pop(task.profile)
                rec["status"] = "incomplete"
                return []
            return self._check_done(task.config)
        self.counts["converted"] += 1
        if a.device is None:
            self.counts["estimated"] += 1
            rec["exports"][task.profile] = res
            return self._check_done(task.config)
        self.pending_exports.setdefault(task.config, {})[task.profile] = res
        return [Task("bench", task.config, task.profile, a.device)]

    def on_bench(self, task: Task, res: dict[str, Any], seconds: float) -> list[Task]:
        rec = self.records[task.config]
        assert task.profile is not None
        self.timings["bench_s"] += seconds
        base = self.pending_exports.get(task.config, {}).pop(task.profile, None)
        if base is None:
            base = jobs.export_record(self.run_dir(task.config) / runs.EXPORTS / task.profile)
        if "error" in res:
            self.failures.append(f"{task.label}: {res['error']['message']}")
            rec["status"] = "incomplete"  # a device that failed is tried again on the next run
            return []
        doc = res["document"]
        self._save_benchmark(task, doc)
        lat = jobs.latency_record(doc)
        if lat.get("latency_ms") is None:
            self.failures.append(f"{task.label}: {lat.get('bench_error') or 'no latency measured'}")
            rec["status"] = "incomplete"
            return []
        self.counts["measured"] += 1
        rec["exports"][task.profile] = {**base, **lat, "device_uri": task.device}
        return self._check_done(task.config)

    def _save_benchmark(self, task: Task, doc: dict[str, Any]) -> None:
        """The result document in RUN/benchmarks/<stamp>.json, its paths those of this sweep directory."""
        from ..bench.runner import stamp

        run = self.run_dir(task.config)
        export = run / runs.EXPORTS / str(task.profile)
        for r in doc.get("results", []):
            r["run_dir"] = str(run)
            r["model_path"] = str(export / Path(str(r.get("model_path", ""))).name)
        folder = run / runs.BENCHMARKS
        path = folder / f"{stamp()}-{task.profile}.json"
        n = 2
        while path.exists():
            path = folder / f"{stamp()}-{task.profile}-{n}.json"
            n += 1
        runs.atomic_write_json(path, doc)

    def _fail(self, task: Task, err: dict[str, Any]) -> list[Task]:
        rec = self.records[task.config]
        self.failures.append(f"{task.label}: {err['message']}")
        rec["error"] = err
        if err.get("retry"):
            rec["status"] = "incomplete"
            return []
        rec["status"] = "failed"
        self.counts["failed"] += 1
        self._write_marker(task.config)
        return []

    def _check_done(self, cid: str) -> list[Task]:
        rec = self.records[cid]
        if self._complete(rec) and rec["status"] not in ("incomplete", "failed"):
            rec["status"] = "done"
            self._write_marker(cid)
        return []

    def _write_marker(self, cid: str) -> None:
        runs.atomic_write_json(self.marker(cid), self.records[cid])

    # ------------------------------------------------------------ writing

    def document(self, *, wall_s: float, executor: str, state: str, final: bool = False) -> dict[str, Any]:
        from .results import decide

        configs = [self.records[cid] for cid in self.configs]
        decision = decide(configs, self.profiles)
        doc = {
            "schema_version": SCHEMA_VERSION,
            "state": state,  # running | interrupted | finished
            "configs": configs,
            "pareto": decision["pareto"],
            "recommendation": decision["recommendation"],
            "recommendation_group": decision["recommendation_group"],
            "recommendation_reason": decision["recommendation_reason"],
            "pareto_groups": decision["pareto_groups"],
            "groups": decision["groups"],
            "profiles": {a.profile: {"device": a.device, "latency_kind": a.kind,
                                     "latency_target_ms": getattr(p, "latency_target_ms", None)}
                         for a, p in zip(self.assignments, self.profiles, strict=True)},
            "settings": self.spec.to_dict(),
            "executor": executor,
            "counts": self.counts,
            "timings": {**{k: round(v, 2) for k, v in self.timings.items()}, "wall_s": round(wall_s, 2)},
            "failures": self.failures,
            "files": {"table_csv": TABLE_CSV, "table_md": TABLE_MD, "pareto_png": PARETO_PNG},
        }
        return doc

    def write(self, doc: dict[str, Any], *, tables: bool) -> None:
        runs.atomic_write_json(self.out / SWEEP_FILE, doc)
        if tables:
            from .plot import pareto_png
            from .results import table_csv, table_markdown

            runs.atomic_write_text(self.out / TABLE_CSV, table_csv(doc))
            runs.atomic_write_text(self.out / TABLE_MD, table_markdown(doc))
            runs.atomic_write_bytes(self.out / PARETO_PNG, pareto_png(doc, f"{self.spec.data}: pooling sweep"))


def prepare(spec: SweepSpec, out: str | Path) -> tuple[Sweep, list[Task]]:
    """Check everything (the grid, profiles, devices, the sweep directory) before any work; plan the tasks."""
    from ..bench.protocol import BenchOptions
    from ..bench.runner import plan_devices
    from ..datasets import load_dataset
    from ..profiles import resolve

    spec.validate()
    profiles = [resolve(p) for p in spec.profiles]
    assignments = assign_devices(profiles, spec.devices)
    for a in assignments:
        if a.device is not None:  # the device and the profile fit together, and the device parses
            plan_devices(BenchOptions(devices=[a.device], profile=a.profile))
    out = Path(out)
    _check_directory(out, spec)
    load_dataset(spec.data)  # a missing or broken data set fails now, not in every worker
    if not (out / SWEEP_FILE).is_file():  # first: the folder says what it is before anything else is in it
        out.mkdir(parents=True, exist_ok=True)
        runs.atomic_write_json(out / SWEEP_FILE, {"schema_version": SCHEMA_VERSION, "state": "starting", "configs": [],
                                                  "settings": spec.to_dict()})
    (out / RUNS).mkdir(exist_ok=True)
    (out / MARKERS).mkdir(exist_ok=True)
    sweep = Sweep(spec, out, profiles, assignments)
    return sweep, sweep.plan()


def _check_directory(out: Path, spec: SweepSpec) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"{out} is a file, not a sweep directory", "choose another output folder")
    f = out / SWEEP_FILE
    if not f.is_file():
        if any(out.iterdir()):
            raise InputError(f"{out} is not empty and holds no {SWEEP_FILE}: not a sweep directory",
                             "choose a new or empty output folder, or the folder of the sweep to continue")
        return
    old = runs.read_json(f).get("settings") or {}
    new = spec.training_settings()
    diff = [f"{k} {old.get(k)!r} -> {v!r}" for k, v in new.items() if k in old and old.get(k) != v]
    if diff:
        raise InputError(f"the sweep in {out} was trained with other settings ({'; '.join(diff)}): its configurations "
                         "cannot be continued with these", "use the same data and training settings to continue it, "
                         "or another output folder for a new sweep")


def run_sweep(spec: SweepSpec, out: str | Path, *, executor: str = "local", address: str | None = None,
              workers: int | None = None, threads: int | None = None,
              progress: ProgressFn | None = None) -> SweepResult:
    """Train, convert, benchmark (or estimate) every configuration of `spec` into the sweep directory `out`.

    `executor` "local" runs training and conversion in `workers` processes (default: one per core) with
    `threads` TensorFlow threads each (default: the cores split between them), and a device's benchmarks one
    at a time, the local device's only while no training runs; "ray" sends the same jobs to a Ray cluster (`address`; None starts one on this machine).
    A KeyboardInterrupt stops the workers and writes sweep.json with what finished (`interrupted`); running
    the same sweep again continues it. `progress` gets stage "sweep" events (done/total tasks, a message).
    """
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor {executor!r}", f"choose one of: {', '.join(EXECUTORS)}")
    if executor == "local" and address:
        raise InputError("an address names a Ray cluster, and this sweep runs on the local executor",
                         "run it on the Ray executor, or leave the address out")
    if workers is not None and workers < 1:
        raise InputError(f"the number of worker processes must be >= 1 (got {workers})", "use 1 or more workers")
    t0 = time.perf_counter()
    if executor == "ray":
        from .ray_executor import require_ray

        require_ray()
    sweep, tasks = prepare(spec, out)
    if executor == "ray":
        from .ray_executor import RayExecutor

        ex: Any = RayExecutor(sweep, address)
    else:
        ex = LocalExecutor(sweep, workers, threads)
    state = "running"
    sweep.write(sweep.document(wall_s=0.0, executor=executor, state=state), tables=False)
    try:
        drive(sweep, ex, tasks, progress, lambda: time.perf_counter() - t0, executor)
        state = "finished"
    except KeyboardInterrupt:
        state = "interrupted"
        ex.close(kill=True)
        raise_after = True
    else:
        raise_after = False
        ex.close(kill=False)
    finally:
        wall = time.perf_counter() - t0
        doc = sweep.document(wall_s=wall, executor=executor, state=state if state != "running" else "interrupted")
        sweep.write(doc, tables=True)
    result = SweepResult(sweep.out, doc, sweep.counts, wall, interrupted=raise_after, failures=sweep.failures)
    if raise_after:
        raise SweepInterrupted(result)
    return result


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: what finished is in the sweep directory (`result`); the same sweep continues it."""

    def __init__(self, result: SweepResult) -> None:
        super().__init__("sweep interrupted")
        self.result = result


def drive(sweep: Sweep, ex: Any, tasks: list[Task], progress: ProgressFn | None, elapsed: Callable[[], float],
          executor: str) -> None:
    """Hand out tasks as the executor accepts them, feed results back, until nothing is left."""
    pending = list(tasks)
    inflight: dict[Any, tuple[Task, float]] = {}
    total = _count_tasks(sweep, pending)
    done = 0
    last_write = 0.0

    def report(msg: str) -> None:
        if progress:
            progress(ProgressEvent("sweep", done, max(total, done), msg))

    report(f"{sweep.counts['reused']} of {len(sweep.configs)} configurations already done" if sweep.counts["reused"]
           else f"{len(sweep.configs)} configurations")
    while pending or inflight:
        order = {"train": 0, "convert": 1, "bench": 2}
        pending.sort(key=lambda t: order[t.kind])
        for t in list(pending):
            if ex.can_start(t, [x for x, _ in inflight.values()], pending):
                pending.remove(t)
                inflight[ex.submit(t)] = (t, time.perf_counter())
        if not inflight:
            raise RuntimeError(f"sweep scheduler stalled with {len(pending)} tasks pending")  # a bug, not a user error
        for handle, res in ex.wait(list(inflight)):
            t, started = inflight.pop(handle)
            seconds = time.perf_counter() - started
            if t.kind == "train":
                new = sweep.on_train(t, res)
            elif t.kind == "convert":
                new = sweep.on_convert(t, res, seconds)
            else:
                new = sweep.on_bench(t, res, seconds)
            pending.extend(new)
            done += 1
            report(_message(t, res, sweep))
        if time.perf_counter() - last_write > 2.0 or not (pending or inflight):
            sweep.write(sweep.document(wall_s=elapsed(), executor=executor, state="running"), tables=False)
            last_write = time.perf_counter()


def _count_tasks(sweep: Sweep, tasks: list[Task]) -> int:
    """Tasks plus those they will lead to (a train leads to a convert per profile, a measured convert to a bench)."""
    n = 0
    measured = sum(1 for a in sweep.assignments if a.device)
    for t in tasks:
        if t.kind == "train":
            n += 1 + len(sweep.assignments) + measured
        elif t.kind == "convert":
            n += 1 + (1 if sweep.by_profile[t.profile or ""].device else 0)
        else:
            n += 1
    return n


def _message(t: Task, res: dict[str, Any], sweep: Sweep) -> str:
    if "error" in res:
        return f"{t.label}: failed: {res['error']['message']}"
    if t.kind == "train":
        acc = res.get("accuracy")
        return f"{'trained' if res.get('trained') else 'found'} {t.config}" + (f": accuracy {100 * acc:.2f}%" if acc is not None else "")
    if t.kind == "convert":
        acc = res.get("accuracy")
        lat = f", estimated {res['latency_ms']:.3g} ms" if res.get("latency_ms") is not None else ""
        return f"exported {t.config} for {t.profile}: {res.get('status')}" + (f", {100 * acc:.2f}%" if acc is not None else "") + lat
    lat = sweep.records[t.config]["exports"].get(t.profile or "", {}).get("latency_ms")
    return f"measured {t.config} on {t.device}" + (f": {lat:.3g} ms" if lat is not None else "")


# ---------------------------------------------------------------- the local executor


class LocalExecutor:
    """Training and conversion in worker processes (spawned, one per core by default, TensorFlow's threads
    split between them); benchmarks in driver threads, one at a time per device; the local device's
    benchmarks only while no worker runs (and no other benchmark on this machine)."""

    def __init__(self, sweep: Sweep, workers: int | None, threads: int | None = None) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

        cores = cpu_count()
        n_train = sum(1 for c in sweep.configs)  # an upper bound: fewer when some are done
        self.workers = workers or max(1, min(cores, n_train))
        self.threads = threads or max(1, cores // self.workers)
        self.sweep = sweep
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(self.threads,))
        self._bench = ThreadPoolExecutor(max(1, len({device_key(a.device) for a in sweep.assignments if a.device})))
        # drain the workers for the local device's benchmarks once this many wait (else they run at the end)
        self.drain_at = 4 * self.workers

    def can_start(self, t: Task, running: list[Task], pending: list[Task]) -> bool:
        local_busy = [x for x in running if x.kind != "bench" or (x.device and device_key(x.device) == LOCAL)]
        if t.kind == "bench":
            assert t.device is not None
            key = device_key(t.device)
            if any(x.kind == "bench" and x.device and device_key(x.device) == key for x in running):
                return False
            return key != LOCAL or not local_busy
        if any(x.kind == "bench" and x.device and device_key(x.device) == LOCAL for x in running):
            return False
        waiting = sum(1 for x in pending if x.kind == "bench" and x.device and device_key(x.device) == LOCAL)
        if waiting >= self.drain_at:
            return False
        return sum(1 for x in running if x.kind != "bench") < self.workers

    def submit(self, t: Task) -> Any:
        s = self.sweep
        run_dir = str(s.run_dir(t.config))
        if t.kind == "train":
            return self._pool.submit(jobs.train_job, s.spec.to_dict(), s.configs[t.config].to_dict(), run_dir)
        assert t.profile is not None
        if t.kind == "convert":
            return self._pool.submit(jobs.convert_job, run_dir, t.profile, s.by_profile[t.profile].device is None)
        export = str(s.run_dir(t.config) / runs.EXPORTS / t.profile)
        return self._bench.submit(jobs.bench_job, export, t.profile, t.device, s.spec.bench.to_dict())

    def wait(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as wait_futures
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait_futures(handles, return_when=FIRST_COMPLETED)
        out = []
        for f in done:
            try:
                out.append((f, f.result()))
            except BrokenProcessPool as e:  # a worker died (out of memory, killed): the sweep cannot go on here
                raise EdgepoolError("a sweep worker process died (out of memory, or killed)",
                                    "run the same sweep again to continue it; fewer workers use less memory") from e
        return out

    def close(self, kill: bool) -> None:
        if kill:
            for p in list(getattr(self._pool, "_processes", {}).values()):  # Python 3.11 has no public terminate
                if p.is_alive():
                    p.terminate()
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._bench.shutdown(wait=False, cancel_futures=True)
        else:
            self._pool.shutdown(wait=True)
            self._bench.shutdown(wait=True)


def _init_worker(threads: int) -> None:
    """A worker process: its share of the cores for TensorFlow, and Ctrl-C left to the driver."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    jobs.limit_threads(threads)



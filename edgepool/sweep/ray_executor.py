"""The Ray executor: the sweep's jobs as Ray tasks, for when one machine is not enough (extra `edgepool[ray]`).

- Training and conversion tasks take one CPU each and go to any node. They work in a temporary folder on
  that node and send the run (or the export) back as tar bytes; the driver unpacks it into the sweep
  directory, so a cluster needs no shared file system.
- Each attached device is a Ray custom resource of capacity 1 (`device_resource`: `edgepool-device-<name>`)
  on the node that reaches it; a benchmark task takes that resource, so a device runs one benchmark at a
  time however many nodes there are. A sweep started without an address starts a Ray instance on this
  machine that declares every device itself; on a cluster the nodes declare them when they start
  (`ray start --address HEAD --resources '{"edgepool-device-pi5": 1}'`).
- The local device (this machine) is the driver's node: its benchmarks take every CPU of that node (pinned to
  it), so nothing else runs there while one is measured.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .. import runs
from ..errors import InputError
from . import jobs
from .spec import LOCAL, device_key

RESOURCE_PREFIX = "edgepool-device-"
PIP_HINT = "pip install 'edgepool[ray]'"


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("the Ray executor needs Ray, which is not installed here", PIP_HINT) from None
    return ray


def device_resource(device: str) -> str:
    """The Ray resource that stands for `device`: `edgepool-device-` + its registered name, else its host / serial."""
    from .. import devices

    ref = devices.parse_device(device)
    if ref.name:
        slug = ref.name
    elif ref.host:
        slug = ref.host + (f"-{ref.port}" if ref.port and ref.port != 22 else "")
    else:
        slug = ref.serial or ref.udid or ref.kind.value
    return RESOURCE_PREFIX + re.sub(r"[^A-Za-z0-9_.-]", "-", slug)


# ---------------------------------------------------------------- tasks (run on any node)


def _train_task(spec: dict[str, Any], config: dict[str, Any], run_tar: bytes | None) -> dict[str, Any]:
    jobs.limit_threads(1)
    with tempfile.TemporaryDirectory(prefix="edgepool-sweep-") as d:
        run_dir = Path(d) / config["id"]
        if run_tar:
            jobs.unpack(run_tar, run_dir)
        res = jobs.train_job(spec, config, str(run_dir))
        if "error" not in res:
            res["tar"] = jobs.pack(run_dir)
        if "trained_on" in res:
            import ray

            res["trained_on"]["ray_node_id"] = ray.get_runtime_context().get_node_id()
        return res


def _convert_task(run_tar: bytes, cid: str, profile: str, estimate: bool) -> dict[str, Any]:
    jobs.limit_threads(1)
    with tempfile.TemporaryDirectory(prefix="edgepool-sweep-") as d:
        run_dir = Path(d) / cid
        jobs.unpack(run_tar, run_dir)
        res = jobs.convert_job(str(run_dir), profile, estimate)
        if "error" not in res:
            res["tar"] = jobs.pack(run_dir / runs.EXPORTS / profile)
        return res


def _bench_task(bundle: bytes, cid: str, profile: str, device: str, bench: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgepool-sweep-") as d:
        run_dir = Path(d) / cid
        jobs.unpack(bundle, run_dir)
        return jobs.bench_job(str(run_dir / runs.EXPORTS / profile), profile, device, bench)


# ---------------------------------------------------------------- the executor (driver side)


class RayExecutor:
    def __init__(self, sweep: Any, address: str | None) -> None:
        ray = require_ray()
        self.ray, self.sweep = ray, sweep
        remote = sorted({device_resource(a.device) for a in sweep.assignments
                         if a.device and device_key(a.device) != LOCAL})
        self.started = not ray.is_initialized()
        if self.started:
            common = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
            try:
                if address:
                    ray.init(address=address, **common)
                else:
                    ray.init(resources={r: 1 for r in remote}, include_dashboard=False, **common)
            except ConnectionError as e:
                raise InputError(f"cannot connect to the Ray cluster at {address}: {e}",
                                 "start its head with `ray start --head` and give the address it prints; a cluster "
                                 "with token authentication needs RAY_AUTH_MODE=token and its token here too") from None
        have = ray.cluster_resources()
        for r in remote:
            if r not in have:
                raise InputError(f"no node of the Ray cluster declares the device resource {r}",
                                 f"start the node that reaches the device with: ray start --address HEAD "
                                 f"--resources '{{\"{r}\": 1}}'")
            if have[r] != 1:
                raise InputError(f"the Ray cluster declares the device resource {r} {have[r]:g} times",
                                 "declare each device once, with capacity 1, on the node that reaches it")
        self.node_id = ray.get_runtime_context().get_node_id()
        self.node_cpus = next((n["Resources"].get("CPU", 0) for n in ray.nodes()
                               if n["NodeID"] == self.node_id and n.get("Alive")), 0)
        self._train = ray.remote(num_cpus=1, max_retries=0)(_train_task)
        self._convert = ray.remote(num_cpus=1, max_retries=0)(_convert_task)
        self._bench = ray.remote(max_retries=0)(_bench_task)
        self.tasks: dict[Any, Any] = {}

    def can_start(self, t: Any, running: list[Any], pending: list[Any]) -> bool:
        return True  # Ray queues tasks by their resources: CPUs, and each device's capacity of 1

    def submit(self, t: Any) -> Any:
        s = self.sweep
        run_dir = s.run_dir(t.config)
        if t.kind == "train":
            tar = jobs.pack(run_dir) if run_dir.exists() else None
            ref = self._train.remote(s.spec.to_dict(), s.configs[t.config].to_dict(), tar)
        elif t.kind == "convert":
            keep = [n for n in sorted(p.name for p in run_dir.iterdir()) if n not in (runs.EXPORTS, runs.BENCHMARKS)]
            ref = self._convert.remote(jobs.pack(run_dir, keep), t.config, t.profile, s.by_profile[t.profile].device is None)
        else:
            bundle = jobs.pack(run_dir, [runs.MANIFEST, runs.TEST_DATA, f"{runs.EXPORTS}/{t.profile}"])
            if device_key(t.device) == LOCAL:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

                opts: dict[str, Any] = {"num_cpus": self.node_cpus,
                                        "scheduling_strategy": NodeAffinitySchedulingStrategy(self.node_id, soft=False)}
            else:
                opts = {"num_cpus": 0, "resources": {device_resource(t.device): 1}}
            ref = self._bench.options(**opts).remote(bundle, t.config, t.profile, t.device, s.spec.bench.to_dict())
        self.tasks[ref] = t
        return ref

    def wait(self, handles: list[Any]) -> list[tuple[Any, dict[str, Any]]]:
        ready, _ = self.ray.wait(handles, num_returns=1)
        out = []
        for ref in ready:
            t = self.tasks.pop(ref)
            try:
                res = self.ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a task or its worker died: retried on the next run
                res = {"error": jobs.error_record(e)}
            tar = res.pop("tar", None)
            if tar is not None:
                where = self.sweep.run_dir(t.config)
                _replace_with(tar, where if t.kind == "train" else where / runs.EXPORTS / t.profile)
            out.append((ref, res))
        return out

    def close(self, kill: bool) -> None:
        if kill:
            for ref in list(self.tasks):
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001, S110 - finished meanwhile
                    pass
        if self.started:
            self.ray.shutdown()


def _replace_with(tar: bytes, target: Path) -> None:
    """Unpack `tar` into a staging folder beside `target`, then put it in place (atomically, like runs.py)."""
    stage = target.parent / f".{target.name}.staging-{uuid.uuid4().hex[:8]}"
    try:
        jobs.unpack(tar, stage)
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
            stage.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.rename(target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)

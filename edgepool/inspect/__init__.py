"""Static inspection of exported models: ops, MACs, params, arena, runtime support, estimates.

`inspect_model(path, profile=None)` reads a .tflite (or a Core ML .mlpackage/.mlmodel) without
running it and returns an `InspectReport`; `estimate_model(path, profile)` returns the latency /
memory / energy `Estimate` from MACs, tensor sizes and the profile's numbers. No TensorFlow is
imported for .tflite files.

Estimate formulas (all labelled "estimate" wherever shown):
    latency_ms  = max(MACs / (peak_gmacs * 1e9), bytes_moved / bandwidth) * 1000
                  (peak_gmacs = peak_gmacs_int8 for int8 models, peak_gmacs_fp32 otherwise; the
                  bandwidth term only when the profile has `memory_bandwidth_gb_s`)
    memory      = planned activation arena + constant (weight) bytes
    energy_mj   = active_power_w * latency_ms
    inferences per battery = battery_wh * 3600 / (energy_mj / 1000)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgepool.errors import InputError

from .arena import ArenaPlan, plan_arena
from .costs import OpCost, graph_costs, total_params
from .edgetpu import EdgeTpuAnalysis, analyze_edgetpu
from .support import OpSupport, check_runtime_support, model_min_runtime
from .tflite import TfliteModel, read_tflite

__all__ = [
    "Estimate", "InspectReport", "analyze_edgetpu", "estimate_model", "inspect_model", "read_tflite",
    "ESTIMATE_FORMULA",
]

ESTIMATE_FORMULA = (
    "latency_ms = max(MACs / (peak_gmacs x 1e9), bytes_moved / bandwidth) x 1000 "
    "(peak_gmacs_int8 for int8 models, peak_gmacs_fp32 otherwise; bandwidth term only if the profile has one); "
    "memory = activation arena + weight bytes; energy_mj = active_power_w x latency_ms; "
    "inferences per battery = battery_wh x 3600 / energy_J"
)


@dataclass
class Estimate:
    """Roofline-style estimates for one inference. Estimates, not measurements."""

    profile: str
    precision: str  # "int8" | "float"
    macs: int
    peak_gmacs: float | None
    compute_ms: float | None
    bytes_moved: int
    bandwidth_gb_s: float | None
    memory_ms: float | None
    latency_ms: float | None
    activation_bytes: int
    weight_bytes: int
    energy_mj: float | None
    battery_inferences: float | None
    notes: list[str] = field(default_factory=list)
    measured_latency_ms: float | None = None
    measured_source: str | None = None

    @property
    def memory_bytes(self) -> int:
        return self.activation_bytes + self.weight_bytes

    @property
    def achieved_fraction_of_peak(self) -> float | None:
        if not self.measured_latency_ms or not self.peak_gmacs or not self.macs:
            return None
        return (self.macs / (self.measured_latency_ms / 1000)) / (self.peak_gmacs * 1e9)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "estimate", "formula": ESTIMATE_FORMULA, "profile": self.profile, "precision": self.precision,
            "macs": self.macs, "peak_gmacs": self.peak_gmacs, "compute_ms": self.compute_ms,
            "bytes_moved": self.bytes_moved, "bandwidth_gb_s": self.bandwidth_gb_s, "memory_ms": self.memory_ms,
            "latency_ms": self.latency_ms, "memory_bytes": self.memory_bytes, "activation_bytes": self.activation_bytes,
            "weight_bytes": self.weight_bytes, "energy_mj": self.energy_mj,
            "battery_inferences": self.battery_inferences, "notes": self.notes,
            "measured_latency_ms": self.measured_latency_ms, "measured_source": self.measured_source,
            "achieved_fraction_of_peak": self.achieved_fraction_of_peak,
        }


@dataclass
class InspectReport:
    path: Path
    format: str  # "tflite" | "coreml"
    model: TfliteModel | None
    costs: list[OpCost]
    arena: ArenaPlan | None
    macs: int
    params: int
    weight_bytes: int
    min_runtime_table: str | None
    profile: Any = None
    support: list[OpSupport] | None = None
    edgetpu: EdgeTpuAnalysis | None = None
    estimate: Estimate | None = None
    coreml: dict[str, Any] | None = None

    @property
    def precision(self) -> str:
        return precision_of(self.model) if self.model else "unknown"

    def unsupported_ops(self) -> list[OpSupport]:
        return [s for s in self.support or [] if s.supported is False]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": str(self.path), "format": self.format}
        if self.coreml is not None:
            d["coreml"] = self.coreml
        m = self.model
        if m is not None:
            g = m.main
            ops = []
            for op, c in zip(g.ops, self.costs, strict=True):
                row = op.to_dict()
                row.update(macs=c.macs, params=c.params,
                           input_shapes=[g.tensors[i].shape if i >= 0 else None for i in op.inputs],
                           output_shapes=[g.tensors[i].shape for i in op.outputs])
                ops.append(row)
            d.update(
                size_bytes=m.size_bytes, schema_version=m.schema_version, precision=self.precision,
                subgraphs=[{"index": s.index, "name": s.name, "ops": len(s.ops), "tensors": len(s.tensors),
                            "inputs": s.inputs, "outputs": s.outputs} for s in m.subgraphs],
                inputs=[g.tensors[i].to_dict() for i in g.inputs], outputs=[g.tensors[i].to_dict() for i in g.outputs],
                ops=ops, tensors=[t.to_dict() for t in g.tensors],
                totals={"ops": len(g.ops), "macs": self.macs, "params": self.params, "weight_bytes": self.weight_bytes,
                        "arena_bytes": self.arena.arena_bytes if self.arena else None,
                        "peak_live_bytes": self.arena.peak_live_bytes if self.arena else None,
                        "peak_op": self.arena.peak_op if self.arena else None},
                min_runtime_version={"metadata": m.min_runtime_version, "op_table": self.min_runtime_table},
                edgepool_metadata=m.edgepool_metadata, metadata_names=m.metadata_names, warnings=m.warnings,
            )
        if self.profile is not None:
            d["profile"] = getattr(self.profile, "name", str(self.profile))
        if self.support is not None:
            d["support"] = [s.to_dict() for s in self.support]
        if self.edgetpu is not None:
            d["edgetpu"] = self.edgetpu.to_dict()
        if self.estimate is not None:
            d["estimate"] = self.estimate.to_dict()
        return d


def precision_of(model: TfliteModel) -> str:
    """"int8" when every op's weight-bearing inputs and activations are 8-bit, "float" if any is float."""
    g = model.main
    for op in g.ops:
        for i in op.inputs + op.outputs:
            t = g.tensor(i) if i >= 0 else None
            if t is not None and t.dtype.startswith(("FLOAT", "BFLOAT")) and op.name not in ("QUANTIZE", "DEQUANTIZE"):
                return "float"
    return "int8"


def _runtime_name(profile: Any) -> str:
    rt = getattr(profile, "runtime", None)
    return str(getattr(rt, "value", rt) or "tflite")


def bytes_moved(model: TfliteModel) -> int:
    """Weights read once plus every op's activation inputs read and outputs written."""
    g = model.main
    total = model.constant_bytes
    for op in g.ops:
        for i in op.inputs + op.outputs:
            t = g.tensor(i) if i >= 0 else None
            if t is not None and not t.is_constant:
                total += t.nbytes or 0
    return total


def estimate_for(model: TfliteModel, arena: ArenaPlan, macs: int, profile: Any,
                 edgetpu: EdgeTpuAnalysis | None = None, costs: list[OpCost] | None = None) -> Estimate:
    prec = precision_of(model)
    notes: list[str] = []
    peak = getattr(profile, "peak_gmacs_int8" if prec == "int8" else "peak_gmacs_fp32", None) or None
    counted = macs
    if _runtime_name(profile) == "edgetpu" and edgetpu is not None and costs is not None:
        cpu_macs = sum(c.macs for c, o in zip(costs, edgetpu.ops, strict=True) if not o.on_tpu)
        if cpu_macs:
            counted = macs - cpu_macs
            notes.append(f"{cpu_macs:,} MACs in ops left on the host CPU are not in the Edge TPU estimate")
    compute_ms = counted / (peak * 1e9) * 1000 if peak else None
    if not peak:
        notes.append(f"the profile has no {prec} peak compute: no latency estimate")
    moved = bytes_moved(model)
    bw = getattr(profile, "memory_bandwidth_gb_s", None) or None
    memory_ms = moved / (bw * 1e9) * 1000 if bw else None
    parts = [x for x in (compute_ms, memory_ms) if x is not None]
    latency = max(parts) if parts else None
    power = getattr(profile, "active_power_w", None)
    energy = power * latency if (power and latency is not None) else None
    battery = getattr(profile, "battery_wh", None)
    inferences = battery * 3600 / (energy / 1000) if (battery and energy) else None
    return Estimate(
        profile=getattr(profile, "name", "?"), precision=prec, macs=macs, peak_gmacs=peak, compute_ms=compute_ms,
        bytes_moved=moved, bandwidth_gb_s=bw, memory_ms=memory_ms, latency_ms=latency,
        activation_bytes=arena.arena_bytes, weight_bytes=model.constant_bytes, energy_mj=energy,
        battery_inferences=inferences, notes=notes,
    )


def find_measured_latency(model_path: Path, profile_name: str | None = None) -> tuple[float, str] | None:
    """Median latency of this model in the newest RUN/benchmarks/<stamp>.json written by `edgepool benchmark`.

    A result counts when it measured this very file and on the same device as `profile_name` (a local
    benchmark without a profile is the `host-cpu` profile); a measurement on another device is never
    shown next to an estimate.
    """
    model_path = Path(model_path).resolve()
    export_dir = model_path.parent
    run = export_dir.parent.parent if export_dir.parent.name == "exports" else None
    if run is None or not (run / "benchmarks").is_dir():
        return None
    files = sorted((run / "benchmarks").glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for f in files:
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        results = doc.get("results") if isinstance(doc, dict) else None
        for res in results if isinstance(results, list) else []:
            if not isinstance(res, dict) or res.get("error") or not isinstance(res.get("model_path"), str):
                continue
            if Path(res["model_path"]).resolve() != model_path:
                continue
            measured_on = res.get("profile") or ("host-cpu" if res.get("device") == "local" else None)
            if profile_name and measured_on != profile_name:
                continue
            med = (res.get("latency_ms") or {}).get("median")
            if isinstance(med, (int, float)) and not isinstance(med, bool) and math.isfinite(med) and med > 0:
                return float(med), str(f)
    return None


def _resolve_profile(profile: Any) -> Any:
    if profile is None or not isinstance(profile, (str, Path)):
        return profile
    from edgepool.profiles import resolve

    return resolve(profile)


def inspect_model(path: str | Path, profile: Any = None) -> InspectReport:
    """Read a model file statically. `profile`: a DeviceProfile, a profile name/path, or None."""
    path = Path(path)
    prof = _resolve_profile(profile)
    if path.suffix in (".mlpackage", ".mlmodel"):
        from .coreml import read_coreml

        info = read_coreml(path)
        return InspectReport(path, "coreml", None, [], None, 0, info["params"], info["weight_bytes"], None,
                             profile=prof, coreml=info)
    if path.is_dir():
        raise InputError(f"{path} is a directory", "pass a .tflite, .mlpackage or .mlmodel file")
    if path.suffix not in (".tflite", ".lite", ""):
        raise InputError(f"{path} is not a .tflite/.mlpackage/.mlmodel file", "pass an exported model file")
    model = read_tflite(path)
    costs = graph_costs(model)
    arena = plan_arena(model.main)
    macs = sum(c.macs for c in costs)
    params = total_params(costs, model.main)
    report = InspectReport(path, "tflite", model, costs, arena, macs, params, model.constant_bytes,
                           model_min_runtime(model), profile=prof)
    if prof is not None:
        rt = _runtime_name(prof)
        if rt == "coreml":
            report.support = []
        else:
            report.support = check_runtime_support(model, getattr(prof, "runtime_version", None),
                                                   "edgetpu host tflite-runtime" if rt == "edgetpu" else rt)
        if rt == "edgetpu":
            report.edgetpu = analyze_edgetpu(model)
        est = estimate_for(model, arena, macs, prof, report.edgetpu, costs)
        measured = find_measured_latency(path, getattr(prof, "name", None))
        if measured:
            est.measured_latency_ms, est.measured_source = measured
        report.estimate = est
    return report


def estimate_model(path: str | Path, profile: Any) -> Estimate:
    """Latency / memory / energy estimate of one inference of a .tflite on `profile` (name, path or object)."""
    report = inspect_model(path, profile)
    if report.estimate is None:
        raise InputError(f"cannot estimate {path}: only .tflite models have an estimate", "export a .tflite")
    return report.estimate

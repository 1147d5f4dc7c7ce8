"""Static inspection of exported models: ops, MACs, params, arena, runtime support, estimates.

`inspect_model(path, profile=None)` reads a .tflite (or a Core ML .mlpackage/.mlmodel) without
running it and returns an `InspectReport`; `estimate_model(path, profile)` returns the latency /
memory / energy `Estimate` of a .tflite from its MACs, tensor sizes and the profile's numbers
(`estimate_for`, described by `ESTIMATE_FORMULA`). A path may also be an export folder (its model
file: `runs.find_model_file`). No TensorFlow is imported for .tflite files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgepool.errors import InputError
from edgepool.types import Runtime

from .arena import ArenaPlan, plan_arena
from .costs import OpCost, graph_costs, total_params
from .edgetpu import EdgeTpuAnalysis, analyze_edgetpu
from .support import OpSupport, check_profile_support, model_min_runtime
from .tflite import TfliteModel, read_tflite

if TYPE_CHECKING:
    from edgepool.profiles import DeviceProfile

__all__ = [
    "Estimate", "InspectReport", "analyze_edgetpu", "estimate_for", "estimate_model", "inspect_model", "read_tflite",
    "ESTIMATE_FORMULA",
]

CORE_ML_SUFFIXES = (".mlpackage", ".mlmodel")

# The one description of `estimate_for`, shown wherever an estimate is (CLI help, --json "formula").
ESTIMATE_FORMULA = (
    "latency_ms = MACs / (peak_gmacs x 1e9) x 1000 (peak_gmacs_int8 for int8 models, peak_gmacs_fp32 otherwise; "
    "on an Edge TPU only the MACs of ops mapped to the TPU); memory = activation arena + weight bytes; "
    "energy_mj = active_power_w x latency_ms; inferences per battery = battery_wh x 3600 / energy_J "
    "(battery devices only); beside a measurement, efficiency = latency_ms / measured median (the share of the "
    "peak achieved; above 1 the measurement beats the roofline and the peak is too low)"
)


@dataclass
class Estimate:
    """Compute-bound estimates for one inference (`ESTIMATE_FORMULA`). Estimates, not measurements.

    With a measurement of the same model on the same device (`add_measurement`), `efficiency` says how
    much of the peak it achieved, and `faster_than_roofline` flags one the estimate cannot explain.
    """

    profile: str
    precision: str  # "int8" | "float"
    macs: int
    peak_gmacs: float | None
    latency_ms: float | None
    activation_bytes: int
    weight_bytes: int
    energy_mj: float | None
    battery_inferences: float | None
    notes: list[str] = field(default_factory=list)
    measured_latency_ms: float | None = None
    measured_source: str | None = None
    peak_source: str | None = None  # the profile's source of `peak_gmacs` ("derived: ...", "datasheet: ...")

    @property
    def memory_bytes(self) -> int:
        return self.activation_bytes + self.weight_bytes

    @property
    def achieved_fraction_of_peak(self) -> float | None:
        if not self.measured_latency_ms or not self.peak_gmacs or not self.macs:
            return None
        return (self.macs / (self.measured_latency_ms / 1000)) / (self.peak_gmacs * 1e9)

    @property
    def efficiency(self) -> float | None:
        """Measured against estimated: estimated latency / measured latency, i.e. the share of the peak the
        measurement achieved over the MACs the estimate counts (1.0 = at the roofline). Above 1 the
        measurement beat the roofline, so the estimate is wrong (`faster_than_roofline`)."""
        if not self.measured_latency_ms or not self.latency_ms:
            return None
        return self.latency_ms / self.measured_latency_ms

    @property
    def faster_than_roofline(self) -> bool:
        """A measurement faster than the compute-bound estimate: physically impossible, so the peak is too low."""
        eff = self.efficiency
        return eff is not None and eff > 1.0

    def add_measurement(self, latency_ms: float, source: str) -> None:
        """Put a measured median latency beside the estimate; note it when it beats the roofline."""
        self.measured_latency_ms, self.measured_source = latency_ms, source
        if self.faster_than_roofline and self.latency_ms is not None:
            self.notes.append(f"measured {_fmt_ms(latency_ms)} is faster than the {_fmt_ms(self.latency_ms)} "
                              "roofline: the profile's peak is too low")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "estimate", "formula": ESTIMATE_FORMULA, "profile": self.profile, "precision": self.precision,
            "macs": self.macs, "peak_gmacs": self.peak_gmacs, "latency_ms": self.latency_ms,
            "memory_bytes": self.memory_bytes, "activation_bytes": self.activation_bytes,
            "weight_bytes": self.weight_bytes, "energy_mj": self.energy_mj,
            "battery_inferences": self.battery_inferences, "notes": self.notes,
            "measured_latency_ms": self.measured_latency_ms, "measured_source": self.measured_source,
            "achieved_fraction_of_peak": self.achieved_fraction_of_peak, "peak_source": self.peak_source,
            "efficiency": self.efficiency, "faster_than_roofline": self.faster_than_roofline,
        }


def _fmt_ms(ms: float) -> str:
    """21.1 µs, 1.234 ms."""
    return f"{ms * 1000:.1f} µs" if ms < 1 else f"{ms:.3f} ms"


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
    profile: DeviceProfile | None = None
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
            d["profile"] = self.profile.name
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


def estimate_for(model: TfliteModel, arena: ArenaPlan, macs: int, profile: DeviceProfile,
                 edgetpu: EdgeTpuAnalysis | None = None, costs: list[OpCost] | None = None) -> Estimate:
    """The estimate of one inference of `model` on `profile`: `ESTIMATE_FORMULA`, computed."""
    prec = precision_of(model)
    notes: list[str] = []
    peak_key = "peak_gmacs_int8" if prec == "int8" else "peak_gmacs_fp32"
    peak = getattr(profile, peak_key) or None
    counted = macs
    if profile.runtime == Runtime.EDGETPU and edgetpu is not None and costs is not None:
        cpu_macs = sum(c.macs for c, o in zip(costs, edgetpu.ops, strict=True) if not o.on_tpu)
        if cpu_macs:
            counted = macs - cpu_macs
            notes.append(f"{cpu_macs:,} MACs in ops left on the host CPU are not in the Edge TPU estimate")
    latency = counted / (peak * 1e9) * 1000 if peak else None
    if not peak:
        notes.append(f"the profile has no {prec} peak compute: no latency estimate")
    power = profile.active_power_w
    energy = power * latency if (power and latency is not None) else None
    battery = profile.battery_wh
    inferences = battery * 3600 / (energy / 1000) if (battery and energy) else None
    return Estimate(
        profile=profile.name, precision=prec, macs=macs, peak_gmacs=peak, latency_ms=latency,
        activation_bytes=arena.arena_bytes, weight_bytes=model.constant_bytes, energy_mj=energy,
        battery_inferences=inferences, notes=notes, peak_source=profile.sources.get(peak_key) if peak else None,
    )


def find_measured_latency(model_path: Path, profile_name: str | None = None) -> tuple[float, str] | None:
    """Median latency of this model in the newest RUN/benchmarks/<stamp>.json written by `edgepool benchmark`.

    A result counts when it measured this very file and on the same device as `profile_name` (a local
    benchmark without a profile is the `host-cpu` profile); a measurement on another device is never
    shown next to an estimate.
    """
    from edgepool import runs

    model_path = Path(model_path).resolve()
    export_dir = model_path.parent
    run = export_dir.parent.parent if export_dir.parent.name == runs.EXPORTS else None
    if run is None or not (run / runs.BENCHMARKS).is_dir():
        return None
    files = sorted((run / runs.BENCHMARKS).glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
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


def _resolve_profile(profile: DeviceProfile | str | Path | None) -> DeviceProfile | None:
    if profile is None or not isinstance(profile, (str, Path)):
        return profile
    from edgepool.profiles import resolve

    return resolve(profile)


def _model_file(path: str | Path) -> Path:
    """A model file as is; an export folder -> its model file (`runs.find_model_file`)."""
    path = Path(path)
    if path.is_dir() and path.suffix != ".mlpackage":
        from edgepool import runs  # runs loads numpy: only for a folder

        return runs.find_model_file(path)
    return path


def inspect_model(path: str | Path, profile: DeviceProfile | str | Path | None = None) -> InspectReport:
    """Read a model file (or an export folder's model) statically. `profile`: a DeviceProfile, a profile
    name or TOML path, or None; with one, the report has op support on it and an estimate (.tflite)."""
    path = _model_file(path)
    prof = _resolve_profile(profile)
    if path.suffix in CORE_ML_SUFFIXES:
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
        rt = prof.runtime
        if rt == Runtime.COREML:
            report.support = []
        else:
            report.support = check_profile_support(model, prof)
        if rt == Runtime.EDGETPU:
            report.edgetpu = analyze_edgetpu(model)
        est = estimate_for(model, arena, macs, prof, report.edgetpu, costs)
        measured = find_measured_latency(path, prof.name)
        if measured:
            est.add_measurement(*measured)
        report.estimate = est
    return report


def estimate_model(path: str | Path, profile: DeviceProfile | str | Path) -> Estimate:
    """Latency / memory / energy estimate of one inference of a .tflite (or an export folder holding one)
    on `profile` (a DeviceProfile, name or path). A Core ML model is an InputError: estimates are .tflite only.

    For a compiled Edge TPU export the estimate reads the CPU int8 model beside it (sidecar "cpu_file"):
    the compiled file is one custom op, while the CPU model shows which ops the Edge TPU maps."""
    file = _model_file(path)
    if file.suffix in CORE_ML_SUFFIXES:
        what = f"{path} is a Core ML model" if file == Path(path) else f"{path} holds a Core ML model ({file.name})"
        raise InputError(f"{what}: estimates exist only for .tflite models",
                         "estimate a .tflite export of the same model instead")
    folder = Path(path)
    if folder.is_dir():
        from edgepool import runs

        sidecar = runs.read_json(folder / runs.SIDECAR) if (folder / runs.SIDECAR).is_file() else None
        cpu_file = sidecar.get("cpu_file") if isinstance(sidecar, dict) else None
        if cpu_file and (folder / str(cpu_file)).is_file():
            file = folder / str(cpu_file)
    report = inspect_model(file, profile)
    assert report.estimate is not None  # a .tflite with a profile always has one
    return report.estimate

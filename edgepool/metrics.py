"""Metrics export: benchmark results and gate reports as Prometheus text exposition and JSON lines.

    write_prometheus(path, benchmark_families(results))        # node_exporter textfile / Pushgateway format
    append_jsonl(path, benchmark_records(results))              # one JSON object per result, appended

The exposition text is written by `prometheus_client` (own `CollectorRegistry`, `write_to_textfile`:
temp file + rename), so the format is right by construction. Metric names and labels (the Grafana
dashboard in dashboards/grafana/edgepool.json queries exactly these; a test holds them to it):

Benchmark (labels `model`, `export`, `device`, `profile`, `recipe`, `pooling`; `model` is the run's name,
`pooling` the model's pooling kinds joined by "+"; a missing value is ""):
- `edgepool_inference_latency_seconds` summary: quantile 0.5 / 0.9 / 0.95 / 0.99, `_sum`, `_count`
- `edgepool_window_latency_seconds{window, quantile}` gauge: each timed window's median and p95
- `edgepool_latency_window_spread_ratio`, `edgepool_model_size_bytes`, `edgepool_memory_peak_rss_bytes`,
  `edgepool_memory_footprint_bytes` (peak RSS above the process before the model), `edgepool_accuracy_ratio`
  (on the device), `edgepool_accuracy_delta_ratio{reference="keras"}` (that minus the Keras model's test accuracy)
- `edgepool_energy_per_inference_joules{kind}`, `edgepool_power_watts{kind}` (kind: measured | estimated)
- `edgepool_temperature_celsius{zone, when}` (when: before | after the timed phase), `edgepool_throttled`
- `edgepool_delegate_coverage_ratio{delegate}`

Gate (labels `model` (the candidate), `baseline`, `export`, `device`, `profile`, `recipe`, `pooling`):
- `edgepool_gate_passed` (1 / 0), `edgepool_gate_check_passed{check, subject}` (1 pass, 0 fail; skips are not written)
- `edgepool_accuracy_delta_ratio{reference="baseline"}`: candidate minus baseline accuracy (Keras: export "",
  after export: the export, on a device: its device)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import runs
from .errors import InputError, ModelError

if TYPE_CHECKING:
    from .gate import GateReport

BENCH_LABELS = ("model", "export", "device", "profile", "recipe", "pooling")
GATE_LABELS = ("model", "baseline", "export", "device", "profile", "recipe", "pooling")
QUANTILES = (("median", "0.5"), ("p90", "0.9"), ("p95", "0.95"), ("p99", "0.99"))
WINDOW_QUANTILES = (("median", "0.5"), ("p95", "0.95"))
LATENCY = "edgepool_inference_latency_seconds"

# name -> (type, help, extra label names beyond the row's labels)
BENCH_METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    LATENCY: ("summary", "Inference latency over all timed windows (invoke only).", ()),
    "edgepool_window_latency_seconds": ("gauge", "Latency of each timed window (median and p95).", ("window", "quantile")),
    "edgepool_latency_window_spread_ratio": ("gauge", "(max - min) / median of the windows' median latencies.", ()),
    "edgepool_model_size_bytes": ("gauge", "Model file size.", ()),
    "edgepool_memory_peak_rss_bytes": ("gauge", "Peak resident memory of the benchmark process.", ()),
    "edgepool_memory_footprint_bytes": ("gauge", "Peak resident memory above the process before the model loaded.", ()),
    "edgepool_accuracy_ratio": ("gauge", "Top-1 accuracy measured on the device (test split).", ()),
    "edgepool_accuracy_delta_ratio": ("gauge", "Accuracy minus the reference's (keras: the source model; baseline: the gate's baseline).", ("reference",)),
    "edgepool_energy_per_inference_joules": ("gauge", "Energy per inference (idle subtracted when measured).", ("kind",)),
    "edgepool_power_watts": ("gauge", "Average power while running inferences.", ("kind",)),
    "edgepool_temperature_celsius": ("gauge", "Temperature of a thermal zone before / after the timed phase.", ("zone", "when")),
    "edgepool_throttled": ("gauge", "1 when the device showed signs of throttling during the timed phase.", ()),
    "edgepool_delegate_coverage_ratio": ("gauge", "Share of the model's nodes a delegate took.", ("delegate",)),
}
GATE_METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "edgepool_gate_passed": ("gauge", "1 when the candidate passed every gate check against the baseline.", ()),
    "edgepool_gate_check_passed": ("gauge", "1 when the gate check passed, 0 when it failed.", ("check", "subject")),
    "edgepool_accuracy_delta_ratio": BENCH_METRICS["edgepool_accuracy_delta_ratio"],
}


@dataclass
class Family:
    """One metric family: samples are (sample name, labels, value)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)


class _Families:
    """Collects samples by metric name, in the order the metrics were declared."""

    def __init__(self, spec: dict[str, tuple[str, str, tuple[str, ...]]]) -> None:
        self.spec = spec
        self.families: dict[str, Family] = {}

    def add(self, name: str, labels: dict[str, str], value: float | None, sample: str | None = None) -> None:
        if value is None:
            return
        kind, help_text, _ = self.spec[name]
        fam = self.families.setdefault(name, Family(name, kind, help_text))
        fam.samples.append((sample or name, {k: "" if v is None else str(v) for k, v in labels.items()}, float(value)))

    def list(self) -> list[Family]:
        return [self.families[n] for n in self.spec if n in self.families]


def _get(r: Any, key: str) -> Any:
    return r.get(key) if isinstance(r, dict) else getattr(r, key, None)


def _as_dict(r: Any) -> dict[str, Any]:
    return r if isinstance(r, dict) else r.to_dict()


def pooling_of(spec: dict[str, Any] | None) -> str:
    """The pooling kinds of a model spec's blocks, joined by "+" in order of first use ("" when unknown)."""
    kinds: list[str] = []
    for block in (spec or {}).get("blocks") or []:
        kind = str(block.get("pool") or "none")
        if kind not in kinds:
            kinds.append(kind)
    return "+".join(kinds)


def _sidecar(model_path: str | None) -> dict[str, Any]:
    if not model_path:
        return {}
    p = Path(model_path).parent / runs.SIDECAR
    try:
        side = runs.read_json(p) if p.is_file() else {}
    except ModelError:
        return {}
    return side if isinstance(side, dict) else {}


def result_labels(r: Any) -> dict[str, str]:
    """The labels of one benchmark result: model (its run's name), export, device, profile, recipe, pooling."""
    d = _as_dict(r)
    side = _sidecar(d.get("model_path"))
    run_dir, model_path = d.get("run_dir"), d.get("model_path")
    model = Path(run_dir).name if run_dir else (Path(model_path).parent.name if side else Path(model_path or "").stem)
    export = Path(model_path).parent.name if side and model_path else str(d.get("name") or "")
    return {"model": model, "export": export, "device": str(d.get("device") or ""),
            "profile": str(d.get("profile") or ""), "recipe": str(d.get("recipe") or side.get("recipe") or ""),
            "pooling": pooling_of(side.get("model_spec"))}


def benchmark_families(results: Iterable[Any]) -> list[Family]:
    """Metric families for benchmark results (BenchmarkResult objects or their dicts). Rows that measured
    nothing (skipped, failed) are left out."""
    f = _Families(BENCH_METRICS)
    seen: set[tuple[str, ...]] = set()
    for r in results:
        d = _as_dict(r)
        lat = d.get("latency_ms") or {}
        if d.get("skipped") or d.get("error") or not lat:
            continue
        labels = result_labels(d)
        if tuple(labels.values()) in seen and d.get("run_dir"):  # two runs of one folder name: the full path tells
            labels["model"] = str(d["run_dir"])
        seen.add(tuple(labels.values()))
        for key, q in QUANTILES:
            v = lat.get(key)
            f.add(LATENCY, {**labels, "quantile": q}, None if v is None else v / 1000)
        runs_n = int(d.get("runs") or 0)
        if lat.get("mean") is not None and runs_n:
            f.add(LATENCY, labels, lat["mean"] / 1000 * runs_n, f"{LATENCY}_sum")
            f.add(LATENCY, labels, runs_n, f"{LATENCY}_count")
        for w in d.get("windows") or []:
            for key, q in WINDOW_QUANTILES:
                v = (w.get("latency_ms") or {}).get(key)
                f.add("edgepool_window_latency_seconds", {**labels, "window": str(w.get("index")), "quantile": q},
                      None if v is None else v / 1000)
        f.add("edgepool_latency_window_spread_ratio", labels, d.get("window_spread"))
        f.add("edgepool_model_size_bytes", labels, d.get("model_size_bytes") or None)
        mem = d.get("memory") or {}
        peak = mem.get("peak_rss_bytes") or d.get("peak_rss_bytes")
        f.add("edgepool_memory_peak_rss_bytes", labels, peak)
        if peak is not None and mem.get("baseline_rss_bytes") is not None:
            f.add("edgepool_memory_footprint_bytes", labels, peak - mem["baseline_rss_bytes"])
        acc = d.get("accuracy")
        f.add("edgepool_accuracy_ratio", labels, acc)
        keras = _sidecar(d.get("model_path")).get("keras_test_accuracy")
        if acc is not None and keras is not None:
            f.add("edgepool_accuracy_delta_ratio", {**labels, "reference": "keras"}, acc - keras)
        energy = d.get("energy") or {}
        if energy.get("mj_per_inference") is not None:
            kind = str(energy.get("kind") or "")
            f.add("edgepool_energy_per_inference_joules", {**labels, "kind": kind}, energy["mj_per_inference"] / 1000)
            f.add("edgepool_power_watts", {**labels, "kind": kind}, energy.get("avg_power_w"))
        env = d.get("environment") or {}
        thermal = env.get("thermal") or {}
        for when in ("before", "after"):
            for zone, t in sorted(((thermal.get(when) or {}).get("temperatures_c") or {}).items()):
                f.add("edgepool_temperature_celsius", {**labels, "zone": zone, "when": when}, t)
        if env.get("throttled") is not None:
            f.add("edgepool_throttled", labels, 1.0 if env["throttled"] else 0.0)
        from .gate import coverage

        for name, share in sorted((coverage(d) or {}).items()):
            f.add("edgepool_delegate_coverage_ratio", {**labels, "delegate": name}, share)
    return f.list()


def gate_families(report: GateReport) -> list[Family]:
    """Metric families for a gate report: its verdict, each check's, and the accuracy deltas."""
    f = _Families(GATE_METRICS)
    cand, base = report.candidate, report.baseline
    spec = None
    if cand.run is not None:
        spec = cand.run.manifest.get("model", {}).get("spec")
    # a model is named as the benchmark metrics name it: its run folder (the export is a label of its own)
    top = {"model": cand.run.path.name if cand.run is not None else cand.name,
           "baseline": base.run.path.name if base.run is not None else base.name, "export": "", "device": "",
           "profile": "", "recipe": "", "pooling": pooling_of(spec)}
    f.add("edgepool_gate_passed", top, 1.0 if report.passed else 0.0)
    for c in report.checks:
        if c.status == "skip":
            continue
        pooling = top["pooling"]
        if c.export and c.export in cand.exports:
            pooling = pooling_of(cand.exports[c.export].sidecar.get("model_spec")) or pooling
        labels = {**top, "export": c.export or "", "device": c.device or "", "profile": c.profile or "",
                  "recipe": c.recipe or "", "pooling": pooling}
        f.add("edgepool_gate_check_passed", {**labels, "check": c.check, "subject": c.subject},
              1.0 if c.status == "pass" else 0.0)
        if c.check in ("accuracy", "quantized_accuracy") and c.candidate is not None and c.baseline is not None:
            f.add("edgepool_accuracy_delta_ratio", {**labels, "reference": "baseline"}, c.candidate - c.baseline)
    return f.list()


class _Collector:
    def __init__(self, families: list[Family]) -> None:
        self._families = families

    def collect(self) -> Iterator[Any]:
        from prometheus_client.metrics_core import Metric

        for fam in self._families:
            m = Metric(fam.name, fam.help, fam.kind)
            for sample, labels, value in fam.samples:
                m.add_sample(sample, labels, value)
            yield m


def exposition(families: list[Family]) -> str:
    """The Prometheus text exposition of `families` (what `write_prometheus` writes)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(families))  # type: ignore[arg-type]
    return generate_latest(registry).decode("utf-8")


_OURS = "# HELP edgepool_"


def _check_replaceable(path: Path) -> None:
    """A file is replaced only when it is one edgepool wrote (or empty): nothing else is lost."""
    if path.is_dir():
        raise InputError(f"{path} is a directory", "name a file for the metrics, e.g. edgepool.prom")
    if not path.exists():
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(len(_OURS))
    except OSError as e:
        raise InputError(f"cannot read {path} ({e.strerror or e})", "check the file's permissions") from None
    if head and head != _OURS:
        raise InputError(f"{path} exists and is not a metrics file edgepool wrote",
                         "choose another file name: only edgepool's own metrics file is replaced")


def write_prometheus(path: str | Path, families: list[Family]) -> Path:
    """Write the exposition to `path` through prometheus_client (temp file + rename). An existing file is
    replaced only when edgepool wrote it (a node_exporter textfile is rewritten each time)."""
    from prometheus_client import CollectorRegistry, write_to_textfile

    p = Path(path)
    _check_replaceable(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(families))  # type: ignore[arg-type]
    if not families:  # an empty exposition would not be recognisable as ours next time
        runs.atomic_write_text(p, _OURS + "results Nothing was measured.\n")
        return p
    write_to_textfile(str(p), registry)
    return p


# ------------------------------------------------------------------------------------------ JSON lines


def benchmark_records(results: Iterable[Any], session: str | None = None) -> list[dict[str, Any]]:
    """One record per benchmark result: kind "benchmark", its labels and the result (without raw latencies)."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out = []
    for r in results:
        d = _as_dict(r)
        out.append({"kind": "benchmark", "time": now, "session": session, "labels": result_labels(d), "result": d})
    return out


def gate_records(report: GateReport) -> list[dict[str, Any]]:
    """One record for the gate's verdict: its checks, counts and what was compared."""
    import datetime as dt

    return [{"kind": "gate", "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **report.to_dict()}]


def append_jsonl(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """Append one JSON line per record to `path` (created when missing). A file whose first line is not a
    JSON object is refused: appending would corrupt something that is not a JSON-lines log."""
    p = Path(path)
    _check_jsonl(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(rec, default=runs._json_default, allow_nan=False, separators=(",", ":")) + "\n"
                   for rec in records)
    with open(p, "a", encoding="utf-8") as fh:
        fh.write(text)
    return p


def _check_jsonl(p: Path) -> None:
    if p.is_dir():
        raise InputError(f"{p} is a directory", "name a file for the JSON lines, e.g. results.jsonl")
    if p.exists() and p.stat().st_size:
        with open(p, encoding="utf-8", errors="replace") as fh:
            first = fh.readline()
        try:
            ok = isinstance(json.loads(first), dict)
        except json.JSONDecodeError:
            ok = False
        if not ok:
            raise InputError(f"{p} is not a JSON-lines file (its first line is not a JSON object)",
                             "choose another file name for the results")


# ------------------------------------------------------------------------------------------ for commands


def check_targets(prometheus: str | Path | None = None, jsonl: str | Path | None = None) -> None:
    """Refuse, before any work, a metrics file that would replace or corrupt something edgepool did not write."""
    if prometheus is not None:
        _check_replaceable(Path(prometheus))
    if jsonl is not None:
        _check_jsonl(Path(jsonl))


def export_benchmark(results: list[Any], prometheus: str | Path | None, jsonl: str | Path | None,
                     saved: list[Path] | None = None) -> list[Path]:
    """Write benchmark results as Prometheus text and/or append them as JSON lines (with the session id of the
    files `saved` when there are some). Returns the files written."""
    written = []
    if prometheus is not None:
        written.append(write_prometheus(prometheus, benchmark_families(results)))
    if jsonl is not None:
        session = None
        for p in saved or []:
            doc = runs.read_json(p)
            session = (doc.get("session") or {}).get("id") if isinstance(doc, dict) else None
            if session:
                break
        written.append(append_jsonl(jsonl, benchmark_records(results, session)))
    return written

"""The regression gate: may a candidate model replace the baseline? Checks with PASS / FAIL / SKIP.

    report = compare(Path("runs/new"), Path("runs/old"))        # runs, or export folders
    report.passed        # False when any check failed; skipped checks (missing data) say why

What is compared (thresholds: `GateConfig`, shipped defaults in edgepool/data/gate/defaults.toml):

- `accuracy`: the Keras test accuracy in each run's manifest (drop in pp);
- `class_accuracy`: per class (cohort), a drop beyond the threshold *and* of at least
  `min_class_drop_samples` test samples (one sample of a small class is many pp);
- `exports`: every baseline export has a candidate export of the same name (runs compared);
- `quantized_accuracy`: each export's accuracy after quantization (verify.json) against the baseline's;
- `parity`: the candidate export's verification status (verify.json `status`);
- `size`: exported model bytes, and the Keras model's parameters;
- `latency`, `memory`, `energy`, `delegate`: from benchmark results measured in one benchmark run
  (the `session` every file of one `benchmark` call shares), paired by device and profile. Latency
  allows the threshold plus `latency_noise_factor` x the larger window spread of the percentile
  ((max - min) / median of the windows' values), so run-to-run noise does not fail a gate; energy
  allows the threshold plus the combined uncertainty; memory growth below `memory_noise_bytes` is
  page noise. Results from different benchmark runs are never compared.

Reads runs, exports and benchmark files; writes nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from importlib.resources import files
from pathlib import Path
from typing import Any

from . import runs
from .config import Field, Kind, Range, load_table
from .errors import InputError, ModelError

CHECKS = ("accuracy", "class_accuracy", "exports", "quantized_accuracy", "parity", "size", "latency", "memory",
          "energy", "delegate")
PASS, FAIL, SKIP = "pass", "fail", "skip"
PERCENTILES = ("median", "p90", "p95", "p99")

_PCT = Range(0, None)
SCHEMA: dict[str, Field] = {
    "max_accuracy_drop_pp": Field(Kind.NUMBER, range=_PCT, meaning="allowed drop of Keras test accuracy, in pp"),
    "max_class_accuracy_drop_pp": Field(Kind.NUMBER, range=_PCT, meaning="allowed drop of one class's accuracy, in pp"),
    "min_class_drop_samples": Field(Kind.INTEGER, range=Range(1, None),
                                    meaning="a class fails only when it lost at least this many test samples"),
    "max_quantized_accuracy_drop_pp": Field(Kind.NUMBER, range=_PCT,
                                            meaning="allowed drop of an export's accuracy (verify.json), in pp"),
    "allow_unverified": Field(Kind.BOOLEAN, meaning="skip, not fail, an export without verify.json"),
    "require_baseline_exports": Field(Kind.BOOLEAN, meaning="fail when a baseline export is missing"),
    "latency_percentile": Field(Kind.STRING, choices=PERCENTILES, meaning="the latency compared"),
    "max_latency_regression_pct": Field(Kind.NUMBER, range=_PCT, meaning="allowed latency growth, in percent"),
    "latency_noise_factor": Field(Kind.NUMBER, range=_PCT, meaning="times the window spread added to the allowance"),
    "max_size_growth_pct": Field(Kind.NUMBER, range=_PCT, meaning="allowed growth of model size, in percent"),
    "max_memory_growth_pct": Field(Kind.NUMBER, range=_PCT, meaning="allowed growth of the memory footprint, in percent"),
    "memory_noise_bytes": Field(Kind.INTEGER, range=Range(0, None), meaning="memory growth in bytes never failed"),
    "max_energy_growth_pct": Field(Kind.NUMBER, range=_PCT, meaning="allowed growth of energy per inference, in percent"),
    "max_delegate_coverage_drop_pp": Field(Kind.NUMBER, range=_PCT,
                                           meaning="allowed drop of a delegate's share of nodes, in pp"),
    "disabled": Field(Kind.STRINGS, choices=CHECKS, meaning="checks to leave out"),
}


@dataclass(frozen=True)
class GateConfig:
    """Thresholds of the gate (see edgepool/data/gate/defaults.toml for what each means)."""

    max_accuracy_drop_pp: float
    max_class_accuracy_drop_pp: float
    min_class_drop_samples: int
    max_quantized_accuracy_drop_pp: float
    allow_unverified: bool
    require_baseline_exports: bool
    latency_percentile: str
    max_latency_regression_pct: float
    latency_noise_factor: float
    max_size_growth_pct: float
    max_memory_growth_pct: float
    memory_noise_bytes: int
    max_energy_growth_pct: float
    max_delegate_coverage_drop_pp: float
    disabled: tuple[str, ...] = ()
    source: str = "defaults"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["disabled"] = list(self.disabled)
        return d


def defaults_path() -> Path:
    """The shipped defaults file."""
    return Path(str(files("edgepool").joinpath("data", "gate", "defaults.toml")))


def load_config(path: str | Path | None = None) -> GateConfig:
    """The shipped defaults, with the keys `path` sets (any subset) in their place. Unknown keys, wrong types
    and out-of-range values are errors naming the file and key (`edgepool.config`)."""
    values = load_table(defaults_path(), SCHEMA, what="gate config")
    missing = [f.name for f in fields(GateConfig) if f.name not in values and f.name not in ("disabled", "source")]
    if missing:  # the shipped file must set every threshold
        raise InputError(f"gate defaults {defaults_path()} lack {', '.join(missing)}", "reinstall edgepool")
    if path is not None:
        values.update(load_table(path, SCHEMA, what="gate config"))
    values["disabled"] = tuple(values.get("disabled") or ())
    return GateConfig(**values, source=str(path) if path is not None else "defaults")


# ------------------------------------------------------------------------------------------ what is compared


@dataclass
class Side:
    """A candidate or baseline: a run (all its exports) or one export (and the run it came from)."""

    path: Path
    run: runs.Run | None
    exports: dict[str, runs.Export]
    single_export: bool = False

    @property
    def name(self) -> str:
        if self.run is not None and not self.single_export:
            return self.run.path.name  # as the benchmark metrics name a model: its run folder
        return f"{self.run.path.name}/{self.path.name}" if self.run is not None else self.path.name

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "name": self.name, "run": str(self.run.path) if self.run else None,
                "exports": sorted(self.exports)}


def open_side(path: str | Path, role: str) -> Side:
    """A run directory or an export folder -> Side; anything else is an InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{role} {p} does not exist", "pass a run directory or an export folder (RUN/exports/NAME)")
    if p.is_dir() and (p / runs.MANIFEST).is_file():
        run = runs.load_run(p)
        return Side(p, run, {e.name: e for e in run.exports()})
    if p.is_dir() and (p / runs.SIDECAR).is_file():
        export = runs.load_export(p)
        src = export.source_run_path
        run = None
        if src is not None and (src / runs.MANIFEST).is_file():
            run = runs.load_run(src)
        return Side(p, run, {export.name: export}, single_export=True)
    raise InputError(f"{role} {p} is neither a run nor an export",
                     "pass a run directory (with manifest.json) or an export folder (with model.json)")


@dataclass
class Check:
    """One row of the gate's table. Numbers are in `unit`; the texts are what the table shows."""

    check: str
    subject: str
    status: str
    baseline: float | None = None
    candidate: float | None = None
    unit: str = ""
    change: str = ""
    limit: str = ""
    reason: str | None = None
    export: str | None = None
    device: str | None = None
    profile: str | None = None
    recipe: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateReport:
    """Every check of one comparison; `passed` when none failed."""

    candidate: Side
    baseline: Side
    config: GateConfig
    checks: list[Check] = field(default_factory=list)
    session: dict[str, Any] | None = None  # the benchmark run the latency checks came from
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def passed(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in (PASS, FAIL, SKIP)}

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "counts": self.counts(), "candidate": self.candidate.describe(),
                "baseline": self.baseline.describe(), "config": self.config.to_dict(), "session": self.session,
                "checks": [c.to_dict() for c in self.checks], "notes": list(self.notes)}


# ------------------------------------------------------------------------------------------ formatting


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _signed_pct(rel: float) -> str:
    return f"{round(100 * rel, 1) + 0.0:+.1f}%"


def _pp(delta_pp: float, digits: int = 2) -> str:
    """A change in percentage points, signed, without a "-0.00"."""
    return f"{round(delta_pp, digits) + 0.0:+.{digits}f} pp"


def _rel(c: float, b: float) -> float:
    return (c - b) / b if b else (0.0 if c == b else math.inf)


# ------------------------------------------------------------------------------------------ model-level checks


def _accuracy(cand: Side, base: Side, cfg: GateConfig) -> list[Check]:
    if cand.run is None or base.run is None:
        who = "candidate" if cand.run is None else "baseline"
        return [Check("accuracy", "model", SKIP, reason=f"the {who} export's run is not found: no Keras accuracy")]
    c = cand.run.manifest.get("metrics", {}).get("test_accuracy")
    b = base.run.manifest.get("metrics", {}).get("test_accuracy")
    if c is None or b is None:
        return [Check("accuracy", "model", SKIP, reason="a manifest holds no test accuracy")]
    drop = 100 * (b - c)
    ok = drop <= cfg.max_accuracy_drop_pp + 1e-9
    note = _test_data_note(cand.run, base.run)
    return [Check("accuracy", "model (Keras, test split)", PASS if ok else FAIL, b, c, "fraction",
                  _pp(-drop), f"drop <= {cfg.max_accuracy_drop_pp:g} pp",
                  (None if ok else f"test accuracy dropped {drop:.2f} pp") if not note else
                  (note if ok else f"test accuracy dropped {drop:.2f} pp; {note}"))]


def _test_data_note(cand: runs.Run, base: runs.Run) -> str | None:
    cd, bd = cand.manifest.get("data", {}), base.manifest.get("data", {})
    if cd.get("fingerprint") != bd.get("fingerprint") or cd.get("split") != bd.get("split"):
        return "the runs were tested on different data or splits"
    return None


def _class_accuracy(cand: Side, base: Side, cfg: GateConfig) -> list[Check]:
    if cand.run is None or base.run is None:
        return [Check("class_accuracy", "model", SKIP, reason="a run is not found: no per-class accuracy")]
    cm, bm = cand.run.manifest.get("metrics", {}), base.run.manifest.get("metrics", {})
    cpc, bpc = cm.get("per_class_accuracy"), bm.get("per_class_accuracy")
    labels = base.run.labels
    if not cpc or not bpc:
        return [Check("class_accuracy", "model", SKIP, reason="a manifest holds no per-class accuracy")]
    if cand.run.labels != labels or len(cpc) != len(bpc):
        return [Check("class_accuracy", "model", SKIP, reason="the runs have different classes")]
    confusion = cm.get("confusion_matrix") or bm.get("confusion_matrix")
    counts = [int(sum(row)) for row in confusion] if confusion else [0] * len(labels)
    limit = f"drop <= {cfg.max_class_accuracy_drop_pp:g} pp or < {cfg.min_class_drop_samples} samples"
    rows, worst = [], None
    for i, label in enumerate(labels):
        drop = 100 * (bpc[i] - cpc[i])
        lost = round((bpc[i] - cpc[i]) * counts[i]) if counts[i] else None
        if worst is None or drop > worst[0]:
            worst = (drop, i, lost)
        big = drop > cfg.max_class_accuracy_drop_pp + 1e-9
        if big and (lost is None or lost >= cfg.min_class_drop_samples):
            rows.append(Check("class_accuracy", f"class {label}", FAIL, bpc[i], cpc[i], "fraction", _pp(-drop),
                              limit, f"class {label} lost {drop:.2f} pp"
                              + (f" ({lost} of {counts[i]} test samples)" if lost is not None else "")))
    if rows:
        return rows
    drop, i, lost = worst  # type: ignore[misc]
    samples = f" ({lost} of {counts[i]} samples)" if lost else ""
    return [Check("class_accuracy", f"worst class {labels[i]}", PASS, bpc[i], cpc[i], "fraction",
                  _pp(-drop) + samples, limit)]


def _params(cand: Side, base: Side, cfg: GateConfig) -> list[Check]:
    if cand.run is None or base.run is None or cand.single_export:
        return []
    c = cand.run.manifest.get("model", {}).get("params")
    b = base.run.manifest.get("model", {}).get("params")
    if not isinstance(c, int) or not isinstance(b, int):
        return []
    rel = _rel(c, b)
    ok = rel * 100 <= cfg.max_size_growth_pct + 1e-9
    return [Check("size", "model (parameters)", PASS if ok else FAIL, b, c, "parameters", _signed_pct(rel),
                  f"growth <= {cfg.max_size_growth_pct:g}%", None if ok else f"{c - b:+d} parameters")]


# ------------------------------------------------------------------------------------------ export checks


def _export_pairs(cand: Side, base: Side, cfg: GateConfig) -> tuple[list[tuple[runs.Export, runs.Export]], list[Check]]:
    if cand.single_export or base.single_export:
        return [(next(iter(cand.exports.values())), next(iter(base.exports.values())))], []
    pairs = [(cand.exports[n], base.exports[n]) for n in sorted(cand.exports) if n in base.exports]
    checks = []
    for name in sorted(set(base.exports) - set(cand.exports)):
        status = FAIL if cfg.require_baseline_exports else SKIP
        checks.append(Check("exports", name, status, limit="every baseline export",
                            reason=f"the baseline has export {name}, the candidate does not", export=name))
    if base.exports and not checks:
        checks.append(Check("exports", "all", PASS, change=f"{len(pairs)} of {len(base.exports)} present",
                            limit="every baseline export"))
    if not pairs:
        checks.append(Check("exports", "-", SKIP, reason="no export of the same name in both: nothing to compare per export"))
    return pairs, checks


def _subject(ce: runs.Export, be: runs.Export) -> str:
    return ce.name if ce.name == be.name else f"{ce.name} vs {be.name}"


def _recipe(e: runs.Export) -> str | None:
    r = e.sidecar.get("recipe")
    return str(r) if r else None


def _verification(e: runs.Export) -> dict[str, Any] | None:
    try:
        v = e.verification()
    except ModelError:
        return None
    return v if isinstance(v, dict) else None


def _export_checks(ce: runs.Export, be: runs.Export, cfg: GateConfig) -> list[Check]:
    subject, recipe = _subject(ce, be), _recipe(ce)
    out: list[Check] = []
    cv, bv = _verification(ce), _verification(be)
    # parity: the candidate's own verification
    if cv is None:
        status = SKIP if cfg.allow_unverified else FAIL
        out.append(Check("parity", subject, status, limit="verify.json status pass",
                         reason="the candidate export has no verification (verify.json): verify it first",
                         export=ce.name, recipe=recipe))
    else:
        st = str(cv.get("status"))
        ok = st in ("pass", "not-compiled")
        out.append(Check("parity", subject, PASS if ok else FAIL, change=st, limit="verify.json status pass",
                         reason=None if ok else f"verification {st}: {cv.get('reason') or 'see verify.json'}",
                         export=ce.name, recipe=recipe))
    # accuracy after quantization
    ca, ba = (cv or {}).get("accuracy"), (bv or {}).get("accuracy")
    if ca is None or ba is None:
        who = "candidate" if ca is None else "baseline"
        out.append(Check("quantized_accuracy", subject, SKIP, reason=f"the {who} export has no verified accuracy",
                         export=ce.name, recipe=recipe))
    else:
        drop = 100 * (ba - ca)
        ok = drop <= cfg.max_quantized_accuracy_drop_pp + 1e-9
        out.append(Check("quantized_accuracy", subject, PASS if ok else FAIL, ba, ca, "fraction", _pp(-drop),
                         f"drop <= {cfg.max_quantized_accuracy_drop_pp:g} pp",
                         None if ok else f"accuracy after export dropped {drop:.2f} pp", export=ce.name, recipe=recipe))
    # size on disk
    try:
        cs, bs = ce.size_bytes, be.size_bytes
    except OSError:
        out.append(Check("size", subject, SKIP, reason="a model file is missing", export=ce.name, recipe=recipe))
        return out
    rel = _rel(cs, bs)
    ok = rel * 100 <= cfg.max_size_growth_pct + 1e-9
    out.append(Check("size", subject, PASS if ok else FAIL, bs, cs, "bytes", _signed_pct(rel),
                     f"growth <= {cfg.max_size_growth_pct:g}%", None if ok else f"the model grew {_bytes(cs - bs)}",
                     export=ce.name, recipe=recipe))
    return out


# ------------------------------------------------------------------------------------------ benchmark sessions


@dataclass
class _Doc:
    path: Path
    session: str
    created: str
    results: list[dict[str, Any]]
    folder_run: Path | None  # the run whose benchmarks/ folder holds it


def _docs(sides: list[Side], extra: list[Path]) -> list[_Doc]:
    seen: set[Path] = set()
    docs = []
    places: list[tuple[Path, Path | None]] = []
    for s in sides:
        if s.run is not None:
            places.extend((p, s.run.path) for p in s.run.benchmarks())
    places.extend((Path(p), None) for p in extra)
    for path, run in places:
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            doc = runs.read_json(path)
        except ModelError:
            if run is None:
                raise
            continue  # a damaged file in a run's history does not stop the gate
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
            if run is None:
                raise InputError(f"{path} is not a benchmark results file", "pass a file `edgepool benchmark` wrote")
            continue
        sid = (doc.get("session") or {}).get("id") if isinstance(doc.get("session"), dict) else None
        # a file written before benchmarks recorded their session still holds the results of one call
        sid = sid or f"file:{key}"
        docs.append(_Doc(path, str(sid), str(doc.get("created") or ""), doc["results"], run))
    return docs


def _is_export(result: dict[str, Any], export: runs.Export, doc: _Doc) -> bool:
    mp = result.get("model_path")
    if not mp:
        return False
    p = Path(mp)
    try:
        if p.resolve() == export.model_file.resolve():
            return True
    except OSError:
        pass
    # a run moved since it was benchmarked: the file in the run's own history, the export of the same name
    run_path = export.source_run_path
    return (doc.folder_run is not None and run_path is not None and doc.folder_run.resolve() == run_path.resolve()
            and p.parent.name == export.name and p.name == export.model_file.name)


def _session_rows(pairs: list[tuple[runs.Export, runs.Export]], docs: list[_Doc]
                  ) -> tuple[str | None, list[_Doc], dict[int, list[tuple[dict[str, Any], dict[str, Any]]]]]:
    """The newest session measuring a pair's candidate and baseline on the same device and profile, and for each
    pair index the (candidate row, baseline row) couples from that session."""
    by_session: dict[str, list[_Doc]] = {}
    for d in docs:
        by_session.setdefault(d.session, []).append(d)
    best: tuple[str, str, list[_Doc], dict[int, list[Any]]] | None = None
    for sid, ds in by_session.items():
        found: dict[int, list[Any]] = {}
        for i, (ce, be) in enumerate(pairs):
            crows = [r for d in ds for r in d.results if _is_export(r, ce, d)]
            brows = [r for d in ds for r in d.results if _is_export(r, be, d)]
            for cr in crows:
                for br in brows:
                    if (cr.get("device"), cr.get("profile")) == (br.get("device"), br.get("profile")):
                        found.setdefault(i, []).append((cr, br))
        if found:
            created = max(d.created for d in ds)
            key = (len(found), created)
            if best is None or key > (len(best[3]), best[1]):
                best = (sid, created, ds, found)
    if best is None:
        return None, [], {}
    return best[0], best[2], best[3]


def _unusable(row: dict[str, Any]) -> str | None:
    if row.get("skipped"):
        return f"not measured: {row['skipped']}"
    if row.get("error"):
        return f"failed: {(row['error'] or {}).get('message', 'error')}"
    if not row.get("latency_ms"):
        return "no latency measured"
    return None


def _window_spread(row: dict[str, Any], key: str) -> float | None:
    vals = [w.get("latency_ms", {}).get(key) for w in row.get("windows") or []]
    vals = [float(v) for v in vals if isinstance(v, int | float)]
    if len(vals) < 2:
        return None
    mid = sorted(vals)[len(vals) // 2] if len(vals) % 2 else sum(sorted(vals)[len(vals) // 2 - 1:len(vals) // 2 + 1]) / 2
    return (max(vals) - min(vals)) / mid if mid > 0 else None


def _footprint(row: dict[str, Any]) -> float | None:
    mem = row.get("memory") or {}
    peak, base = mem.get("peak_rss_bytes") or row.get("peak_rss_bytes"), mem.get("baseline_rss_bytes")
    if peak is None:
        return None
    return float(peak - base) if base is not None else float(peak)


def coverage(row: dict[str, Any]) -> dict[str, float] | None:
    """Delegate -> share of the model's nodes it took: benchmark_model's report, else the agent's count."""
    if row.get("delegate_coverage"):
        return {str(k): float(v) for k, v in row["delegate_coverage"].items()}
    nodes = (row.get("environment") or {}).get("delegate_nodes")
    if nodes and nodes.get("total"):
        name = "+".join(nodes.get("delegates") or []) or "+".join(row.get("delegates") or []) or "delegate"
        return {name: float(nodes.get("replaced") or 0) / float(nodes["total"])}
    return None


def _bench_checks(ce: runs.Export, be: runs.Export, cr: dict[str, Any], br: dict[str, Any],
                  cfg: GateConfig) -> list[Check]:
    device, profile = cr.get("device"), cr.get("profile")
    subject = _subject(ce, be) + f" on {device}" + (f" ({profile})" if profile else "")
    tag = {"export": ce.name, "device": device, "profile": profile, "recipe": _recipe(ce)}
    out: list[Check] = []
    cbad, bbad = _unusable(cr), _unusable(br)
    if cbad or bbad:
        # a candidate that fails on the device where the baseline ran is a regression
        status = FAIL if (cbad and not bbad and cr.get("error")) else SKIP
        why = f"candidate {cbad}" if cbad else f"baseline {bbad}"
        return [Check(name, subject, status if name == "latency" else SKIP, reason=why, **tag)
                for name in ("latency", "memory", "energy", "delegate")]
    shared = cr.get("measured_as") and cr.get("measured_as") == br.get("name")
    same = " (the same model bytes: measured once)" if shared else ""
    # accuracy on the device (the runtime there), when both were measured with the test samples
    ca, ba = cr.get("accuracy"), br.get("accuracy")
    if ca is not None and ba is not None:
        drop = 100 * (ba - ca)
        ok = drop <= cfg.max_quantized_accuracy_drop_pp + 1e-9
        out.append(Check("quantized_accuracy", subject, PASS if ok else FAIL, ba, ca, "fraction", _pp(-drop),
                         f"drop <= {cfg.max_quantized_accuracy_drop_pp:g} pp",
                         None if ok else f"accuracy on the device dropped {drop:.2f} pp", **tag))
    # latency
    key = cfg.latency_percentile
    c, b = (cr.get("latency_ms") or {}).get(key), (br.get("latency_ms") or {}).get(key)
    label = "median" if key == "median" else key
    if c is None or b is None:
        out.append(Check("latency", subject, SKIP, reason=f"no {label} latency in a result", **tag))
    else:
        spreads = [s for s in (_window_spread(cr, key), _window_spread(br, key)) if s is not None]
        noise = cfg.latency_noise_factor * max(spreads) if spreads else 0.0
        allowed = cfg.max_latency_regression_pct / 100 + noise
        rel = _rel(c, b)
        ok = rel <= allowed + 1e-12
        spread_note = (f" + noise {100 * noise:.1f}%" if spreads else " (window spread unknown)")
        partial = [w for w, r in (("candidate", cr), ("baseline", br)) if not r.get("complete", True)]
        notes = [f"{' and '.join(partial)} stopped early ({len(cr.get('windows') or [])}/{len(br.get('windows') or [])} windows)"] if partial else []
        if not ok:
            notes.insert(0, f"{label} latency {_signed_pct(rel)} > {_signed_pct(allowed)} allowed")
        out.append(Check("latency", subject, PASS if ok else FAIL, b, c, "ms", _signed_pct(rel) + same,
                         f"{label} <= +{cfg.max_latency_regression_pct:g}%{spread_note}",
                         "; ".join(notes) or None, **tag))
    # memory
    cm, bm = _footprint(cr), _footprint(br)
    if cm is None or bm is None:
        out.append(Check("memory", subject, SKIP, reason="no memory measured (peak RSS)", **tag))
    else:
        grow = cm - bm
        allowed_b = max(cfg.max_memory_growth_pct / 100 * bm, cfg.memory_noise_bytes)
        ok = grow <= allowed_b
        out.append(Check("memory", subject, PASS if ok else FAIL, bm, cm, "bytes",
                         f"{'+' if grow >= 0 else '-'}{_bytes(abs(grow))}",
                         f"growth <= {cfg.max_memory_growth_pct:g}% or {_bytes(cfg.memory_noise_bytes)}",
                         None if ok else f"memory footprint grew {_bytes(grow)}", **tag))
    # energy
    ce_, be_ = cr.get("energy") or {}, br.get("energy") or {}
    if ce_.get("mj_per_inference") is None or be_.get("mj_per_inference") is None:
        who = " and ".join(w for w, e in (("candidate", ce_), ("baseline", be_)) if e.get("mj_per_inference") is None)
        out.append(Check("energy", subject, SKIP, reason=f"no energy per inference for the {who}", **tag))
    elif ce_.get("kind") != be_.get("kind"):
        out.append(Check("energy", subject, SKIP, reason=f"candidate {ce_.get('kind')}, baseline {be_.get('kind')}: "
                         "a measurement is not compared with an estimate", **tag))
    else:
        cj, bj = float(ce_["mj_per_inference"]), float(be_["mj_per_inference"])
        unc = math.hypot(float(ce_.get("uncertainty_mj") or 0), float(be_.get("uncertainty_mj") or 0))
        allowed_mj = cfg.max_energy_growth_pct / 100 * bj + unc
        ok = cj - bj <= allowed_mj + 1e-12
        out.append(Check("energy", subject, PASS if ok else FAIL, bj, cj, "mJ", _signed_pct(_rel(cj, bj)),
                         f"growth <= {cfg.max_energy_growth_pct:g}% + {unc:.3g} mJ ({ce_.get('kind')})",
                         None if ok else f"energy per inference grew {cj - bj:.3g} mJ", **tag))
    # delegate coverage
    cc, bc = coverage(cr), coverage(br)
    cfall = bool((cr.get("environment") or {}).get("delegate_fallback"))
    bfall = bool((br.get("environment") or {}).get("delegate_fallback"))
    if cfall and not bfall:
        out.append(Check("delegate", subject, FAIL, limit="no fallback to the CPU",
                         reason="the candidate's delegate took no node: everything fell back to the CPU", **tag))
    elif not bc and not cc:
        out.append(Check("delegate", subject, SKIP, reason="no delegate coverage measured (no delegate asked for)", **tag))
    else:
        bc, cc = bc or {}, cc or {}
        worst = None
        for name, share in bc.items():
            drop = 100 * (share - cc.get(name, 0.0))
            if worst is None or drop > worst[0]:
                worst = (drop, name, share, cc.get(name, 0.0))
        if worst is None:
            out.append(Check("delegate", subject, PASS, change="the baseline used no delegate",
                             limit=f"drop <= {cfg.max_delegate_coverage_drop_pp:g} pp", **tag))
        else:
            drop, name, bs, cs = worst
            ok = drop <= cfg.max_delegate_coverage_drop_pp + 1e-9
            out.append(Check("delegate", f"{subject} [{name}]", PASS if ok else FAIL, bs, cs, "fraction",
                             _pp(-drop, 1), f"drop <= {cfg.max_delegate_coverage_drop_pp:g} pp",
                             None if ok else f"{name} took {drop:.1f} pp fewer of the model's nodes", **tag))
    return out


# ------------------------------------------------------------------------------------------ the gate


def compare(candidate: str | Path, baseline: str | Path, config: GateConfig | None = None,
            benchmarks: list[Path] | None = None) -> GateReport:
    """Compare `candidate` with `baseline` (each a run directory or an export folder) check by check.

    Benchmark results come from the runs' benchmarks/ folders and the files in `benchmarks`; only results
    of one benchmark session (measured together) are compared, the newest that covers the most exports.
    """
    cfg = config or load_config()
    cand, base = open_side(candidate, "candidate"), open_side(baseline, "baseline")
    report = GateReport(cand, base, cfg)
    checks: list[Check] = []
    checks += _accuracy(cand, base, cfg)
    checks += _class_accuracy(cand, base, cfg)
    checks += _params(cand, base, cfg)
    pairs, export_rows = _export_pairs(cand, base, cfg)
    checks += export_rows
    for ce, be in pairs:
        checks += _export_checks(ce, be, cfg)
    if pairs:
        docs = _docs([cand, base], list(benchmarks or []))
        sid, used, rows = _session_rows(pairs, docs)
        if sid is None:
            why = ("no benchmark run measured the candidate and the baseline together: benchmark both in one "
                   "`edgepool benchmark CANDIDATE BASELINE` call" if docs or any(s.run and s.run.benchmarks() for s in (cand, base))
                   else "neither has benchmark results: benchmark both in one `edgepool benchmark CANDIDATE BASELINE` call")
            for name in ("latency", "memory", "energy", "delegate"):
                checks.append(Check(name, "-", SKIP, reason=why))
        else:
            report.session = {"id": sid, "files": [str(d.path) for d in used], "created": max(d.created for d in used)}
            for i, (ce, be) in enumerate(pairs):
                if i not in rows:
                    for name in ("latency", "memory", "energy", "delegate"):
                        checks.append(Check(name, _subject(ce, be), SKIP, export=ce.name,
                                            reason="that benchmark run did not measure both on one device"))
                    continue
                for cr, br in rows[i]:
                    checks += _bench_checks(ce, be, cr, br, cfg)
    order = {name: i for i, name in enumerate(CHECKS)}
    report.checks = sorted((c for c in checks if c.check not in cfg.disabled), key=lambda c: order[c.check])
    if cfg.disabled:
        report.notes.append("checks left out by the config: " + ", ".join(cfg.disabled))
    return report

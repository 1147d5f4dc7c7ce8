"""The report of one run: data and model, training, accuracy, exports, benchmarks, per-op costs.

Reads what the run directory holds (`edgepool.runs`), the saved benchmark results and, for the per-op
costs and the Edge TPU partition, `edgepool.inspect`. A piece that is missing or unreadable becomes a
short note in the page, never an error: the report of a run trained a minute ago is as useful as it can be.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import runs
from ..errors import EdgepoolError
from ..types import Status
from . import latency
from .html import (
    Col,
    Page,
    badge,
    cards,
    details,
    esc,
    fmt_bytes,
    fmt_ms,
    fmt_num,
    fmt_pct,
    grid,
    kv,
    note,
    table,
)

TFLITE_FORMATS = ("tflite", "edgetpu-tflite")
STATUS_BADGE = {Status.PASS: "ok", Status.NOT_COMPILED: "warn", Status.UNVERIFIED: "warn", Status.FAIL: "bad",
                Status.ERROR: "bad"}


def _get(d: Any, *keys: str, default: Any = None) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _isnum(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _plot(page: Page, make: Callable[[], bytes], alt: str, caption: str = "") -> str:
    """An inline figure, or a note when the plot cannot be drawn from what the files hold."""
    try:
        return page.image(make(), alt, caption)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        return page.missing(f"{alt}: cannot be drawn from the saved data ({type(e).__name__}: {e})", warn=True)


def run_page(run: runs.Run) -> Page:
    m = run.manifest
    data, model, metrics = m.get("data") or {}, m.get("model") or {}, m.get("metrics") or {}
    spec = model.get("spec") or {}
    page = Page(title=f"edgepool report: {run.path.name}", kind="run",
                subtitle=f"run {run.path.resolve()} · created {m.get('created', '?')} · edgepool {m.get('edgepool_version', '?')}")
    exports = _exports(run, page)
    results, files = _benchmarks(run, page)
    summary = cards([
        ("data", f"{data.get('name', '?')} ({fmt_num(data.get('samples'))} images)"),
        ("model", f"{spec.get('name', '?')}: {fmt_num(model.get('params'))} params"),
        ("test accuracy", fmt_pct(metrics.get("test_accuracy"))),
        ("MACs / inference", fmt_num(model.get("macs"))),
        ("exports", str(len(exports))),
        ("benchmark results", f"{len(results)} in {len(files)} file{'s' * (len(files) != 1)}"),
    ])
    page.add("data", "Data and model", _data_model(m))
    page.add("training", "Training", _training(run, page))
    page.add("accuracy", "Accuracy by class", _accuracy(m, page))
    page.add("exports", "Exports", _exports_section(exports, page))
    page.add("benchmarks", "Benchmarks", _benchmarks_section(results, files, page))
    page.add("ops", "Per-op cost and Edge TPU partition", _ops_section(exports, page))
    page.header = summary
    return page


# ------------------------------------------------------------------------------------------ data and model


def _blocks(spec: dict[str, Any]) -> str:
    parts = []
    for b in spec.get("blocks") or []:
        if not isinstance(b, dict):
            continue
        conv = f"{b.get('convs', 1)}x conv{b.get('kernel', '?')} {b.get('filters', '?')}"
        if b.get("separable"):
            conv += " separable"
        pool = b.get("pool")
        size = b.get("pool_size")
        parts.append(f"{conv} → {pool} pool {size}" if pool and pool != "none" else f"{conv} (no pooling)")
    return " | ".join(parts) or None  # type: ignore[return-value]


def _data_model(m: dict[str, Any]) -> str:
    data, model, tr = m.get("data") or {}, m.get("model") or {}, m.get("training") or {}
    spec, split = model.get("spec") or {}, data.get("split") or {}
    labels = data.get("labels") or []
    counts = data.get("class_counts") or []
    sizes = split.get("sizes") or {}
    shape = data.get("input_shape")
    d = kv([
        ("data set", data.get("name")),
        ("origin", data.get("origin") or data.get("kind")),
        ("path", data.get("path")),
        ("images", fmt_num(data.get("samples"))),
        ("input", "x".join(str(s) for s in shape) if isinstance(shape, list) else shape),
        ("classes", f"{len(labels)}: {', '.join(map(str, labels[:20]))}{' …' if len(labels) > 20 else ''}" if labels else None),
        ("images per class", f"{min(counts)} – {max(counts)}" if counts and all(_isnum(c) for c in counts) else None),
        ("split (train / val / test)", " / ".join(fmt_num(sizes.get(k)) for k in ("train", "val", "test")) if sizes else None),
        ("split seed", split.get("seed")),
        ("normalization", _get(m, "input", "formula")),
        ("fingerprint", data.get("fingerprint")),
        ("notes", "; ".join(map(str, data.get("notes") or [])) or None),
    ])
    mo = kv([
        ("model", f"{spec.get('name', '?')}: {spec.get('description', '')}".rstrip(": ")),
        ("blocks", _blocks(spec)),
        ("head", spec.get("head")),
        ("width", spec.get("width")),
        ("dropout", spec.get("dropout")),
        ("parameters", fmt_num(model.get("params"))),
        ("MACs per inference", fmt_num(model.get("macs"))),
    ])
    epochs = f"{tr.get('epochs_run', '?')} of {tr.get('epochs', '?')} (best {tr.get('best_epoch', '?')})"
    t = kv([
        ("epochs", epochs),
        ("batch size", tr.get("batch_size")),
        ("learning rate", tr.get("learning_rate")),
        ("patience", tr.get("patience")),
        ("seed", tr.get("seed")),
        ("augmentation", {True: "random shifts", False: "off"}.get(tr.get("augment"))),
        ("interrupted", "yes: stopped by Ctrl-C, best weights kept" if tr.get("interrupted") else None),
        ("resumed at epochs", tr.get("resumed_at_epochs")),
        ("training time", f"{_get(m, 'timings', 'train_s'):.1f} s" if _isnum(_get(m, "timings", "train_s")) else None),
        ("versions", ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items()) or None),
    ])
    return f"<h3>Data</h3>{d}<h3>Model</h3>{mo}<h3>Training settings</h3>{t}"


def _training(run: runs.Run, page: Page) -> str:
    from .plots import training_curve_png

    p = run.path / runs.HISTORY
    if not p.is_file():
        return page.missing(f"no {runs.HISTORY} in the run: no training curves")
    try:
        history = runs.read_json(p)
    except EdgepoolError as e:
        return page.missing(f"training curves: {e.message}", warn=True)
    if not isinstance(history, dict) or not history.get("loss"):
        return page.missing(f"{runs.HISTORY} holds no epochs: no training curves", warn=True)
    name = _get(run.manifest, "model", "spec", "name", default="model")
    fig = _plot(page, lambda: training_curve_png(history, f"{name} on {_get(run.manifest, 'data', 'name', default='?')}"),
                "training curves", "loss and accuracy per epoch, training and validation split")
    n = len(history["loss"])
    columns = [history.get(k) if isinstance(history.get(k), list) else [] for k in ("loss", "val_loss", "accuracy", "val_accuracy")]
    rows = [[i + 1] + [f"{c[i]:.4f}" if i < len(c) and _isnum(c[i]) else "-" for c in columns] for i in range(n)]
    cols = [Col("epoch", True), Col("loss", True), Col("val loss", True), Col("accuracy", True), Col("val accuracy", True)]
    return fig + details(f"per-epoch values ({n} epochs)", table(cols, rows))


def _accuracy(m: dict[str, Any], page: Page) -> str:
    from .plots import confusion_matrix_png, per_class_accuracy_png

    metrics = m.get("metrics") or {}
    labels = [str(x) for x in _get(m, "data", "labels", default=[]) or []]
    cm = metrics.get("confusion_matrix")
    per_class = metrics.get("per_class_accuracy")
    out = []
    if isinstance(cm, list) and labels and len(cm) == len(labels):
        out.append(_plot(page, lambda: confusion_matrix_png(cm, labels), "confusion matrix",
                         "test split: rows are the true class, columns the predicted one"))
    else:
        out.append(page.missing("the manifest has no confusion matrix"))
    if isinstance(per_class, list) and len(per_class) == len(labels):
        out.append(_plot(page, lambda: per_class_accuracy_png(per_class, labels, metrics.get("test_accuracy")),
                         "per-class accuracy", "share of each class's test images classified right"))
    else:
        out.append(page.missing("the manifest has no per-class accuracy"))
    body = grid(*out)
    if isinstance(cm, list) and len(cm) == len(labels) and all(isinstance(r, list) and len(r) == len(labels) for r in cm):
        rows = []
        for i, lab in enumerate(labels):
            row = cm[i]
            total = sum(row)
            off = [(v, j) for j, v in enumerate(row) if j != i and v]
            worst = max(off) if off else None
            rows.append((lab, total, row[i], fmt_pct(row[i] / total if total else None, 1),
                         f"{labels[worst[1]]} ({worst[0]})" if worst else "-"))
        rows.sort(key=lambda r: (r[2] / r[1]) if r[1] else 1.0)
        body += details("per class, worst first", table(
            [Col("class"), Col("test images", True), Col("correct", True), Col("accuracy", True), Col("most often taken for")],
            rows), open_=len(labels) <= 12)
    return body


# ------------------------------------------------------------------------------------------ exports


def _exports(run: runs.Run, page: Page) -> list[runs.Export]:
    """Every export folder of the run; one whose model.json is unreadable becomes a note."""
    d = run.exports_dir()
    out = []
    for p in sorted(d.iterdir()) if d.is_dir() else []:
        if not p.is_dir() or p.name.startswith("."):
            continue
        try:
            out.append(runs.load_export(p))
        except EdgepoolError as e:
            page.notes.append(f"export {p.name}: {e.message}")
    return out


def export_status(exp: runs.Export) -> tuple[Status, str]:
    """The export's verdict as `edgepool export` states it: verify.json's status, not-compiled for an Edge TPU
    export verified on the CPU without the compiler, unverified without verify.json; and its reason."""
    try:
        v = exp.verification()
    except EdgepoolError as e:
        return Status.UNVERIFIED, e.message
    if not isinstance(v, dict):
        return Status.UNVERIFIED, "not verified (no verify.json)"
    try:
        st = Status(v.get("status"))
    except ValueError:
        return Status.UNVERIFIED, f"verify.json has an unknown status {v.get('status')!r}"
    tpu = exp.sidecar.get("edgetpu")
    if st == Status.PASS and isinstance(tpu, dict) and not tpu.get("compiled"):
        return Status.NOT_COMPILED, "verified on the CPU; the Edge TPU compiler was not installed where it was exported"
    return st, str(v.get("reason") or "")


def _exports_section(exports: list[runs.Export], page: Page) -> str:
    if not exports:
        return page.missing("no exports yet: export or convert the run for a recipe or a device profile to see "
                            "sizes, accuracy and agreement here")
    rows = []
    for e in exports:
        v = {}
        try:
            v = e.verification() or {}
        except EdgepoolError:
            pass
        st, reason = export_status(e)
        try:
            size = fmt_bytes(e.size_bytes)
        except OSError:
            size = "missing file"
        delta = v.get("accuracy_delta_pp")
        rows.append((
            esc(e.name), esc(e.format), esc(e.sidecar.get("recipe", "-")), esc(e.sidecar.get("profile") or "-"), esc(size),
            esc(fmt_pct(v.get("accuracy"))), esc(fmt_pct(v.get("reference_accuracy") or e.sidecar.get("keras_test_accuracy"))),
            esc(f"{delta:+.2f}" if _isnum(delta) else "-"), esc(fmt_pct(v.get("agreement"))),
            esc(f"{v['max_abs_diff']:.3g}" if _isnum(v.get("max_abs_diff")) else "-"),
            badge(st.value, STATUS_BADGE.get(st, "muted")), esc(reason or v.get("criterion") or ""),
        ))
    cols = [Col("export"), Col("format"), Col("recipe"), Col("profile"), Col("size", True), Col("accuracy", True),
            Col("Keras", True), Col("Δ pp", True), Col("agreement", True), Col("max |Δ|", True), Col("status"),
            Col("reason / criterion", wrap=True)]
    body = table(cols, rows, raw=range(len(cols)))
    return body + note("accuracy: the export on the run's test split; Keras: the float model on the same images; "
                       "agreement: share of images where both pick the same class.")


# ------------------------------------------------------------------------------------------ benchmarks


def _benchmarks(run: runs.Run, page: Page) -> tuple[list[dict[str, Any]], list[Path]]:
    """The newest result of each (device, model) over every saved file, each tagged with its file."""
    files = run.benchmarks()
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for f in files:
        try:
            doc = runs.read_json(f)
        except EdgepoolError as e:
            page.notes.append(f"benchmark file {f.name}: {e.message}")
            continue
        res = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(res, list):
            page.notes.append(f"benchmark file {f.name} holds no results list")
            continue
        for r in res:
            if isinstance(r, dict):
                key = (str(r.get("device")), str(r.get("name")), str(r.get("model_path")))
                latest[key] = {**r, "_file": f.name, "_created": doc.get("created")}
    return list(latest.values()), files


def emulation(r: dict[str, Any]) -> str | None:
    """'aarch64 under qemu-user' when the agent found itself emulated (environment.emulated), else None."""
    env = r.get("environment") or {}
    emu = env.get("emulated") if isinstance(env, dict) else None
    return f"{env.get('machine') or '?'} under {emu}" if emu else None


def _status(r: dict[str, Any]) -> str:
    err, env = r.get("error"), r.get("environment") or {}
    if isinstance(err, dict):
        return badge(str(err.get("kind") or "error"), "bad") + " " + esc(err.get("message"))
    if r.get("skipped"):
        return badge("skipped", "muted") + " " + esc(r["skipped"])
    parts = [badge("ok", "ok") if r.get("complete") else badge(f"{r.get('stopped') or 'incomplete'} "
                                                               f"({len(r.get('windows') or [])} windows)", "warn")]
    if r.get("nonfinite_outputs"):
        parts.append(badge(f"NaN/Inf in {r['nonfinite_outputs']} outputs", "bad"))
    emu = emulation(r)
    if emu:
        parts.append(badge(f"emulated: {emu}", "warn", "correct outputs, but not the device's latency"))
    if env.get("throttled"):
        parts.append(badge("throttled", "warn", "; ".join(map(str, env.get("throttle_reasons") or []))))
    if env.get("delegate_fallback"):
        parts.append(badge("delegate took no node", "warn", "ran on the CPU"))
    if r.get("measured_as"):
        parts.append(esc(f"same model as {r['measured_as']}"))
    return " ".join(parts)


def _energy_cells(r: dict[str, Any]) -> tuple[str, str, str]:
    """(energy per inference with its label, power, battery) for a result with the optional energy fields."""
    e, b = r.get("energy"), r.get("battery")
    energy = power = battery = "-"
    if isinstance(e, dict) and _isnum(e.get("mj_per_inference")):
        kind = str(e.get("kind") or "?")
        unc = f" ± {e['uncertainty_mj']:.3g}" if _isnum(e.get("uncertainty_mj")) else ""
        energy = (f"{e['mj_per_inference']:.3g}{unc} mJ " + badge(kind, "ok" if kind == "measured" else "info",
                                                                   str(e.get("source") or "")))
        if _isnum(e.get("avg_power_w")):
            idle = f" (idle {e['idle_power_w']:.2f} W)" if _isnum(e.get("idle_power_w")) else ""
            power = esc(f"{e['avg_power_w']:.2f} W{idle}")
    if isinstance(b, dict) and _isnum(b.get("inferences_per_charge")):
        hours = f", {b['hours_at_fps']:.1f} h at {b['fps']:g} FPS" if _isnum(b.get("hours_at_fps")) and _isnum(b.get("fps")) else ""
        battery = esc(f"{b['inferences_per_charge']:,.0f} per charge{hours} ") + badge(str(b.get("kind") or "?"), "muted")
    return energy, power, battery


def _device_heading(device: str, rs: list[dict[str, Any]]) -> str:
    env = next((r["environment"] for r in rs if isinstance(r.get("environment"), dict)), {})
    emu = next((e for e in map(emulation, rs) if e), None)
    marks = badge("emulated", "warn", "latency under emulation is not the device's") if emu else ""
    transport = next((r.get("transport") for r in rs if r.get("transport")), None)
    h = f"<h3>{esc(device)} {marks}</h3>"
    facts = [
        f"{env.get('cpu_model')} ×{env.get('cpu_count')}" if env.get("cpu_model") else None,
        env.get("machine"), f"via {transport}" if transport else None,
        next((f"{r.get('runtime')} {r.get('runtime_version') or ''}".strip() for r in rs if r.get("runtime")), None),
        f"governor {env.get('governor')}" if env.get("governor") else None,
        f"Python {env.get('python')}" if env.get("python") else None,
    ]
    line = f'<p class="sub">{esc(" · ".join(str(f) for f in facts if f))}</p>'
    if emu:
        line += note(f"Emulated device ({emu}): outputs and accuracy are the device's, latency is the emulator's, "
                     "not the device's.", warn=True)
    return h + line


def _benchmarks_section(results: list[dict[str, Any]], files: list[Path], page: Page) -> str:
    if not results:
        what = "no benchmark results yet" if not files else "no readable benchmark results"
        return page.missing(f"{what}: benchmark the run's exports on a device to see latency, memory and energy here")
    from .plots import latency_cdf_png, latency_histogram_png

    by_device: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_device.setdefault(str(r.get("device") or "?"), []).append(r)
    out = [f'<p class="sub">{len(results)} result(s) from {len(files)} file(s) in {runs.BENCHMARKS}/ '
           "(the newest result of each model on each device).</p>"]
    for device, rs in by_device.items():
        rs.sort(key=lambda r: (r.get("latency_ms") or {}).get("median") or math.inf)
        out.append(_device_heading(device, rs))
        lat_rows, res_rows = [], []
        for r in rs:
            lat = r.get("latency_ms") or {}
            ws = r.get("windows") or []
            spread = r.get("window_spread")
            lat_rows.append((r.get("name"), fmt_ms(lat.get("median")), fmt_ms(lat.get("p90")), fmt_ms(lat.get("p95")),
                             fmt_ms(lat.get("p99")), fmt_ms(lat.get("min")), fmt_ms(lat.get("max")),
                             f"{fmt_ms(lat.get('mean'))} ± {fmt_ms(lat.get('std'))}" if _isnum(lat.get("mean")) else "-",
                             fmt_num(r.get("fps_median"), ",.0f"), fmt_num(r.get("runs")),
                             f"{len(ws)} ({fmt_pct(spread, 1)})" if ws else "-"))
            mem = r.get("memory") or {}
            energy, power, battery = _energy_cells(r)
            res_rows.append((esc(r.get("name")), esc(r.get("format")), esc(r.get("recipe") or "-"),
                             esc(r.get("profile") or "-"), esc(r.get("threads") or "-"),
                             esc(fmt_bytes(r.get("model_size_bytes"))), esc(fmt_pct(r.get("accuracy"))),
                             esc(fmt_ms(r.get("init_ms"))), esc(fmt_ms(r.get("first_inference_ms"))),
                             esc(fmt_bytes(r.get("peak_rss_bytes") or mem.get("peak_rss_bytes"))),
                             esc(fmt_bytes(mem.get("rss_delta_bytes"))), energy, power, battery, _status(r),
                             esc(r.get("_file"))))
        out.append(table([Col("model"), Col("median", True), Col("p90", True), Col("p95", True), Col("p99", True),
                          Col("min", True), Col("max", True), Col("mean ± std", True), Col("FPS (median)", True),
                          Col("runs", True), Col("windows (spread)", True)], lat_rows))
        cols = [Col("model"), Col("format"), Col("recipe"), Col("profile"), Col("threads", True), Col("size", True), Col("accuracy", True), Col("init", True),
                Col("first inference", True), Col("peak RSS", True), Col("RSS growth", True),
                Col("energy / inference", True), Col("power", True), Col("battery", True), Col("status"), Col("file")]
        out.append(table(cols, res_rows, raw=range(len(cols))))
        out.append(_energy_notes(rs))
        shown = [(str(r.get("name")), r) for r in rs if not r.get("error") and not r.get("skipped") and latency.has_distribution(r)]
        if not shown:
            out.append(page.missing(f"{device}: no latency distribution to plot (no finished windows)"))
            continue
        series, beyond = latency.histogram(shown)
        cdfs = [s for s in (latency.cdf_series(label, r) for label, r in shown) if s]
        tail = (f" Up to {fmt_pct(beyond, 1)} of a model's runs lie right of the last bin (the slowest p99): "
                "see the CDF." if beyond > 0 else "")
        where = f" on {device}"
        out.append(grid(
            _plot(page, lambda s=series, w=where: latency_histogram_png(s, "latency histogram" + w),
                  f"latency histogram{where}", f"Share of runs per bin, {latency.HOW}.{tail}"),
            _plot(page, lambda c=cdfs, w=where: latency_cdf_png(c, "latency CDF" + w), f"latency CDF{where}",
                  "Runs at or below each latency; dots: the stored percentiles of all runs; thin lines: each timed window."),
        ))
    return "".join(out)


def _energy_notes(rs: list[dict[str, Any]]) -> str:
    lines = []
    for r in rs:
        e = r.get("energy")
        if not isinstance(e, dict):
            continue
        bits = [f"{e.get('kind', '?')} with {e.get('source', '?')}"]
        if e.get("rail"):
            bits.append(f"measures {e['rail']}")
        if _isnum(e.get("sample_rate_hz")):
            bits.append(f"{e['sample_rate_hz']:g} Hz")
        over = _get(e, "sampler_overhead", "cpu_s_per_s")
        if _isnum(over):
            bits.append(f"sampler used {over:.3f} CPU-s/s")
        bits += [str(n) for n in e.get("notes") or []]
        lines.append(f"{r.get('name')}: " + "; ".join(bits))
    if not lines:
        return ""
    return details("how energy was obtained", "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>",
                   open_=True)


# ------------------------------------------------------------------------------------------ per-op costs


def _profile_of(exp: runs.Export, page: Page) -> Any:
    name = exp.sidecar.get("profile")
    if not name:
        return None
    from ..profiles import resolve

    try:
        return resolve(str(name))
    except EdgepoolError as e:
        page.notes.append(f"export {exp.name}: profile {name}: {e.message}")
        return None


def _is_edgetpu(exp: runs.Export, prof: Any) -> bool:
    from ..types import Runtime

    return (exp.format == "edgetpu-tflite" or isinstance(exp.sidecar.get("edgetpu"), dict)
            or (prof is not None and prof.runtime == Runtime.EDGETPU))


def _ops_section(exports: list[runs.Export], page: Page) -> str:
    tfl = [e for e in exports if e.format in TFLITE_FORMATS]
    if not tfl:
        what = "no exports yet" if not exports else "no .tflite export (Core ML models have no per-op costs here)"
        return page.missing(f"{what}: a .tflite export shows its per-op MACs, and an Edge TPU export its partition")
    from ..inspect import analyze_edgetpu, inspect_model

    items = []
    for e in tfl:
        prof = _profile_of(e, page)
        tpu_export = _is_edgetpu(e, prof)
        try:
            rep = inspect_model(e.verify_file, prof)
            tpu = rep.edgetpu or (analyze_edgetpu(rep.model) if tpu_export and rep.model is not None else None)
        except EdgepoolError as err:
            items.append((tpu_export, f"<h3>{esc(e.name)}</h3>" + page.missing(f"export {e.name}: {err.message}", warn=True)))
            continue
        items.append((tpu_export, _ops_of(e, rep, tpu if tpu_export else None, page)))
    items.sort(key=lambda x: not x[0])  # Edge TPU exports first
    body = "".join(html for _, html in items)
    other = [e.name for e in exports if e.format not in TFLITE_FORMATS]
    if other:
        body += note(f"Not shown: {', '.join(other)} (per-op costs are read from .tflite models).")
    if not any(t for t, _ in items):
        body = note("No Edge TPU export in this run: export for an Edge TPU profile (coral-usb, coral-dev-board) "
                    "to see which ops the Edge TPU would run.") + body
    return body


def _ops_of(e: runs.Export, rep: Any, tpu: Any, page: Page) -> str:
    from .plots import op_costs_png

    g = rep.model.main
    on_tpu = {o.index: o for o in tpu.ops} if tpu is not None else {}
    total = rep.macs or 0
    rows, names, macs, where = [], [], [], []
    for op, cost in zip(g.ops, rep.costs, strict=True):
        t = on_tpu.get(op.index)
        out_shape = "x".join(str(s) for s in g.tensors[op.outputs[0]].shape) if op.outputs else "-"
        cells = [str(op.index), esc(op.name), esc(f"v{op.version}"), esc(fmt_num(cost.macs)),
                 esc(fmt_pct(cost.macs / total if total else None, 1)), esc(fmt_num(cost.params)),
                 esc(fmt_bytes(cost.weight_bytes)), esc(out_shape)]
        if tpu is not None:
            cells.append(badge("Edge TPU", "ok") if t and t.on_tpu else badge("CPU", "bad"))
            cells.append(esc("" if t is None or t.on_tpu else "; ".join(x for x in (t.reason, t.suggestion) if x)))
        rows.append(cells)
        names.append(op.name)
        macs.append(cost.macs)
        where.append(None if t is None else bool(t.on_tpu))
    cols = [Col("#", True), Col("op"), Col("version"), Col("MACs", True), Col("share", True), Col("params", True),
            Col("weights", True), Col("output")]
    if tpu is not None:
        cols += [Col("runs on"), Col("why / what to do", wrap=True)]
    head = f"<h3>{esc(e.name)} {badge(rep.precision, 'muted')}</h3>"
    facts = [("file", e.verify_file.name), ("ops", len(g.ops)), ("MACs", fmt_num(rep.macs)),
             ("parameters", fmt_num(rep.params)), ("weights", fmt_bytes(rep.weight_bytes))]
    if rep.arena is not None:
        facts.append(("activation arena", f"{fmt_bytes(rep.arena.arena_bytes)} (peak at op {rep.arena.peak_op})"))
    if rep.min_runtime_table:
        facts.append(("oldest runtime that loads it", rep.min_runtime_table))
    est = rep.estimate
    if est is not None and est.latency_ms is not None:
        measured = f"; measured {fmt_ms(est.measured_latency_ms)}" if est.measured_latency_ms else ""
        facts.append((f"estimate on {est.profile}", f"{fmt_ms(est.latency_ms)}, {fmt_bytes(est.memory_bytes)}"
                      + (f", {est.energy_mj:.3g} mJ" if est.energy_mj else "") + f" (roofline, not measured){measured}"))
    part = ""
    if tpu is not None:
        side = e.sidecar.get("edgetpu") if isinstance(e.sidecar.get("edgetpu"), dict) else {}
        compiled = side.get("compiled")
        split = f"{tpu.mapped_ops} of {len(tpu.ops)} ops on the Edge TPU, {tpu.cpu_ops} on the CPU"
        if tpu.first_cpu_op is not None:
            split += f" (the partition ends at op {tpu.first_cpu_op}: it and every op after it run on the CPU)"
        label = badge("compiled", "ok") if compiled else badge("edgepool's prediction", "info",
                                                                "predicted from Coral's supported-ops rules")
        part = f"<p><b>Edge TPU partition</b> {label}: {esc(split)}.</p>"
        if compiled and side.get("mismatches"):
            part += note("The compiler disagreed with the prediction: " + "; ".join(map(str, side["mismatches"])), warn=True)
        elif compiled and side.get("matches_prediction"):
            part += note("The compiler's log matches the prediction.")
        for n in tpu.notes:
            part += note(str(n))
    fig = _plot(page, lambda: op_costs_png(names, macs, where, f"MACs per op: {e.name}"), f"MACs per op of {e.name}",
                "graph order top to bottom" + ("; green: Edge TPU, red: CPU" if tpu is not None else ""))
    return head + part + kv(facts) + grid(fig) + details(f"every op ({len(g.ops)})", table(cols, rows, raw=range(len(cols))),
                                                         open_=tpu is not None)

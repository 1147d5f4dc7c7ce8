"""The report of a sweep directory (SWEEP/sweep.json, SWEEP/pareto.png): recommendations, the Pareto plot,
the table over seeds and every configuration.

sweep.json is read defensively: every field may be missing (a sweep still running, an older file), and a
missing piece is a short note in the page. The numbers are the sweep's own; nothing is recomputed here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .. import runs
from .html import Col, Page, badge, cards, esc, fmt_bytes, fmt_ms, fmt_pct, grid, kv, note, table

SWEEP_FILE = "sweep.json"
PARETO_PNG = "pareto.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
USABLE = ("pass", "unverified", "not-compiled")


def _isnum(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _pm(mean: Any, std: Any, fmt: Any) -> str:
    if not _isnum(mean):
        return "-"
    return fmt(mean) + (f" ± {fmt(std)}" if _isnum(std) and std else "")


def _kind_badge(kind: Any) -> str:
    if kind == "measured":
        return badge("measured", "ok")
    if kind == "estimated":
        return badge("estimated", "info", "a roofline estimate from the profile, not a measurement")
    return badge("no latency", "muted")


def sweep_page(path: Path, base: Path | None = None) -> Page:
    """The sweep's page; links to the configurations' run reports are relative to `base` (where the page goes)."""
    doc = runs.read_json(path / SWEEP_FILE)
    if not isinstance(doc, dict):
        doc = {}
    configs = [c for c in _l(doc.get("configs")) if isinstance(c, dict)]
    settings = _d(doc.get("settings"))
    prof_info = _d(doc.get("profiles"))
    profiles = list(dict.fromkeys([*prof_info, *_d(doc.get("recommendation")), *_d(doc.get("pareto")),
                                   *(p for c in configs for p in _d(c.get("exports")))]))
    state = doc.get("state") or "?"
    page = Page(title=f"edgepool sweep report: {path.name}", kind="sweep",
                subtitle=f"sweep {path.resolve()} · {state} · data {settings.get('data', '?')} · executor {doc.get('executor', '?')}")
    done = sum(c.get("status") == "done" for c in configs)
    seeds = sorted({c.get("seed") for c in configs if _isnum(c.get("seed"))})
    page.header = cards([("configurations", f"{done} of {len(configs)} done"), ("profiles", str(len(profiles)) or "0"),
                         ("seeds", str(len(seeds))), ("state", str(state)),
                         ("wall time", f"{_d(doc.get('timings')).get('wall_s'):.0f} s" if _isnum(_d(doc.get("timings")).get("wall_s")) else "-")])
    by_id = {str(c.get("id")): c for c in configs}
    page.add("recommendation", "Recommendation per profile", _recommendations(doc, profiles, prof_info, by_id, page))
    page.add("pareto", "Accuracy vs latency", _pareto(path, doc, profiles, by_id, page))
    page.add("groups", "Over seeds (mean ± spread)", _groups(doc, profiles, page))
    page.add("configs", "Every configuration", _configs(path, base or path, doc, configs, profiles, page))
    page.add("settings", "Settings", _settings(doc, settings))
    return page


def _recommendations(doc: dict[str, Any], profiles: list[str], info: dict[str, Any], by_id: dict[str, Any],
                     page: Page) -> str:
    if not profiles:
        return page.missing("the sweep names no profiles yet")
    rec, why, group = _d(doc.get("recommendation")), _d(doc.get("recommendation_reason")), _d(doc.get("recommendation_group"))
    out = []
    for p in profiles:  # one block per profile: reads on a phone, where a wide table would not
        cid = rec.get(p)
        e = _d(_d(by_id.get(str(cid), {}).get("exports")).get(p)) if cid else {}
        pi = _d(info.get(p))
        device = pi.get("device") or ("none: latency estimated" if pi.get("latency_kind") == "estimated" else None)
        head = f"<h3>{esc(p)}: " + (f"ship {esc(cid)}" if cid else "no recommendation") + "</h3>"
        latency = (esc(fmt_ms(e.get("latency_ms"))) + " " + _kind_badge(e.get("latency_kind"))) if e else None
        rows = [("why", esc(why.get(p) or "")), ("group", esc(group.get(p) or "")), ("device", esc(device or "")),
                ("accuracy", esc(fmt_pct(e.get("accuracy"))) if e else ""), ("latency", latency or ""),
                ("size", esc(fmt_bytes(e.get("size_bytes"))) if e else ""), ("recipe", esc(e.get("recipe") or ""))]
        body = "".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in rows if v)
        out.append(head + f'<div class="tw"><table class="kv"><tbody>{body}</tbody></table></div>')
    return "".join(out)


def _pareto(path: Path, doc: dict[str, Any], profiles: list[str], by_id: dict[str, Any], page: Page) -> str:
    f = path / PARETO_PNG
    if f.is_file():
        data = f.read_bytes()
        if data.startswith(PNG_MAGIC):
            return page.image(data, "Pareto plot of the sweep", "accuracy vs latency per profile, marker size: model size; "
                              "Pareto-optimal groups ringed, the recommendation starred (the sweep's pareto.png)")
        page.notes.append(f"{PARETO_PNG} is not a PNG image: drawn again from {SWEEP_FILE}")
    from .plots import pareto_png

    figs = []
    front = _d(doc.get("pareto"))
    for p in profiles:
        ids = {str(i) for i in _l(front.get(p))}
        pts = []
        for cid, c in by_id.items():
            e = _d(_d(c.get("exports")).get(p))
            if _isnum(e.get("latency_ms")) and _isnum(e.get("accuracy")):
                status = str(e.get("status") or "pass")
                pts.append({"label": cid, "latency_ms": float(e["latency_ms"]), "accuracy": float(e["accuracy"]),
                            "size_bytes": e.get("size_bytes") if _isnum(e.get("size_bytes")) else 0,
                            "pareto": cid in ids, "group": str(c.get("pool") or "?"),
                            "failed": None if status in USABLE else status})
        if not pts:
            figs.append(page.missing(f"{p}: no configuration has both an accuracy and a latency yet"))
            continue
        try:
            png = pareto_png(pts, f"{p}: accuracy vs latency")
        except (TypeError, ValueError) as err:
            figs.append(page.missing(f"{p}: the Pareto plot cannot be drawn ({err})", warn=True))
            continue
        figs.append(page.image(png, f"Pareto plot for {p}", "colour: pooling; marker size: model size; filled: "
                               "Pareto-optimal; a cross: an export that failed verification (drawn from sweep.json)"))
    if not figs:
        return page.missing(f"no {PARETO_PNG} and nothing to plot yet")
    return grid(*figs)


def _groups(doc: dict[str, Any], profiles: list[str], page: Page) -> str:
    groups = _d(doc.get("groups"))
    if not groups:
        return page.missing(f"{SWEEP_FILE} has no per-group summary yet (it is written when configurations finish)")
    out = []
    for p in profiles:
        rows = []
        for g in _l(groups.get(p)):
            if not isinstance(g, dict):
                continue
            marks = (badge("Pareto", "ok") if g.get("pareto") else "") + " " + (badge("recommended", "info") if g.get("recommended") else "")
            rows.append((esc(g.get("group")), esc(g.get("pool")), esc(g.get("model")), esc(g.get("window")), esc(g.get("width")),
                         esc(g.get("seeds")), esc(_pm(g.get("accuracy_mean"), g.get("accuracy_std"), lambda v: f"{100 * v:.2f}%")),
                         esc(_pm(g.get("latency_ms_mean"), g.get("latency_ms_std"), fmt_ms)) + " " + _kind_badge(g.get("latency_kind")),
                         esc(fmt_bytes(g.get("size_bytes"))),
                         esc(_pm(g.get("keras_accuracy_mean"), g.get("keras_accuracy_std"), lambda v: f"{100 * v:.2f}%")), marks))
        if not rows:
            continue
        cols = [Col("group"), Col("pool"), Col("model"), Col("window", True), Col("width", True), Col("seeds", True),
                Col("accuracy", True), Col("latency", True), Col("size", True), Col("Keras accuracy", True), Col("")]
        out.append(f"<h3>{esc(p)}</h3>" + table(cols, rows, raw=range(len(cols))))
    return "".join(out) or page.missing("no group has a result yet")


def _run_link(path: Path, base: Path, c: dict[str, Any]) -> str:
    """The configuration's id, linked to its run's report when one was written (relative to where the page
    goes, so it works offline)."""
    import os

    cid, run_dir = str(c.get("id")), c.get("run_dir")
    if isinstance(run_dir, str) and run_dir and (path / run_dir / "report.html").is_file():
        rel = os.path.relpath((path / run_dir / "report.html").absolute(), base.absolute())
        return f'<a href="{esc(Path(rel).as_posix())}">{esc(cid)}</a>'
    return esc(cid)


def _configs(path: Path, base: Path, doc: dict[str, Any], configs: list[dict[str, Any]], profiles: list[str],
             page: Page) -> str:
    if not configs:
        return page.missing(f"{SWEEP_FILE} lists no configurations yet")
    front = {p: {str(i) for i in _l(ids)} for p, ids in _d(doc.get("pareto")).items()}
    rec = _d(doc.get("recommendation"))
    cols = [Col("id"), Col("pool"), Col("model"), Col("window", True), Col("width", True), Col("seed", True),
            Col("status"), Col("Keras accuracy", True)]
    for p in profiles:
        cols += [Col(f"{p} accuracy", True), Col(f"{p} latency", True), Col(f"{p} size", True)]
    rows = []
    for c in configs:
        cid = str(c.get("id"))
        st = str(c.get("status") or "?")
        row = [_run_link(path, base, c), esc(c.get("pool")), esc(c.get("model")), esc(c.get("window")), esc(c.get("width")), esc(c.get("seed")),
               badge(st, "ok" if st == "done" else "bad" if st in ("failed", "error") else "warn"),
               esc(fmt_pct(c.get("accuracy")))]
        for p in profiles:
            e = _d(_d(c.get("exports")).get(p))
            if not e:
                row += ["-", "-", "-"]
                continue
            acc = esc(fmt_pct(e.get("accuracy")))
            if e.get("status") and e["status"] not in USABLE:
                acc += " " + badge(str(e["status"]), "bad", str(e.get("reason") or ""))
            lat = esc(fmt_ms(e.get("latency_ms"))) + " " + _kind_badge(e.get("latency_kind"))
            if cid in front.get(p, set()):
                lat += " " + badge("Pareto", "ok")
            if rec.get(p) == cid:
                lat += " " + badge("recommended", "info")
            row += [acc, lat, esc(fmt_bytes(e.get("size_bytes")))]
        rows.append(row)
    body = table(cols, rows, raw=range(len(cols)))
    body += note("Each configuration's run directory is in the sweep (its run_dir); `edgepool report` on it shows "
                 "its training curves, exports and per-op costs.")
    fails = [str(f) for f in _l(doc.get("failures"))]
    if fails:
        body += note("Failures: " + "; ".join(fails[:20]) + (" …" if len(fails) > 20 else ""), warn=True)
    return body


def _settings(doc: dict[str, Any], s: dict[str, Any]) -> str:
    def j(v: Any) -> Any:
        return ", ".join(map(str, v)) if isinstance(v, list) else v

    t = _d(doc.get("timings"))
    return kv([("data", s.get("data")), ("pooling", j(s.get("pools"))), ("models", j(s.get("models"))),
               ("windows", j(s.get("windows"))), ("widths", j(s.get("widths"))), ("seeds", s.get("seeds")),
               ("profiles", j(s.get("profiles"))), ("devices", j(s.get("devices"))), ("epochs", s.get("epochs")),
               ("executor", doc.get("executor")),
               ("time", ", ".join(f"{k} {v:.0f} s" for k, v in t.items() if _isnum(v)) or None),
               ("counts", ", ".join(f"{k} {v}" for k, v in _d(doc.get("counts")).items()) or None)])

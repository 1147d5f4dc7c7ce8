"""From configuration records to decisions: seeds averaged per group, the Pareto set and the recommendation
per profile, and the table (rows, CSV, Markdown). NumPy only.

A *group* is a configuration without its seed. Per profile, a group's point is (mean latency, mean accuracy
of its exports) over the seeds whose export is usable (verified or unverified, with a latency). A group is
Pareto-optimal when no other group is at least as fast and at least as accurate, and strictly better in one.
The recommendation is, among the groups meeting the profile's latency target (all of them when none does
or the profile has none), the fastest one whose accuracy is within noise of the most accurate: within the
larger of its seed spread and `ACCURACY_TOLERANCE`; ties go to the smaller model.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ACCURACY_TOLERANCE = 0.002  # 0.2 percentage points: below the resolution of a 1,000-sample test split
USABLE = ("pass", "unverified", "not-compiled")


@dataclass
class Point:
    """One group on one profile, over its seeds."""

    group: str
    profile: str
    config_ids: list[str]
    pool: str
    model: str
    window: int
    width: float
    accuracy: list[float] = field(default_factory=list)  # export accuracy per seed
    latency_ms: list[float] = field(default_factory=list)
    size_bytes: list[int] = field(default_factory=list)
    keras_accuracy: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # verification status of each seed's export
    kind: str | None = None  # measured | estimated
    pareto: bool = False
    recommended: bool = False

    @property
    def usable(self) -> bool:
        """Has numbers, and every seed's export passed verification (a failed export is shown, never chosen)."""
        return bool(self.accuracy) and bool(self.latency_ms) and all(s in USABLE for s in self.statuses)

    @property
    def status(self) -> str:
        return "/".join(sorted(set(self.statuses))) or "-"

    def mean(self, key: str) -> float | None:
        v = getattr(self, key)
        return float(np.mean(v)) if v else None

    def spread(self, key: str) -> float | None:
        """Sample standard deviation over seeds (0 with one seed)."""
        v = getattr(self, key)
        if not v:
            return None
        return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group, "profile": self.profile, "config_ids": self.config_ids, "pool": self.pool,
            "model": self.model, "window": self.window, "width": self.width, "seeds": len(self.accuracy),
            "accuracy_mean": self.mean("accuracy"), "accuracy_std": self.spread("accuracy"),
            "latency_ms_mean": self.mean("latency_ms"), "latency_ms_std": self.spread("latency_ms"),
            "latency_kind": self.kind, "size_bytes": int(self.mean("size_bytes")) if self.size_bytes else None,
            "keras_accuracy_mean": self.mean("keras_accuracy"), "keras_accuracy_std": self.spread("keras_accuracy"),
            "status": self.status, "usable": self.usable, "pareto": self.pareto, "recommended": self.recommended,
        }


def points(configs: list[dict[str, Any]], profile: str) -> list[Point]:
    """One Point per group for `profile`, in the order the groups first appear."""
    out: dict[str, Point] = {}
    for c in configs:
        p = out.get(c["group"])
        if p is None:
            p = out[c["group"]] = Point(c["group"], profile, [], c["pool"], c["model"], c["window"], c["width"])
        p.config_ids.append(c["id"])
        e = (c.get("exports") or {}).get(profile) or {}
        if c.get("status") == "done" and e.get("accuracy") is not None and e.get("latency_ms") is not None:
            p.statuses.append(str(e.get("status")))
            p.accuracy.append(float(e["accuracy"]))
            p.latency_ms.append(float(e["latency_ms"]))
            p.size_bytes.append(int(e["size_bytes"]))
            p.kind = e.get("latency_kind")
            if c.get("accuracy") is not None:
                p.keras_accuracy.append(float(c["accuracy"]))
    return list(out.values())


def pareto(pts: list[Point]) -> list[Point]:
    """The usable points no other usable point dominates (faster-or-equal and at-least-as-accurate, better in one)."""
    use = [p for p in pts if p.usable]
    front = []
    for p in use:
        lat, acc = p.mean("latency_ms"), p.mean("accuracy")
        assert lat is not None and acc is not None
        dominated = False
        for q in use:
            qlat, qacc = q.mean("latency_ms"), q.mean("accuracy")
            assert qlat is not None and qacc is not None
            if q is not p and qlat <= lat and qacc >= acc and (qlat < lat or qacc > acc):
                dominated = True
                break
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: p.mean("latency_ms") or 0.0)


def recommend(pts: list[Point], latency_target_ms: float | None) -> tuple[Point | None, str]:
    """The group to ship on this profile, and why (see the module docstring)."""
    use = [p for p in pts if p.usable]
    if not use:
        return None, "no configuration has both an accuracy and a latency on this profile"
    fits = [p for p in use if latency_target_ms and (p.mean("latency_ms") or 0) <= latency_target_ms]
    pool = fits or use
    if latency_target_ms and not fits:
        why = f"none meets the {latency_target_ms:g} ms target; "
    elif latency_target_ms:
        why = f"{len(fits)} of {len(use)} meet the {latency_target_ms:g} ms target; "
    else:
        why = ""
    best = max(pool, key=lambda p: p.mean("accuracy") or 0.0)
    best_acc = best.mean("accuracy") or 0.0
    tol = max(ACCURACY_TOLERANCE, best.spread("accuracy") or 0.0)
    near = [p for p in pool if (p.mean("accuracy") or 0.0) >= best_acc - tol]
    pick = min(near, key=lambda p: (p.mean("latency_ms") or 0.0, p.mean("size_bytes") or 0.0))
    why += (f"the fastest within {100 * tol:.1f} pp of the best accuracy ({100 * best_acc:.2f}%, {best.group})"
            if pick is not best else f"the most accurate ({100 * best_acc:.2f}%) and no faster one within {100 * tol:.1f} pp")
    return pick, why


def decide(configs: list[dict[str, Any]], profiles: list[Any]) -> dict[str, Any]:
    """pareto / recommendation per profile (configuration ids, as the sweep.json shape says) and the group rows."""
    out: dict[str, Any] = {"pareto": {}, "recommendation": {}, "pareto_groups": {}, "recommendation_group": {},
                           "recommendation_reason": {}, "groups": {}}
    for prof in profiles:
        pts = points(configs, prof.name)
        front = pareto(pts)
        for p in front:
            p.pareto = True
        pick, why = recommend(pts, getattr(prof, "latency_target_ms", None))
        by_id = {c["id"]: c for c in configs}
        out["pareto"][prof.name] = [cid for p in front for cid in p.config_ids if _usable(by_id[cid], prof.name)]
        out["pareto_groups"][prof.name] = [p.group for p in front]
        if pick is not None:
            pick.recommended = True
            # the seed to ship: the most accurate export of the group
            ids = [cid for cid in pick.config_ids if _usable(by_id[cid], prof.name)]
            out["recommendation"][prof.name] = max(ids, key=lambda cid: by_id[cid]["exports"][prof.name]["accuracy"])
            out["recommendation_group"][prof.name] = pick.group
        out["recommendation_reason"][prof.name] = why
        out["groups"][prof.name] = [p.to_dict() for p in pts]
    return out


def _usable(c: dict[str, Any], profile: str) -> bool:
    e = (c.get("exports") or {}).get(profile) or {}
    return c.get("status") == "done" and e.get("status") in USABLE and e.get("latency_ms") is not None \
        and e.get("accuracy") is not None


# ---------------------------------------------------------------- the table



def _pm(mean: float | None, std: float | None, scale: float = 1.0, digits: int = 2) -> str:
    if mean is None:
        return "-"
    s = f"{mean * scale:.{digits}f}"
    return s + (f" ± {std * scale:.{digits}f}" if std else "")


def _pm_ms(mean: float | None, std: float | None) -> str:
    """Latencies over many decades (estimates of tiny models are microseconds): three significant digits."""
    if mean is None:
        return "-"
    return f"{mean:.3g}" + (f" ± {std:.2g}" if std else "")


def table_rows(decision: dict[str, Any]) -> list[dict[str, str]]:
    """One row per profile and group, formatted for people (accuracy in %, latency in ms, mean ± spread)."""
    rows = []
    for prof, groups in decision["groups"].items():
        for g in groups:
            rows.append({
                "profile": prof, "group": g["group"], "pool": g["pool"], "model": g["model"], "window": str(g["window"]),
                "width": f"{g['width']:g}", "seeds": str(g["seeds"]),
                "accuracy": _pm(g["accuracy_mean"], g["accuracy_std"], 100),
                "latency_ms": _pm_ms(g["latency_ms_mean"], g["latency_ms_std"]), "status": g["status"],
                "latency_kind": g["latency_kind"] or "-",
                "size_kb": "-" if g["size_bytes"] is None else f"{g['size_bytes'] / 1024:.1f}",
                "keras_accuracy": _pm(g["keras_accuracy_mean"], g["keras_accuracy_std"], 100),
                "pareto": "yes" if g["pareto"] else "", "recommended": "yes" if g["recommended"] else "",
            })
    return rows


def table_csv(decision: dict[str, Any]) -> str:
    """Numbers for machines: one row per profile and group, raw units (fractions, ms, bytes)."""
    buf = io.StringIO()
    keys = ("profile", "group", "pool", "model", "window", "width", "seeds", "accuracy_mean", "accuracy_std",
            "latency_ms_mean", "latency_ms_std", "latency_kind", "size_bytes", "keras_accuracy_mean",
            "keras_accuracy_std", "status", "pareto", "recommended", "config_ids")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(keys)
    for prof, groups in decision["groups"].items():
        for g in groups:
            row = {**g, "profile": prof, "config_ids": " ".join(g["config_ids"])}
            w.writerow(["" if row.get(k) is None else row[k] for k in keys])
    return buf.getvalue()


def table_markdown(decision: dict[str, Any]) -> str:
    heads = ("profile", "pool", "model", "window", "width", "seeds", "accuracy %", "latency ms", "kind", "size KB",
             "Keras accuracy %", "verified", "Pareto", "recommended")
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for r in table_rows(decision):
        cells = (r["profile"], r["pool"], r["model"], r["window"], r["width"], r["seeds"], r["accuracy"], r["latency_ms"],
                 r["latency_kind"], r["size_kb"], r["keras_accuracy"], r["status"], r["pareto"], r["recommended"])
        lines.append("| " + " | ".join(cells) + " |")
    for prof, why in decision["recommendation_reason"].items():
        pick = decision["recommendation_group"].get(prof)
        lines.append("")
        lines.append(f"- **{prof}**: " + (f"recommend `{pick}` ({decision['recommendation'][prof]}): {why}" if pick else why))
    return "\n".join(lines) + "\n"

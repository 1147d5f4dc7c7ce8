"""PNG plots as bytes (matplotlib, Agg backend). Writing them is runs.py's job."""

from __future__ import annotations

import io
from typing import Any


def _fig_bytes(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curve_png(history: dict[str, list[float]], title: str = "") -> bytes:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    epochs = range(1, len(history["loss"]) + 1)
    a1.plot(epochs, history["loss"], label="train")
    a1.plot(epochs, history["val_loss"], label="val")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss")
    a1.legend()
    a2.plot(epochs, history["accuracy"], label="train")
    a2.plot(epochs, history["val_accuracy"], label="val")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy")
    a2.legend()
    if title:
        fig.suptitle(title)
    return _fig_bytes(fig)


def confusion_matrix_png(cm: list[list[int]], labels: list[str], title: str = "test split") -> bytes:
    import numpy as np

    plt = _plt()
    m = np.asarray(cm)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * n, 1.0 + 0.45 * n))
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=90 if n > 12 else 0)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    hi = m.max() if m.size else 0
    for i in range(n):
        for j in range(n):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7, color="white" if m[i, j] > hi / 2 else "black")
    return _fig_bytes(fig)


# ------------------------------------------------------------------------------------------ report figures

# Colours that stay apart in print and for common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def per_class_accuracy_png(accuracy: list[float], labels: list[str], overall: float | None = None) -> bytes:
    """One bar per class (test split), the overall accuracy as a line."""
    plt = _plt()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.38 * n), 3.0))
    xs = range(n)
    ax.bar(xs, [100 * a for a in accuracy], color=PALETTE[0])
    if overall is not None:
        ax.axhline(100 * overall, color=PALETTE[3], linestyle="--", linewidth=1, label=f"overall {100 * overall:.1f}%")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(list(xs), labels, rotation=90 if n > 12 else 0)
    ax.set_ylim(0, 100)
    ax.set_xlabel("class")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("per-class accuracy (test split)")
    return _fig_bytes(fig)


def latency_histogram_png(series: list[dict[str, Any]], title: str = "") -> bytes:
    """Share of runs per latency bin, one step outline per model.

    Each series is {"label", "edges": [ms...], "mass": [share per bin]} (`edgepool.report.latency`)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.3))
    for i, s in enumerate(series):
        edges, mass = s["edges"], s["mass"]
        ax.stairs([100 * m for m in mass], edges, label=s["label"], color=PALETTE[i % len(PALETTE)],
                  linewidth=1.4, fill=len(series) == 1, alpha=0.85)
    log = any(s.get("log") for s in series)
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)" if log else "latency (ms)")
    ax.set_ylabel("share of runs (%)")
    ax.set_title(title or "latency histogram")
    ax.legend(fontsize=8)
    return _fig_bytes(fig)


def latency_cdf_png(series: list[dict[str, Any]], title: str = "") -> bytes:
    """Cumulative share of runs below each latency, log x; markers on the stored percentiles.

    Each series is {"label", "x": [ms...], "y": [0..1], "points": [(ms, q)], "windows": [(x, y), ...]}."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.3))
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        for wx, wy in s.get("windows", []):
            ax.plot(wx, [100 * v for v in wy], color=color, alpha=0.25, linewidth=0.8)
        ax.plot(s["x"], [100 * v for v in s["y"]], color=color, linewidth=1.6, label=s["label"])
        if s.get("points"):
            px, py = zip(*s["points"], strict=True)
            ax.plot(px, [100 * q for q in py], "o", color=color, markersize=3.5)
    ax.set_xscale("log")
    ax.set_ylim(0, 100.5)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("runs at or below (%)")
    ax.set_title(title or "latency CDF")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _fig_bytes(fig)


def op_costs_png(ops: list[str], macs: list[int], on_tpu: list[bool | None], title: str = "") -> bytes:
    """MACs per op (horizontal bars, graph order top to bottom), coloured by where the op runs when known."""
    plt = _plt()
    n = len(ops)
    fig, ax = plt.subplots(figsize=(5.2, 1.0 + 0.28 * max(n, 1)))
    colors = [PALETTE[2] if t else PALETTE[3] if t is False else PALETTE[0] for t in on_tpu]
    ys = list(range(n))
    ax.barh(ys, macs, color=colors)
    ax.set_yticks(ys, [f"{i} {op}" for i, op in enumerate(ops)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("MACs")
    if any(t is not None for t in on_tpu):
        from matplotlib.patches import Patch

        ax.legend(handles=[Patch(color=PALETTE[2], label="Edge TPU"), Patch(color=PALETTE[3], label="CPU")], fontsize=8,
                  loc="lower right")
    ax.set_title(title or "MACs per op")
    return _fig_bytes(fig)


def pareto_png(points: list[dict[str, Any]], title: str = "") -> bytes:
    """Accuracy against latency, marker area by model size; Pareto-optimal points filled, the rest hollow.

    Each point is {"label", "latency_ms", "accuracy", "size_bytes", "pareto": bool, "group": str, "failed": status
    or absent}; a failed export is a cross labelled with its status."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    groups = list(dict.fromkeys(p["group"] for p in points))
    sizes = [p["size_bytes"] or 0 for p in points]
    top = max(sizes) if sizes and max(sizes) > 0 else 1
    for p in points:
        color = PALETTE[groups.index(p["group"]) % len(PALETTE)]
        area = 30 + 270 * (p["size_bytes"] or 0) / top
        if p.get("failed"):  # an export that failed verification: shown, never on the front
            ax.scatter([p["latency_ms"]], [100 * p["accuracy"]], s=area, marker="x", color=color, alpha=0.6)
            ax.annotate(str(p["failed"]), (p["latency_ms"], 100 * p["accuracy"]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
            continue
        ax.scatter([p["latency_ms"]], [100 * p["accuracy"]], s=area, edgecolors=color, linewidths=1.5,
                   facecolors=color if p["pareto"] else "none", alpha=0.85)
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["latency_ms"])
    if len(front) > 1:
        ax.plot([p["latency_ms"] for p in front], [100 * p["accuracy"] for p in front], color="grey", linewidth=0.8,
                linestyle="--")
    for g in groups:
        ax.scatter([], [], color=PALETTE[groups.index(g) % len(PALETTE)], label=g)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "accuracy vs latency (marker size: model size; filled: Pareto-optimal)")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    return _fig_bytes(fig)

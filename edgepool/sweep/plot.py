"""pareto.png: accuracy vs latency per profile (matplotlib, Agg), as PNG bytes.

One panel per profile. Each group is a point at its mean latency and mean export accuracy, with error bars
of the spread over seeds; marker area grows with the model size; colour = pooling. Pareto-optimal groups
are ringed in black and joined by the frontier; the recommendation is a star. Estimated latencies say so
in the panel title.
"""

from __future__ import annotations

import io
from typing import Any

POOL_COLOURS = {"max": "#1f77b4", "avg": "#2ca02c", "l2": "#9467bd", "strided": "#ff7f0e", "none": "#7f7f7f"}


def pareto_png(decision: dict[str, Any], title: str = "") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    profiles = list(decision["groups"])
    n = max(1, len(profiles))
    fig, axes = plt.subplots(1, n, figsize=(5.6 * n, 4.6), squeeze=False)
    sizes = [g["size_bytes"] for gs in decision["groups"].values() for g in gs if g["size_bytes"]]
    biggest = max(sizes) if sizes else 1
    for ax, prof in zip(axes[0], profiles, strict=False):
        groups = [g for g in decision["groups"][prof] if g["accuracy_mean"] is not None and g["latency_ms_mean"] is not None]
        kinds = {g["latency_kind"] for g in groups}
        kind = "estimated latency" if kinds == {"estimated"} else "measured latency" if kinds == {"measured"} else "latency"
        ax.set_title(f"{prof} ({kind})", fontsize=11)
        ax.set_xlabel(f"{kind} per inference (ms)")
        ax.set_ylabel("accuracy of the export on the test split (%)")
        ax.grid(True, alpha=0.3)
        if not groups:
            ax.text(0.5, 0.5, "no configuration has both numbers", ha="center", va="center", transform=ax.transAxes)
            continue
        for g in groups:
            x, y = g["latency_ms_mean"], 100 * g["accuracy_mean"]
            colour = POOL_COLOURS.get(g["pool"], "#d62728")
            if (g["latency_ms_std"] or 0) > 0 or (g["accuracy_std"] or 0) > 0:
                ax.errorbar(x, y, xerr=g["latency_ms_std"] or 0, yerr=100 * (g["accuracy_std"] or 0), fmt="none",
                            ecolor=colour, alpha=0.6, capsize=3, zorder=1)
            area = 40 + 600 * (g["size_bytes"] or 0) / biggest
            ax.scatter([x], [y], s=area, c=colour, alpha=0.75 if g["usable"] else 0.25, marker="o" if g["usable"] else "X",
                       edgecolors="black" if g["pareto"] else "none",
                       linewidths=1.8 if g["pareto"] else 0, zorder=2)
            if g["recommended"]:
                ax.scatter([x], [y], s=260, marker="*", c="gold", edgecolors="black", linewidths=0.8, zorder=4)
            label = f"{g['pool']}" + (f" {g['model']}" if len({h['model'] for h in groups}) > 1 else "") + \
                (f" w{g['window']}" if len({h['window'] for h in groups}) > 1 else "") + \
                (f" x{g['width']:g}" if len({h['width'] for h in groups}) > 1 else "")
            if not g["usable"]:
                label += f" ({g['status']})"
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
        front = sorted((g for g in groups if g["pareto"]), key=lambda g: g["latency_ms_mean"])
        if len(front) > 1:
            ax.plot([g["latency_ms_mean"] for g in front], [100 * g["accuracy_mean"] for g in front], "k--",
                    linewidth=0.9, alpha=0.6, zorder=3, drawstyle="steps-post")
        lats = [g["latency_ms_mean"] for g in groups]
        if min(lats) > 0 and max(lats) / min(lats) > 20:
            ax.set_xscale("log")
        ax.margins(0.15)
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=p, markersize=8)
               for p, c in POOL_COLOURS.items()
               if any(g["pool"] == p for gs in decision["groups"].values() for g in gs)]
    handles += [Line2D([], [], marker="o", linestyle="", markerfacecolor="white", markeredgecolor="black",
                       markeredgewidth=1.8, label="Pareto-optimal", markersize=8),
                Line2D([], [], marker="*", linestyle="", markerfacecolor="gold", markeredgecolor="black",
                       label="recommended", markersize=12)]
    if any(not g["usable"] for gs in decision["groups"].values() for g in gs):
        handles.append(Line2D([], [], marker="X", linestyle="", color="grey", alpha=0.4, markersize=9,
                              label="export failed verification"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.04))
    fig.suptitle((title + "\n" if title else "") + "marker size = model size; bars = spread over seeds", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()

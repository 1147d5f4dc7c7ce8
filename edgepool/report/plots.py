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

"""Small NumPy numerics shared across layers (NumPy and the standard library only, no edgepool imports)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def softmax(x: ArrayLike, axis: int = -1) -> np.ndarray:
    """Softmax along `axis`, computed in float64 with the maximum subtracted first (no overflow).

    Returns float64; callers that store float32 cast the result.
    """
    a = np.asarray(x, dtype=np.float64)
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def normalize(x_raw: ArrayLike, scale: float | list[float], offset: float | list[float]) -> np.ndarray:
    """A model's float input from raw pixels: x = raw * scale + offset, float32 (per channel when lists)."""
    s, o = np.asarray(scale, np.float32), np.asarray(offset, np.float32)
    return (np.asarray(x_raw).astype(np.float32) * s + o).astype(np.float32)


__all__ = ["normalize", "softmax"]

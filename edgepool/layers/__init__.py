"""edgepool's pooling layers: tf_keras layers built only from ops that export to TFLite builtins and Core ML.

One module per family (importing any of them imports TensorFlow; this package itself does not):

    pooling.py     Max / Average / Lp / L2 pooling in 1D, 2D, 3D (valid / same padding, any window),
                   global max / average pooling in 1D, 2D, 3D
    adaptive.py    adaptive max / average pooling to a fixed output size (PyTorch's bins), 1D, 2D, 3D;
                   spatial pyramid pooling
    unpooling.py   max pooling with indices (first maximum in row-major order) and max unpooling
    learned.py     stochastic pooling, attention pooling

Every layer is a plain tf_keras `Layer` subclass registered with
`register_keras_serializable(package="edgepool")`; `custom_objects()` maps every class name to its
class, for loading saved models and for wrapping the layers (QAT). Each class docstring states the
layer's semantics, tie handling and what it lowers to in TFLite, int8, on the Edge TPU and in Core ML.
`edgepool pooling matrix` shows what actually survives each export.
"""

from __future__ import annotations

import importlib
from typing import Any

MODULES = ("pooling", "adaptive", "unpooling", "learned")

# class name -> module, in the order the compatibility matrix and the docs list them
LAYER_MODULES: dict[str, str] = {
    **{f"{kind}Pooling{r}D": "pooling" for kind in ("Max", "Average", "Lp", "L2") for r in (1, 2, 3)},
    **{f"Global{kind}Pooling{r}D": "pooling" for kind in ("Max", "Average") for r in (1, 2, 3)},
    **{f"Adaptive{kind}Pooling{r}D": "adaptive" for kind in ("Max", "Average") for r in (1, 2, 3)},
    "SpatialPyramidPooling2D": "adaptive",
    "MaxPoolingWithIndices2D": "unpooling",
    "MaxUnpooling2D": "unpooling",
    "StochasticPooling2D": "learned",
    "AttentionPooling": "learned",
}


def get(name: str) -> Any:
    """The layer class called `name` (e.g. "AdaptiveMaxPooling2D"); imports TensorFlow."""
    if name not in LAYER_MODULES:
        raise KeyError(f"no edgepool layer {name!r}; known: {', '.join(LAYER_MODULES)}")
    return getattr(importlib.import_module(f"{__name__}.{LAYER_MODULES[name]}"), name)


def classes() -> dict[str, Any]:
    """Every layer class by name."""
    return {name: get(name) for name in LAYER_MODULES}


def custom_objects() -> dict[str, Any]:
    """The custom layers by class name, for loading saved models (and for wrapping each, e.g. for QAT)."""
    return classes()


def l2_pooling_class() -> Any:
    """L2Pooling2D (kept for callers written before the layer library)."""
    return get("L2Pooling2D")


def __getattr__(name: str) -> Any:  # `from edgepool.layers import AdaptiveMaxPooling2D`
    if name in LAYER_MODULES:
        return get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

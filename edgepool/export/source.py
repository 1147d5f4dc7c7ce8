"""What every exporter is given: the model and the facts about its input and classes."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__

if TYPE_CHECKING:
    from ..profiles import DeviceProfile
    from ..recipes import QuantRecipe


@dataclass
class ModelSource:
    """A tf_keras classifier ready to export.

    `model`: float NHWC input (already normalized), logits out; for QAT recipes the quantization-aware
    copy. `input_spec`: height, width, channels, scale, offset (model input = raw * scale + offset).
    `calib_x`: normalized calibration samples from the training split (full-integer recipes need them).
    `metadata`: facts every sidecar carries (source run, model spec, reference accuracy, ...).
    """

    model: Any
    labels: list[str]
    input_spec: dict[str, Any]
    calib_x: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)  # extra sidecar facts (e.g. the QAT record)


def base_sidecar(source: ModelSource, recipe: QuantRecipe, profile: DeviceProfile | None) -> dict[str, Any]:
    """The sidecar keys every format shares (CONTRIBUTING.md, `model.json`)."""
    return {
        "schema_version": 1,
        "recipe": recipe.name,
        "recipe_description": recipe.description,
        "profile": profile.name if profile is not None else None,
        "labels": list(source.labels),
        "normalization": {
            "scale": source.input_spec["scale"],
            "offset": source.input_spec["offset"],
            "formula": "x = raw * scale + offset",
        },
        **source.metadata,
        "edgepool_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }

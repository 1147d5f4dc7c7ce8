"""Exports: one module per format, each built the same way.

    tflite.export(source, recipe, profile)   -> Artifact   .tflite (float32 / float16 / dynamic / full int8)
    edgetpu.export(source, recipe, profile)  -> Artifact   full-int8 .tflite, compiled for the Edge TPU when possible
    coreml.export(source, recipe, profile)   -> Artifact   .mlpackage (ML Program) or .mlmodel (iOS < 15)

`export_model` picks the format from the recipe and the profile's runtime. Exporters return objects
and write nothing: `runs.save_export` stores an Artifact, and verification is a separate step
(`edgepool.verify`), which `edgepool.pipeline` runs after saving.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..types import Artifact, RecipeFormat, Runtime
from .source import ModelSource, base_sidecar

if TYPE_CHECKING:
    from ..profiles import DeviceProfile
    from ..recipes import QuantRecipe

__all__ = ["Artifact", "ModelSource", "base_sidecar", "export_model"]


def export_model(source: ModelSource, recipe: QuantRecipe, profile: DeviceProfile | None = None, *,
                 image_input: bool = False) -> Artifact:
    """Export `source` with `recipe` for `profile` (None: no device in mind) in the format they call for.

    `image_input`: Core ML only, an image (CVPixelBuffer) input instead of a MultiArray.
    """
    if recipe.format == RecipeFormat.COREML:
        from . import coreml

        return coreml.export(source, recipe, profile, image_input=image_input)
    if profile is not None and profile.runtime == Runtime.EDGETPU:
        from . import edgetpu

        return edgetpu.export(source, recipe, profile)
    from . import tflite

    return tflite.export(source, recipe, profile)

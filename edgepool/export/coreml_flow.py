"""Core ML export of a run: the run's model, labels and normalization handed to coreml.export_coreml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..runs import Run


def export_coreml_run(run: Run, recipe: Any, stage: Path, *, profile: Any = None, image_input: bool = False) -> dict[str, Any]:
    from .._tf import quiet_stderr
    from . import base_sidecar
    from .coreml import export_coreml

    meta = base_sidecar(run, recipe, profile)
    with quiet_stderr():  # coremltools' per-pass progress bars
        fields = export_coreml(
            run.load_model(),
            recipe,
            stage,
            input_spec=run.input_spec,
            labels=run.labels,
            metadata=meta,
            deployment_target=getattr(profile, "minimum_deployment_target", None),
            compute_units=getattr(profile, "compute_units", None),
            image_input=image_input,
        )
    return {**meta, "output_kind": "probabilities", **fields}

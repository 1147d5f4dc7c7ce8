"""Exports: one module per format (tflite.py, edgetpu.py, coreml.py), and the shared export flow.

`export(run, recipe)` makes the model for a recipe, writes RUN/exports/<name>/ atomically
(model file, model.json sidecar, labels.txt), verifies it (verify/) and returns an `ExportResult`.
`edgepool convert --profile` is a thin layer on top: it picks the recipe and options from a profile.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import GateFailure
from ..runs import LABELS, SIDECAR, VERIFY, Run, atomic_write_json, atomic_write_text, read_json, staged_dir


@dataclass
class ExportResult:
    path: Path  # the export directory
    sidecar: dict[str, Any]
    verification: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def model_file(self) -> Path:
        return self.path / self.sidecar["file"]

    @property
    def size_bytes(self) -> int:
        p = self.model_file
        return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


def base_sidecar(run: Run, recipe: Any, profile: Any | None) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "recipe": recipe.name,
        "recipe_description": recipe.description,
        "profile": getattr(profile, "name", None),
        "labels": run.labels,
        "normalization": {"scale": run.input_spec["scale"], "offset": run.input_spec["offset"], "formula": "x = raw * scale + offset"},
        "source_run": str(run.path),
        "model_spec": run.manifest["model"]["spec"],
        "keras_test_accuracy": run.manifest["metrics"]["test_accuracy"],
        "edgepool_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def export(
    run: Run,
    recipe: Any,
    *,
    out: Path | None = None,
    name: str | None = None,
    force: bool = False,
    profile: Any | None = None,
    verify: bool = True,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    strict: bool = True,
    image_input: bool = False,
) -> ExportResult:
    """Export `run`'s model with `recipe` (a QuantRecipe or name) into RUN/exports/<name> (or `out`).

    `image_input`: Core ML only, an image (not MultiArray) input, so an app hands over a CVPixelBuffer.
    """
    from ..quantize import load_recipe

    recipe = load_recipe(recipe)
    target = Path(out) if out else run.exports_dir() / (name or getattr(profile, "name", None) or recipe.name)
    with staged_dir(target, force=force, what="export") as stage:  # refuses an existing export before any work
        if recipe.format == "coreml":
            from .coreml_flow import export_coreml_run

            sidecar = export_coreml_run(run, recipe, stage, profile=profile, image_input=image_input)
        else:
            from .tflite import export_tflite_run

            sidecar = export_tflite_run(run, recipe, stage, profile=profile, progress=progress)
            if str(getattr(profile, "runtime", "")) == "edgetpu":
                sidecar["edgetpu"] = _edgetpu_step(stage / sidecar["file"], stage)
                if sidecar["edgetpu"]["compiled"]:
                    # Artifact layout for Coral: the compiled model is what a device runs (with the
                    # libedgetpu delegate); the CPU int8 model stays beside it and is what we verify.
                    sidecar.update(format="edgetpu-tflite", cpu_file=sidecar["file"], file=sidecar["edgetpu"]["edgetpu_path"])
        notes = sidecar.pop("_notes", [])
        if "edgetpu" in sidecar:
            tpu = sidecar["edgetpu"]
            notes.append(tpu["message"])
            pred = tpu["prediction"]
            notes.append(f"Edge TPU: {pred['mapped_ops']} ops mapped, {pred['cpu_ops']} on the CPU")
            cpu = [op for op in pred["ops"] if not op["on_tpu"]]
            # the ops that cannot run there themselves; the rest only follow them (one partition)
            own = [op for op in cpu if op is cpu[0] or "not in the Edge TPU" in (op["reason"] or "")]
            for op in own:
                notes.append(f"  CPU op {op['index']} {op['op']}: {op['reason']}" + (f" -> {op['suggestion']}" if op.get("suggestion") else ""))
            if len(cpu) > len(own):
                notes.append(f"  and {len(cpu) - len(own)} more ops after them on the CPU (`edgepool inspect --profile coral-usb` lists each)")
        atomic_write_json(stage / SIDECAR, sidecar)
        atomic_write_text(stage / LABELS, "\n".join(run.labels) + "\n")
        verification: dict[str, Any] = {}
        if verify:
            from ..verify import verify_export_dir

            verification = verify_export_dir(stage, run, sidecar, recipe)
            atomic_write_json(stage / VERIFY, verification)
    result = ExportResult(target, sidecar, verification, notes)
    if strict and verification.get("status") == "fail":
        raise GateFailure(f"verification of {target} failed: {verification.get('reason')}", verification.get("hint") or f"see {target / VERIFY}")
    return result


def _edgetpu_step(model_file: Path, stage: Path) -> dict[str, Any]:
    """Edge TPU analysis + edgetpu_compiler where installed; never a fake compile."""
    from .edgetpu import compile_for_edgetpu

    res = compile_for_edgetpu(model_file, stage).to_dict()
    for key in ("edgetpu_path", "log_path"):  # relative to the export directory, not the staging folder
        if res.get(key):
            res[key] = Path(res[key]).name
    return res


def load_export(path: Path) -> tuple[Path, dict[str, Any]]:
    """An export directory (or its model file) -> (directory, sidecar)."""
    from ..errors import InputError

    p = Path(path)
    d = p if p.is_dir() and not p.suffix == ".mlpackage" else p.parent
    if not (d / SIDECAR).is_file():
        raise InputError(f"{p} is not an edgepool export (no {SIDECAR})", "pass a folder written by `edgepool export` or `edgepool convert`")
    return d, read_json(d / SIDECAR)

"""Verification of an export against its source model: parity and accuracy on the run's test split.

float32 TFLite must match Keras within atol 1e-4 / rtol 1e-5 (keras' own export tests; coremltools
uses the same on CPU) or verification fails. Quantized exports are judged by top-1 agreement with the
float model and the accuracy drop, with thresholds from the recipe (`min_agreement`,
`max_accuracy_drop_pp`). The exported model runs in a child process, loaded from bytes. Core ML
exports: `verify.coreml` (the NumPy MIL executor on Linux, Core ML itself on macOS).

Every function returns a `Verification` (edgepool.types): a Status, the reason and hint as data,
and the figures.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DeviceError, ModelError
from ..runs import Export, Run, load_export, load_run
from ..types import Format, RecipeFormat, Status, Verification

if TYPE_CHECKING:
    from ..recipes import QuantRecipe

ATOL_FP32 = 1e-4
RTOL_FP32 = 1e-5


_REFERENCE: dict[tuple[str, int, bytes], np.ndarray] = {}


def keras_logits(run: Run, x: np.ndarray) -> np.ndarray:
    """The float Keras model's outputs on `x`; kept per (model file, inputs) so `convert --all` computes them once."""
    import hashlib

    from .._tf import quiet_stderr
    from ..models import load_run_model

    run.require_model()
    key = (str(run.model_path.resolve()), run.model_path.stat().st_mtime_ns, hashlib.sha1(x.tobytes()).digest())
    if key not in _REFERENCE:
        model = load_run_model(run)
        with quiet_stderr():
            _REFERENCE[key] = model.predict(x, batch_size=256, verbose=0)
    return _REFERENCE[key]


def run_tflite_child(model_file: Path, x: np.ndarray, timeout: float = 600) -> np.ndarray:
    """Outputs (dequantized) of a .tflite model over `x`, computed in a child process."""
    with tempfile.TemporaryDirectory(prefix="edgepool-verify-") as tmp:
        xin, yout = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        np.save(xin, x.astype(np.float32))
        p = subprocess.run(
            [sys.executable, "-m", "edgepool.verify._tflite_child", str(model_file), str(xin), str(yout)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if p.returncode != 0 or not yout.exists():
            last = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
            raise DeviceError(f"the LiteRT interpreter failed on {model_file}: {last[:300]}", "the model may be corrupt; re-export it")
        return np.load(yout)


def compare(out: np.ndarray, ref: np.ndarray, y: np.ndarray, recipe: QuantRecipe, float_exact: bool) -> Verification:
    """Judge outputs `out` against the reference outputs `ref` on labels `y`."""
    pred, ref_pred = out.argmax(1), ref.argmax(1)
    res: dict[str, object] = {
        "samples": int(len(y)),
        "accuracy": float(np.mean(pred == y)),
        "reference_accuracy": float(np.mean(ref_pred == y)),
        "agreement": float(np.mean(pred == ref_pred)),
        "max_abs_diff": float(np.max(np.abs(out - ref))),
        "mean_abs_diff": float(np.mean(np.abs(out - ref))),
        "nonfinite_outputs": int(np.size(out) - np.isfinite(out).sum()),
    }
    acc, ref_acc, agreement = float(np.mean(pred == y)), float(np.mean(ref_pred == y)), float(np.mean(pred == ref_pred))
    res["accuracy_delta_pp"] = 100 * (acc - ref_acc)
    nonfinite = int(np.size(out) - np.isfinite(out).sum())
    if nonfinite:
        return Verification(Status.FAIL, f"{nonfinite} NaN/Inf outputs", None, res)
    if float_exact:
        ok = bool(np.allclose(out, ref, atol=ATOL_FP32, rtol=RTOL_FP32))
        res["criterion"] = f"allclose(atol={ATOL_FP32}, rtol={RTOL_FP32})"
        if ok:
            return Verification(Status.PASS, details=res)
        return Verification(Status.FAIL, f"float32 outputs differ from Keras by up to {float(np.max(np.abs(out - ref))):.3g}", None, res)
    drop = 100 * (ref_acc - acc)
    res["criterion"] = f"agreement >= {recipe.min_agreement:.3f} and accuracy drop <= {recipe.max_accuracy_drop_pp} pp"
    problems = []
    if agreement < recipe.min_agreement:
        problems.append(f"agreement {agreement:.4f} < {recipe.min_agreement}")
    if drop > recipe.max_accuracy_drop_pp:
        problems.append(f"accuracy drop {drop:.2f} pp > {recipe.max_accuracy_drop_pp} pp")
    if problems:
        return Verification(Status.FAIL, "; ".join(problems), quantization_hint(recipe), res)
    return Verification(Status.PASS, details=res)


def quantization_hint(recipe: QuantRecipe) -> str:
    """What to try when a quantized export loses too much: the next less lossy step from `recipe`."""
    if recipe.format == RecipeFormat.COREML:
        if recipe.weight_compression == "none":
            return "use coreml-fp32: FP16 rounding is too coarse for this model"
        return "use coreml-fp16 (no weight compression), or more palette bits (palettize_nbits) in a copy of the recipe"
    if recipe.qat:
        return f"fine-tune longer: quantize again with more than {recipe.qat_epochs} QAT epochs"
    if recipe.weights == "int8" and not recipe.per_channel:
        return "copy the recipe file with per_channel = true (one weight scale per channel), or use int8-qat"
    if recipe.full_integer:
        return "use int8-qat (quantization-aware training), or dynamic-int8 if the device runs float activations"
    return "use float32, or a recipe with less weight compression"


def verify_tflite(model_file: Path, run: Run, recipe: QuantRecipe) -> Verification:
    x_raw, y = run.test_data()
    x = run.normalize(x_raw)
    ref = keras_logits(run, x)
    out = run_tflite_child(model_file, x)
    v = compare(out, ref, y, recipe, float_exact=recipe.is_float32)
    v.details = {"executor": "litert-interpreter (child process)", "reference": "keras float model", **v.details}
    return v


def verify(export: Export, run: Run, recipe: QuantRecipe) -> Verification:
    """Verify the model in an export folder (any format) against `run`'s Keras model."""
    fmt = Format(export.format)
    if fmt.is_tflite:
        # an Edge TPU-compiled model needs the Edge TPU: verify the CPU int8 model it was compiled from
        return verify_tflite(export.verify_file, run, recipe)
    from .coreml import verify_coreml

    x_raw, y = run.test_data()
    ref = keras_logits(run, run.normalize(x_raw))
    return verify_coreml(export.model_file, x_raw, y, ref, recipe)


def source_of(export: Export) -> Run:
    """The run an export was made from, checked: the same model file and data as at export time."""
    src = export.source_run_path
    if src is None:
        raise ModelError(f"{export.path} does not name the run it came from", "re-export it from its run")
    run = load_run(src)
    side = export.sidecar
    want_model = side.get("source_model_sha256")
    if want_model and run.model_sha256() != want_model:
        raise ModelError(
            f"run {run.path} holds a different model.keras than export {export.path} was made from",
            "re-export it from the run as it is now, overwriting it",
        )
    want_data = side.get("source_data_fingerprint")
    if want_data and run.data_fingerprint != want_data:
        raise ModelError(
            f"run {run.path} was trained on different data than export {export.path} was verified with",
            "re-export it from the run as it is now, overwriting it",
        )
    return run


def verify_path(path: Path) -> tuple[Export, Verification]:
    """Re-verify an existing export folder against its source run (`edgepool verify EXPORT`)."""
    from ..recipes import load_recipe

    export = load_export(path)
    run = source_of(export)
    return export, verify(export, run, load_recipe(export.sidecar["recipe"]))

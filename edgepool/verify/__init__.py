"""Verification of an export against its source model: parity and accuracy on the run's test split.

float32 TFLite must match Keras within atol 1e-4 / rtol 1e-5 (keras' own export tests; coremltools
uses the same on CPU) or verification fails. Quantized exports are judged by top-1 agreement with the
float model and the accuracy drop, with thresholds from the recipe (`min_agreement`,
`max_accuracy_drop_pp`). The exported model runs in a child process, loaded from bytes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DeviceError
from ..runs import Run

ATOL_FP32 = 1e-4
RTOL_FP32 = 1e-5


_REFERENCE: dict[tuple[str, int, bytes], np.ndarray] = {}


def keras_logits(run: Run, x: np.ndarray) -> np.ndarray:
    """The float Keras model's outputs on `x`; kept per (model file, inputs) so `convert --all` computes them once."""
    import hashlib

    from .._tf import quiet_stderr

    if not run.model_path.is_file():
        run.load_model()  # raises the run's "no model.keras" error
    key = (str(run.model_path.resolve()), run.model_path.stat().st_mtime_ns, hashlib.sha1(x.tobytes()).digest())
    if key not in _REFERENCE:
        model = run.load_model()
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


def compare(out: np.ndarray, ref: np.ndarray, y: np.ndarray, recipe: Any, float_exact: bool) -> dict[str, Any]:
    pred, ref_pred = out.argmax(1), ref.argmax(1)
    res: dict[str, Any] = {
        "samples": int(len(y)),
        "accuracy": float(np.mean(pred == y)),
        "reference_accuracy": float(np.mean(ref_pred == y)),
        "agreement": float(np.mean(pred == ref_pred)),
        "max_abs_diff": float(np.max(np.abs(out - ref))),
        "mean_abs_diff": float(np.mean(np.abs(out - ref))),
        "nonfinite_outputs": int(np.size(out) - np.isfinite(out).sum()),
    }
    res["accuracy_delta_pp"] = 100 * (res["accuracy"] - res["reference_accuracy"])
    if res["nonfinite_outputs"]:
        res.update(status="fail", reason=f"{res['nonfinite_outputs']} NaN/Inf outputs")
    elif float_exact:
        ok = bool(np.allclose(out, ref, atol=ATOL_FP32, rtol=RTOL_FP32))
        res.update(criterion=f"allclose(atol={ATOL_FP32}, rtol={RTOL_FP32})", status="pass" if ok else "fail")
        if not ok:
            res["reason"] = f"float32 outputs differ from Keras by up to {res['max_abs_diff']:.3g}"
    else:
        drop = -res["accuracy_delta_pp"]
        res["criterion"] = f"agreement >= {recipe.min_agreement:.3f} and accuracy drop <= {recipe.max_accuracy_drop_pp} pp"
        problems = []
        if res["agreement"] < recipe.min_agreement:
            problems.append(f"agreement {res['agreement']:.4f} < {recipe.min_agreement}")
        if drop > recipe.max_accuracy_drop_pp:
            problems.append(f"accuracy drop {drop:.2f} pp > {recipe.max_accuracy_drop_pp} pp")
        res["status"] = "fail" if problems else "pass"
        if problems:
            res["reason"] = "; ".join(problems)
            res["hint"] = quantization_hint(recipe)
    return res


def quantization_hint(recipe: Any) -> str:
    """What to try when a quantized export loses too much: the next less lossy step from `recipe`."""
    if recipe.format == "coreml":
        if recipe.weight_compression == "none":
            return "use coreml-fp32: FP16 rounding is too coarse for this model"
        return "use coreml-fp16 (no weight compression), or more palette bits (palettize_nbits) in a copy of the recipe"
    if recipe.qat:
        return f"fine-tune longer: `edgepool quantize RUN --recipe {recipe.name} --epochs N` with N above {recipe.qat_epochs}"
    if recipe.weights == "int8" and not recipe.per_channel:
        return "copy the recipe file with per_channel = true (one weight scale per channel), or use int8-qat"
    if recipe.full_integer:
        return "use int8-qat (quantization-aware training), or dynamic-int8 if the device runs float activations"
    return "use float32, or a recipe with less weight compression"


def verify_tflite(model_file: Path, run: Run, recipe: Any) -> dict[str, Any]:
    x_raw, y = run.test_data()
    x = run.normalize(x_raw)
    ref = keras_logits(run, x)
    out = run_tflite_child(model_file, x)
    res = compare(out, ref, y, recipe, float_exact=recipe.is_float32)
    return {"executor": "litert-interpreter (child process)", "reference": "keras float model", **res}


def verify_export_dir(export_dir: Path, run: Run, sidecar: dict[str, Any], recipe: Any) -> dict[str, Any]:
    """Verify the model in `export_dir` (any format) and return the verification record."""
    fmt = sidecar["format"]
    # an Edge TPU-compiled model needs the Edge TPU: verify the CPU int8 model it was compiled from
    model_file = Path(export_dir) / sidecar.get("cpu_file", sidecar["file"])
    if fmt in ("tflite", "edgetpu-tflite"):
        return verify_tflite(model_file, run, recipe)
    if fmt == "coreml":
        from .._tf import coremltools
        from .coreml import verify_coreml

        coremltools()

        x_raw, y = run.test_data()
        ref = keras_logits(run, run.normalize(x_raw))
        return verify_coreml(model_file, x_raw, y, ref, recipe)
    return {"status": f"unverified: format {fmt}"}


def verify_export(path: Path) -> dict[str, Any]:
    """Re-verify an existing export directory against its source run (`edgepool verify EXPORT`)."""
    from ..export import load_export
    from ..quantize import load_recipe
    from ..runs import load_run

    d, sidecar = load_export(path)
    run = load_run(sidecar["source_run"])
    try:
        recipe = load_recipe(sidecar["recipe"])
    except Exception:
        from ..quantize import QuantRecipe

        recipe = QuantRecipe(name=sidecar["recipe"], description="", format="tflite", path=Path("?"))
    return verify_export_dir(d, run, sidecar, recipe)

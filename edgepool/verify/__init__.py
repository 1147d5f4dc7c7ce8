"""Verification of an export against its source model: parity and accuracy on the run's test split.

The acceptance rules live in `verify.criteria`, one set for both formats: float32 exports (TFLite
float32, Core ML FP32) must match Keras within atol 1e-4 / rtol 1e-5 (keras' own export tests;
coremltools uses the same on CPU); FP16 exports (TFLite float16, Core ML FP16) must keep the recipe's
top-1 agreement and accuracy and stay within a bound derived from FP16 precision and the logit scale
(`criteria.fp16_bound`); lossy exports (int8, Core ML compressed weights) are judged by agreement and
accuracy drop alone, with the recipe's `min_agreement` / `max_accuracy_drop_pp`. The exported model
runs in a child process, loaded from bytes. Core ML exports: `verify.coreml` (the NumPy MIL executor
on Linux, Core ML itself on macOS).

The profile's own runtime: when the export is for a TFLite / Edge TPU profile and a Python holding
that runtime release is named in the environment variable `EDGEPOOL_TFLITE_RUNTIMES`
(`"2.14=/path/to/python,2.17=/other/python"`, keyed by the profile's `runtime_version`), the export is
also loaded and run there (`_tflite_child.py`, run as a file: edgepool need not be installed in that
Python). The record gets `runtime_check` {runtime, python, status, reason, max_abs_diff (vs the host
runtime), agreement, accuracy}; a runtime that refuses the model fails verification with its own message.

Every function returns a `Verification` (edgepool.types): a Status, the reason and hint as data,
and the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DeviceError, EdgepoolError, InputError, ModelError
from ..runs import Export, Run, load_run
from ..types import Format, RecipeFormat, Runtime, Status, Verification
from . import criteria
from .criteria import ATOL_FP32, RTOL_FP32

if TYPE_CHECKING:
    from ..profiles import DeviceProfile
    from ..recipes import QuantRecipe

RUNTIMES_ENV = "EDGEPOOL_TFLITE_RUNTIMES"
_CHILD = Path(__file__).with_name("_tflite_child.py")


_REFERENCE: dict[tuple[str, int, bytes], np.ndarray] = {}


def keras_logits(run: Run, x: np.ndarray) -> np.ndarray:
    """The float Keras model's outputs on `x`; kept per (model file, inputs) so `convert --all` computes them once."""
    import hashlib

    from .._tf import quiet_stderr
    from ..models import load_run_model

    if run.manifest.get("source"):  # an imported model: its own runtime is the reference (onnxruntime, LiteRT)
        from ..importers import reference_logits

        key = (str(run.path.resolve()), (run.path / "manifest.json").stat().st_mtime_ns, hashlib.sha1(x.tobytes()).digest())
        if key not in _REFERENCE:
            ref = reference_logits(run, x)
            if ref is not None:
                _REFERENCE[key] = ref
        if key in _REFERENCE:
            return _REFERENCE[key]
    run.require_model()
    key = (str(run.model_path.resolve()), run.model_path.stat().st_mtime_ns, hashlib.sha1(x.tobytes()).digest())
    if key not in _REFERENCE:
        model = load_run_model(run)
        with quiet_stderr():
            _REFERENCE[key] = model.predict(x, batch_size=256, verbose=0)
    return _REFERENCE[key]


def reference_name(run: Run) -> str:
    """What `keras_logits` compares exports with: the Keras float model, or an imported model's own runtime."""
    if run.manifest.get("source"):
        from ..importers import reference_name as imported

        return imported(run) or "keras float model"
    return "keras float model"


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
            raise DeviceError(f"the LiteRT interpreter failed on {model_file}: {_last_line(p)[:300]}",
                              "the model may be corrupt; re-export it")
        return np.load(yout)


def _last_line(p: subprocess.CompletedProcess[str]) -> str:
    """The child's one-line error ("error: ..." as the last stderr line), without the prefix."""
    last = (p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1]
    return last.removeprefix("error: ")


def compare(out: np.ndarray, ref: np.ndarray, y: np.ndarray, recipe: QuantRecipe, float_exact: bool,
            depth: int = 1) -> Verification:
    """Judge outputs `out` against the reference outputs `ref` on labels `y` (`verify.criteria`).

    `float_exact`: the float32 rule; otherwise the FP16 rule when `criteria.is_fp16(recipe)` (`depth`:
    the weight layers of the exported graph, `criteria.weighted_layers`), else agreement and accuracy."""
    pred, ref_pred = out.argmax(1), ref.argmax(1)
    acc, ref_acc, agreement = float(np.mean(pred == y)), float(np.mean(ref_pred == y)), float(np.mean(pred == ref_pred))
    nonfinite = int(np.size(out) - np.isfinite(out).sum())
    res: dict[str, object] = {
        "samples": int(len(y)),
        "accuracy": acc,
        "reference_accuracy": ref_acc,
        "agreement": agreement,
        "max_abs_diff": float(np.max(np.abs(out - ref))) if out.size else 0.0,
        "mean_abs_diff": float(np.mean(np.abs(out - ref))) if out.size else 0.0,
        "nonfinite_outputs": nonfinite,
        "accuracy_delta_pp": 100 * (acc - ref_acc),
    }
    if nonfinite:
        return Verification(Status.FAIL, f"{nonfinite} NaN/Inf outputs", None, res)
    if float_exact:
        ok = bool(np.allclose(out, ref, atol=ATOL_FP32, rtol=RTOL_FP32))
        res["criterion"] = f"allclose(atol={ATOL_FP32}, rtol={RTOL_FP32})"
        if ok:
            return Verification(Status.PASS, details=res)
        return Verification(Status.FAIL, f"float32 outputs differ from Keras by up to {float(np.max(np.abs(out - ref))):.3g}", None, res)
    problems = criteria.acceptance_problems(agreement, 100 * (ref_acc - acc), recipe)
    if criteria.is_fp16(recipe):
        parity = criteria.fp16_parity(out, ref, depth)
        res["criterion"] = criteria.fp16_criterion(depth, recipe)
        res["fp16_parity"] = {k: parity[k] for k in ("depth", "rtol", "bound", "worst_diff", "worst_ratio") if k in parity}
        problem = criteria.fp16_parity_problem(parity)
        if problem:
            problems.append(problem)
    else:
        res["criterion"] = f"agreement >= {recipe.min_agreement:.3f} and accuracy drop <= {recipe.max_accuracy_drop_pp} pp"
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


def tflite_depth(model_file: Path) -> int:
    """L of the FP16 bound for a .tflite: its weight layers (`criteria.weighted_layers`)."""
    from ..inspect.tflite import read_tflite

    return criteria.weighted_layers(op.name for op in read_tflite(model_file).main.ops)


def verify_tflite(model_file: Path, run: Run, recipe: QuantRecipe, profile: DeviceProfile | None = None) -> Verification:
    """Run a .tflite on `run`'s test split on the host (LiteRT) and judge it; with a `profile` whose runtime
    release is named in `EDGEPOOL_TFLITE_RUNTIMES`, run and judge it in that runtime too."""
    x_raw, y = run.test_data()
    x = run.normalize(x_raw)
    ref = keras_logits(run, x)
    out = run_tflite_child(model_file, x)
    depth = tflite_depth(model_file) if criteria.is_fp16(recipe) else 1
    v = compare(out, ref, y, recipe, float_exact=recipe.is_float32, depth=depth)
    v.details = {"executor": "litert-interpreter (child process)", "reference": reference_name(run), **v.details}
    target = profile_runtime(profile)
    if target is not None:
        check = runtime_check(model_file, x, y, ref, out, recipe, target, depth)
        v.details["runtime_check"] = check.record
        if check.failure and v.status is not Status.FAIL:
            v = Verification(Status.FAIL, check.failure, check.hint, v.details)
        elif check.failure:
            v = Verification(Status.FAIL, f"{v.reason}; {check.failure}", v.hint or check.hint, v.details)
    return v


# ------------------------------------------------------------------ the profile's own runtime


@dataclass(frozen=True)
class RuntimeTarget:
    """A Python holding the TFLite runtime release a profile names."""

    profile: str
    version: str  # the profile's runtime_version
    python: Path


def configured_runtimes(env: str | None = None) -> dict[tuple[int, ...], Path]:
    """`EDGEPOOL_TFLITE_RUNTIMES` ("2.14=/path/python,2.17=/other/python") as {(2, 14, 0): path}."""
    from ..inspect.support import parse_version

    text = os.environ.get(RUNTIMES_ENV, "") if env is None else env
    out: dict[tuple[int, ...], Path] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        version, sep, python = entry.partition("=")
        if not sep or not version.strip() or not python.strip() or not version.strip()[0].isdigit():
            raise InputError(f"{RUNTIMES_ENV} entry {entry!r} is not VERSION=PYTHON",
                             'write it as "2.14=/path/to/venv/bin/python", entries separated by commas')
        out[parse_version(version)] = Path(python.strip()).expanduser()
    return out


def profile_runtime(profile: DeviceProfile | None) -> RuntimeTarget | None:
    """The Python named for `profile`'s runtime release, or None (no profile, Core ML, or none named)."""
    if profile is None or profile.runtime not in (Runtime.TFLITE, Runtime.EDGETPU):
        return None
    from ..inspect.support import parse_version

    python = configured_runtimes().get(parse_version(profile.runtime_version))
    if python is None:
        return None
    if not python.is_file() or not os.access(python, os.X_OK):
        raise InputError(f"{RUNTIMES_ENV} names {python} for runtime {profile.runtime_version}, which is not an "
                         "executable file", "point it at the python of a venv holding that runtime")
    return RuntimeTarget(profile.name, profile.runtime_version, python)


@dataclass
class RuntimeCheck:
    record: dict[str, Any]
    failure: str | None = None  # the verification's reason when the runtime fails the export
    hint: str | None = None


def runtime_check(model_file: Path, x: np.ndarray, y: np.ndarray, ref: np.ndarray, host: np.ndarray,
                  recipe: QuantRecipe, target: RuntimeTarget, depth: int = 1, timeout: float = 600) -> RuntimeCheck:
    """Load and run `model_file` in `target`'s Python; judge its outputs against Keras (`compare`) and
    against the host runtime's outputs `host`."""
    record: dict[str, Any] = {"runtime": None, "python": str(target.python), "profile": target.profile,
                              "profile_runtime_version": target.version}
    with tempfile.TemporaryDirectory(prefix="edgepool-runtime-") as tmp:
        xin, yout = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        np.save(xin, x.astype(np.float32))
        try:
            p = subprocess.run([str(target.python), "-I", str(_CHILD), str(model_file), str(xin), str(yout)],
                               capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise DeviceError(f"the runtime Python {target.python} did not run: {e}",
                              f"check the {RUNTIMES_ENV} entry for {target.version}") from None
        head = (p.stdout.strip().splitlines() or [""])[0]
        try:
            info = json.loads(head)
            record["runtime"] = f"{info['runtime']} {info['version']}"
        except (ValueError, KeyError, TypeError):
            info = None
        if p.returncode == 3 or info is None:
            raise InputError(f"{target.python} cannot run TFLite models: {_last_line(p)[:200]}",
                             f"install tflite-runtime {target.version} in it, or fix {RUNTIMES_ENV}")
        name = record["runtime"]
        if p.returncode != 0 or not yout.exists():
            why = _last_line(p)[:400]
            stage = "cannot load the model" if p.returncode == 4 else "failed running the model"
            record.update(status=Status.FAIL.value, reason=why, max_abs_diff=None, agreement=None, accuracy=None)
            return RuntimeCheck(record, f"{name} (the {target.profile} runtime) {stage}: {why}",
                                "use a recipe that runtime can load (e.g. int8 or float32), or a newer runtime on the device")
        out = np.load(yout)
    v = compare(out, ref, y, recipe, float_exact=recipe.is_float32, depth=depth)
    record.update(status=v.status.value, reason=v.reason, max_abs_diff=float(np.max(np.abs(out - host))) if out.size else 0.0,
                  agreement=v.details.get("agreement"), accuracy=v.details.get("accuracy"))
    if v.status is not Status.PASS:
        return RuntimeCheck(record, f"in {name} (the {target.profile} runtime): {v.reason}", v.hint)
    return RuntimeCheck(record)


# ------------------------------------------------------------------ any export


def verify(export: Export, run: Run, recipe: QuantRecipe, profile: DeviceProfile | None = None) -> Verification:
    """Verify the model in an export folder (any format) against `run`'s Keras model.

    `profile`: the device profile the export is for (default: the one its sidecar names, when it can
    be found); its runtime is also run when `EDGEPOOL_TFLITE_RUNTIMES` names a Python for it."""
    fmt = Format(export.format)
    if profile is None and export.sidecar.get("profile"):
        profile = _sidecar_profile(str(export.sidecar["profile"]))
    if fmt.is_tflite:
        # an Edge TPU-compiled model needs the Edge TPU: verify the CPU int8 model it was compiled from
        return verify_tflite(export.verify_file, run, recipe, profile)
    from .coreml import verify_coreml

    x_raw, y = run.test_data()
    ref = keras_logits(run, run.normalize(x_raw))
    return verify_coreml(export.model_file, x_raw, y, ref, recipe)


def _sidecar_profile(name: str) -> DeviceProfile | None:
    from ..profiles import resolve

    try:
        return resolve(name)
    except EdgepoolError:  # a user profile that is gone or broken: verify without its runtime
        return None


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

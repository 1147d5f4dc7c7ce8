"""Verify a Core ML export against its Keras model: parity of the logits and accuracy on the test split.

On macOS the package runs in Core ML itself (`MLModel.predict`, executor "coreml"). Everywhere else
the ML Program runs in edgepool's NumPy MIL executor (`edgepool.verify.mil`, executor "numpy-mil").
A program with an op the executor does not implement, or a legacy neuralnetwork `.mlmodel` off macOS,
is reported `Status.UNVERIFIED` with reason "op X" -- never a pass.

Criteria (`criteria_for(recipe)`, the rules themselves in `verify.criteria`, shared with TFLite):
- FP32 compute: logits within `|a - b| <= 1e-4 + 1e-5 * max|b|` per sample, top-1 agreement >= 99.5%.
- FP16 compute, uncompressed weights: the FP16 rule, the same as for TFLite float16 exports --
  the recipe's `min_agreement` and `max_accuracy_drop_pp`, and per sample
  `max|a - b| <= 4 x 2^-10 x sqrt(L) x logit scale` (L: the program's weight layers; see
  `verify.criteria` for the derivation).
- Compressed weights (8-bit linear, palettized) change the function on purpose: they must keep top-1
  agreement and accuracy within the recipe's `min_agreement` / `max_accuracy_drop_pp` (shipped: 99% /
  1 point for coreml-int8, 97% / 2 points for coreml-palettize); their max_abs_diff is reported, not gated.
When Core ML's own probabilities are compared (macOS), FP32 tolerances apply to the probabilities and
the FP16 bound is halved (softmax moves a probability by at most half the largest logit change).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..inspect.coreml import SOFTMAX_APPENDED_KEY, read_coreml, read_metadata
from ..numeric import softmax
from ..types import Compression, Status, Verification
from . import criteria, quantization_hint
from .mil import UnsupportedOp, load_program, run

if TYPE_CHECKING:
    from ..recipes import QuantRecipe

BATCH = 64
EXECUTORS = ("coreml", "numpy-mil")


def criteria_for(recipe: QuantRecipe, depth: int = 1) -> dict[str, Any]:
    """Tolerances and thresholds for a Core ML recipe (`depth`: weight layers, for the FP16 bound).

    "rule" is "lossy" | "float32" | "fp16"; for FP16, `atol` 0 and `rtol` K x 2^-10 x sqrt(depth)
    relative to each sample's logit scale (`criteria.fp16_bound`)."""
    if Compression(recipe.weight_compression) is not Compression.NONE:
        # compressed weights change the function on purpose: the recipe's own acceptance
        return {
            "rule": "lossy",
            "atol": None,
            "rtol": None,
            "min_agreement": float(recipe.min_agreement),
            "max_accuracy_drop": float(recipe.max_accuracy_drop_pp) / 100.0,
        }
    if recipe.compute_precision == "float32":
        return {"rule": "float32", "atol": criteria.ATOL_FP32, "rtol": criteria.RTOL_FP32, "min_agreement": 0.995,
                "max_accuracy_drop": None}
    return {
        "rule": "fp16",
        "atol": 0.0,
        "rtol": criteria.fp16_rtol(depth),
        "depth": int(depth),
        "k": criteria.K_FP16,
        "min_agreement": float(recipe.min_agreement),
        "max_accuracy_drop": float(recipe.max_accuracy_drop_pp) / 100.0,
    }


def coreml_depth(package_path: Path) -> int:
    """L of the FP16 bound for a Core ML model: its weight layers (`criteria.weighted_layers`)."""
    return criteria.weighted_layers(op["op"] for op in read_coreml(Path(package_path))["ops"])


def unverified_hint(reason: str) -> str:
    """What to do when the NumPy executor cannot run a model (`reason`: "op X")."""
    return f"the NumPy MIL executor cannot run it ({reason}); verify on macOS, where Core ML itself runs the model"


def _unverified(reason: str, executor: str, keras_acc: float, crit: dict[str, Any]) -> Verification:
    return Verification(
        Status.UNVERIFIED,
        reason,
        unverified_hint(reason),
        {
            "executor": executor,
            "accuracy": None,
            "keras_accuracy": keras_acc,
            "reference_accuracy": keras_acc,  # the name every verification record uses
            "agreement": None,
            "max_abs_diff": None,
            "max_rel_diff": None,
            "atol": crit["atol"],
            "rtol": crit["rtol"],
            "samples": 0,
        },
    )


def mil_scores(package_path: Path, x_raw: np.ndarray, *, batch: int = BATCH) -> tuple[np.ndarray, str]:
    """Run the package's ML Program in NumPy on raw NHWC pixels.

    Returns (scores, kind): the logits (the input of the softmax edgepool appends) when there is one,
    else the classifier's probabilities; kind is "logits" or "probabilities". Raises UnsupportedOp.
    """
    prog = load_program(Path(package_path))
    if len(prog.inputs) != 1:
        raise UnsupportedOp("multi-input", f"{len(prog.inputs)} inputs")
    inp = prog.inputs[0]
    appended = prog.user_metadata.get(SOFTMAX_APPENDED_KEY) == "true"
    logits_var = None
    if appended:
        softmaxes = [op for op in prog.function.operations if op.op_type == "softmax"]
        if softmaxes:
            logits_var = softmaxes[-1].inputs["x"].name
    probs_name = next((n for n in prog.output_names if n.endswith("_probs")), prog.output_names[-1])
    outs = []
    x = np.asarray(x_raw, dtype=np.float32)
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        if inp.image:
            xb = xb.transpose(0, 3, 1, 2)  # the program sees an image input as NCHW pixels
        res = run(prog, {inp.name: xb}, keep=logits_var is not None)
        val = res[logits_var] if logits_var is not None else res[probs_name]
        outs.append(np.asarray(val, dtype=np.float32).reshape(len(xb), -1))
    return np.concatenate(outs), ("logits" if logits_var is not None else "probabilities")


def coreml_probabilities(
    package_path: Path, x_raw: np.ndarray, labels: list[str] | None = None
) -> np.ndarray:
    """macOS only: class probabilities from Core ML itself (`MLModel.predict`), one sample at a time."""
    from .._tf import coremltools

    ct = coremltools()

    model = ct.models.MLModel(str(package_path))
    spec = model.get_spec()
    d = spec.description
    in_name = d.input[0].name
    image = d.input[0].type.WhichOneof("Type") == "imageType"
    probs_name = d.predictedProbabilitiesName
    out = []
    for xi in np.asarray(x_raw):
        if image:
            from PIL import Image

            arr = np.asarray(xi, dtype=np.uint8)
            img = (
                Image.fromarray(arr[..., 0], mode="L")
                if arr.shape[-1] == 1
                else Image.fromarray(arr, mode="RGB")
            )
            feed: Any = img
        else:
            feed = np.asarray(xi, dtype=np.float32)[None]
        pred = model.predict({in_name: feed})
        p = pred[probs_name]
        keys = labels if labels is not None else sorted(p)
        out.append([float(p[k]) for k in keys])
    return np.asarray(out, dtype=np.float32)


def verify_coreml(
    package_path: Path,
    x_raw: np.ndarray,
    y: np.ndarray,
    keras_logits: np.ndarray,
    recipe: QuantRecipe,
    *,
    executor: str | None = None,
) -> Verification:
    """Parity with Keras and accuracy of a Core ML export on the test split.

    `x_raw`: raw uint8 NHWC pixels (the package bakes the normalization in); `y`: int labels;
    `keras_logits`: the Keras model's outputs on the normalized `x_raw`. `executor`: "coreml"
    (macOS only) or "numpy-mil"; default: "coreml" on macOS, else "numpy-mil".
    Returns a Verification: PASS | FAIL (reason, hint) | UNVERIFIED (reason "op X", hint); details
    hold executor, accuracy, keras_accuracy, agreement, max_abs_diff, atol (+ rtol, compared,
    samples, criteria).
    """
    package_path = Path(package_path)
    y = np.asarray(y).reshape(-1)
    keras_logits = np.asarray(keras_logits, dtype=np.float32)
    keras_pred = keras_logits.argmax(axis=1)
    keras_acc = float((keras_pred == y).mean()) if len(y) else 0.0
    fp16 = criteria.is_fp16(recipe)
    depth = coreml_depth(package_path) if fp16 else 1
    crit = criteria_for(recipe, depth)
    if executor is None:
        executor = "coreml" if sys.platform == "darwin" else "numpy-mil"
    if executor not in EXECUTORS:
        raise ValueError(f"unknown Core ML executor {executor!r}; use one of {EXECUTORS}")
    if executor == "coreml" and sys.platform != "darwin":
        raise RuntimeError(f"Core ML prediction needs macOS; this is {platform.system()}")

    if executor == "coreml":
        labels = read_metadata(package_path)["labels"] or None
        scores = coreml_probabilities(package_path, x_raw, labels)
        kind = "probabilities"
    else:
        try:
            scores, kind = mil_scores(package_path, x_raw)
        except UnsupportedOp as e:
            return _unverified(f"op {e.op_type}", executor, keras_acc, crit)

    ref = keras_logits if kind == "logits" or _looks_like_probs(keras_logits) else softmax(keras_logits)
    ref = np.asarray(ref, dtype=np.float32)
    pred = scores.argmax(axis=1)
    acc = float((pred == y).mean()) if len(y) else 0.0
    agreement = float((pred == keras_pred).mean()) if len(y) else 0.0
    within, max_abs, max_rel = compare_scores(scores, ref, crit["atol"], crit["rtol"])
    drop = keras_acc - acc
    parity: dict[str, Any] | None = None
    if fp16:  # the FP16 rule, shared with TFLite float16 (verify.criteria)
        reasons = criteria.acceptance_problems(agreement, 100 * drop, recipe)
        parity = criteria.fp16_parity(scores, ref, depth, logits=keras_logits, probabilities=kind == "probabilities")
        problem = criteria.fp16_parity_problem(parity, kind)
        if problem:
            reasons.append(problem)
    else:
        reasons = []
        if agreement < crit["min_agreement"]:
            reasons.append(f"agreement {agreement:.4f} < {crit['min_agreement']}")
        if crit["atol"] is not None and not within:
            reasons.append(f"outputs differ from Keras by up to {max_abs:.3g} (atol {crit['atol']}, rtol {crit['rtol']})")
        if crit["max_accuracy_drop"] is not None and drop > crit["max_accuracy_drop"] + 1e-12:
            reasons.append(f"accuracy drop {100 * drop:.2f} pp > {100 * crit['max_accuracy_drop']:.2f} pp")
    details = {
        "executor": executor,
        "accuracy": acc,
        "keras_accuracy": keras_acc,
        "reference_accuracy": keras_acc,  # the name every verification record uses
        "accuracy_delta_pp": 100 * (acc - keras_acc),
        "agreement": agreement,
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "atol": crit["atol"],
        "rtol": crit["rtol"],
        "compared": kind,
        "samples": int(len(y)),
        "criteria": crit,
    }
    if parity is not None:
        details["criterion"] = criteria.fp16_criterion(depth, recipe)
        details["fp16_parity"] = {k: parity[k] for k in ("depth", "rtol", "bound", "worst_diff", "worst_ratio") if k in parity}
    if reasons:
        return Verification(Status.FAIL, "; ".join(reasons), quantization_hint(recipe), details)
    return Verification(Status.PASS, details=details)


def compare_scores(
    scores: np.ndarray, ref: np.ndarray, atol: float | None, rtol: float | None
) -> tuple[bool, float, float]:
    """(all |a-b| <= atol + rtol * max|ref| of the sample, max |a-b|, max |a-b| / max|ref| per sample)."""
    a = np.asarray(scores, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"Core ML scores {a.shape} and Keras outputs {b.shape} differ in shape")
    if not a.size:
        return True, 0.0, 0.0
    diff = np.abs(a - b)
    row_scale = np.abs(b).reshape(len(b), -1).max(axis=1).reshape((-1,) + (1,) * (b.ndim - 1))
    max_rel = float((diff / np.maximum(row_scale, 1e-12)).max())
    within = True if atol is None else bool(np.all(diff <= atol + (rtol or 0.0) * row_scale))
    return within, float(diff.max()), max_rel


def _looks_like_probs(a: np.ndarray) -> bool:
    return bool(a.size) and bool(np.all(a >= 0)) and bool(np.allclose(a.sum(axis=-1), 1.0, atol=1e-3))


__all__ = ["compare_scores", "coreml_depth", "coreml_probabilities", "criteria_for", "mil_scores", "unverified_hint",
           "verify_coreml"]

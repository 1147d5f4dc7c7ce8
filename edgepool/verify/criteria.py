"""When an export passes verification: the acceptance rules, in one place, for both formats.

- float32 (TFLite float32, Core ML FP32 compute): the same function, so outputs must match Keras to
  float32 round-off (atol 1e-4 / rtol 1e-5, keras' and coremltools' own export tests).
- FP16 (TFLite `float16` weights, Core ML FP16 compute without weight compression): `fp16_*` below.
- lossy (int8 weights or activations, Core ML 8-bit / palettized weights): the function changes on
  purpose; judged only by top-1 agreement and the accuracy drop, with the recipe's thresholds.

## The FP16 rule

An FP16 export passes when all three hold on the test split:

1. top-1 agreement with Keras >= the recipe's `min_agreement`;
2. test accuracy drop <= the recipe's `max_accuracy_drop_pp`;
3. per sample i, max_j |out_ij - ref_ij| <= K_FP16 * EPS_FP16 * sqrt(L) * S_i  (`fp16_bound`).

Where the parity bound comes from. IEEE binary16 keeps 11 significant bits: EPS_FP16 = 2^-10 (the
spacing of FP16 values in [1, 2)), and rounding to nearest errs by at most u = EPS_FP16 / 2 relative
to the value. In an FP16 export every weight layer (conv, depthwise conv, dense, matmul) is a
rounding stage: Core ML FP16 rounds its weights, its input activations and its output; TFLite
float16 rounds its weights once, at export. Each stage's error is a few u relative to the size of
the activations it produces, and the layers after it carry it to the logits with the logits' scale
S: roughly u * S per stage, times how much the stage's dot products cancel. The L stages round
independently, so their errors add like a random walk, sqrt(L) * u * S, not L * u * S (the
probabilistic rounding-error analysis of Higham & Mary, SIAM J. Sci. Comput. 2019). Hence
`K_FP16 * EPS_FP16 * sqrt(L) * S_i`.

- L (`depth`) is the number of weight layers in the exported graph (`weighted_layers`): for the
  default `small` preset (3 conv blocks + a dense head) L = 4.
- S_i is the logit scale of sample i: max_j |ref_ij|, but at least the median of that over the test
  split. A sample the model is unsure of has small logits while the activations that produced them
  are as large as anyone's, and FP16 error follows the activations, not the result.
- K_FP16 = 4. Three roundings per stage in quadrature give sqrt(3) * u = 0.87 EPS_FP16; dot products
  that cancel (a flatten head sums 1,600 products per logit for a 40x40 RGB input) raise that.
  Measured, as error / (EPS_FP16 * sqrt(L) * S_i) at the worst sample: trained models -- digits and
  mnist-5k (4 presets, max / avg / L2 / strided pooling, 6 epochs) and 3-class 40x40 RGB image folders
  (`small`, 8 and 40 epochs, 3 seeds), Core ML FP16 and TFLite float16 -- at most 0.95 (absolute
  errors 0.003 to 0.030); untrained zoo models on random pixels (every preset and pooling) at most
  2.3 (small-ds with L2 pooling, whose square and sqrt round too). K = 4 leaves 1.7x headroom over
  the worst of these and 4x over trained models, while a real fault stays visible: the bound is
  0.78 % of the logit scale for L = 4 and below 1 % up to L = 6, so a bias or a layer off by 1 to 2 %
  of the logits fails. The old Core ML bound (atol 0.01 + rtol 0.001 x S) failed good models with
  logits near 20 (0.0297 measured, 0.0156 in the issue); this one allows 0.16 there.

When the outputs compared are probabilities (Core ML itself on macOS returns only those), the bound
is the logit bound / 2: softmax moves no probability by more than half the largest logit change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..types import Compression, RecipeFormat

if TYPE_CHECKING:
    from ..recipes import QuantRecipe

EPS_FP16 = 2.0**-10  # IEEE binary16 machine epsilon: 10 fraction bits
K_FP16 = 4.0  # safety factor over the rounding model (see the module docstring)

ATOL_FP32 = 1e-4
RTOL_FP32 = 1e-5

# ops that hold weights and accumulate products: one FP16 rounding stage each
WEIGHT_OPS_TFLITE = frozenset(
    {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV", "CONV_3D", "CONV_3D_TRANSPOSE"}
)
WEIGHT_OPS_COREML = frozenset(
    {"conv", "conv_transpose", "linear", "matmul", "einsum",  # ML Program (MIL)
     "convolution", "innerProduct", "batchedMatmul"}  # neuralnetwork .mlmodel
)


def is_fp16(recipe: QuantRecipe) -> bool:
    """An export whose only change to the function is FP16 rounding: TFLite float16 weights (float
    compute), or Core ML FP16 compute with uncompressed weights."""
    if recipe.format is RecipeFormat.TFLITE:
        return recipe.weights == "float16" and recipe.activations == "float32"
    return recipe.compute_precision == "float16" and Compression(recipe.weight_compression) is Compression.NONE


def weighted_layers(op_names: Iterable[str]) -> int:
    """L of the FP16 bound: how many ops of a graph are weight layers (at least 1)."""
    return max(1, sum(1 for n in op_names if n in WEIGHT_OPS_TFLITE or n in WEIGHT_OPS_COREML))


def fp16_rtol(depth: int) -> float:
    """The FP16 parity bound relative to the logit scale: K_FP16 * EPS_FP16 * sqrt(depth)."""
    return K_FP16 * EPS_FP16 * math.sqrt(max(1, int(depth)))


def logit_scale(logits: np.ndarray) -> np.ndarray:
    """S_i per sample: max_j |logit_ij|, at least the median of that over the samples."""
    a = np.abs(np.asarray(logits, dtype=np.float64)).reshape(len(logits), -1)
    if not a.size:
        return np.zeros(len(a))
    per = a.max(axis=1)
    return np.maximum(per, float(np.median(per)))


def fp16_bound(logits: np.ndarray, depth: int, *, probabilities: bool = False) -> np.ndarray:
    """Per-sample bound on max |out - ref| (logits, or probabilities when `probabilities`)."""
    b = fp16_rtol(depth) * logit_scale(logits)
    return b / 2 if probabilities else b


def fp16_parity(out: np.ndarray, ref: np.ndarray, depth: int, *, logits: np.ndarray | None = None,
                probabilities: bool = False) -> dict[str, Any]:
    """Check rule 3 of the FP16 rule. `logits`: the Keras logits the scale comes from (default `ref`).

    Returns {"within", "max_abs_diff", "bound" (at the worst sample), "worst_ratio" (diff / bound,
    <= 1 passes), "depth", "rtol", "k", "eps"}."""
    a = np.asarray(out, dtype=np.float64).reshape(len(out), -1)
    b = np.asarray(ref, dtype=np.float64).reshape(len(ref), -1)
    if a.shape != b.shape:
        raise ValueError(f"outputs {a.shape} and reference {b.shape} differ in shape")
    rec: dict[str, Any] = {"k": K_FP16, "eps": EPS_FP16, "depth": int(depth), "rtol": fp16_rtol(depth)}
    if not a.size:
        return {**rec, "within": True, "max_abs_diff": 0.0, "bound": None, "worst_ratio": 0.0}
    bound = fp16_bound(b if logits is None else logits, depth, probabilities=probabilities)
    diff = np.abs(a - b).max(axis=1)
    ratio = diff / np.maximum(bound, np.finfo(np.float64).tiny)
    worst = int(np.argmax(ratio))
    return {**rec, "within": bool(np.all(diff <= bound)), "max_abs_diff": float(diff.max()),
            "bound": float(bound[worst]), "worst_diff": float(diff[worst]), "worst_ratio": float(ratio[worst])}


def fp16_parity_problem(parity: dict[str, Any], what: str = "outputs") -> str | None:
    """The failure reason for rule 3, or None when it holds."""
    if parity["within"]:
        return None
    return (f"FP16 {what} differ from Keras by {parity['worst_diff']:.3g} on one sample, beyond the FP16 bound "
            f"{parity['bound']:.3g} ({parity['k']:g} x 2^-10 x sqrt({parity['depth']} weight layers) x its logit scale)")


def fp16_criterion(depth: int, recipe: QuantRecipe) -> str:
    """The FP16 rule as one line for the verification record."""
    return (f"agreement >= {recipe.min_agreement:.3f} and accuracy drop <= {recipe.max_accuracy_drop_pp} pp and "
            f"per sample max|out - keras| <= {K_FP16:g} x 2^-10 x sqrt({max(1, depth)}) x logit scale "
            "(max |logit| of the sample, at least the median over samples)")


def acceptance_problems(agreement: float, drop_pp: float, recipe: QuantRecipe) -> list[str]:
    """Rules 1 and 2 (every non-float32 export): agreement and accuracy drop against the recipe's thresholds."""
    problems = []
    if agreement < recipe.min_agreement:
        problems.append(f"agreement {agreement:.4f} < {recipe.min_agreement}")
    if drop_pp > recipe.max_accuracy_drop_pp + 1e-9:
        problems.append(f"accuracy drop {drop_pp:.2f} pp > {recipe.max_accuracy_drop_pp} pp")
    return problems


__all__ = [
    "ATOL_FP32", "EPS_FP16", "K_FP16", "RTOL_FP32", "acceptance_problems", "fp16_bound", "fp16_criterion",
    "fp16_parity", "fp16_parity_problem", "fp16_rtol", "is_fp16", "logit_scale", "weighted_layers",
]

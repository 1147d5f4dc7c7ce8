"""Verification verdicts from logits: tolerances, agreement/accuracy thresholds, and the hint a failure gives."""

from __future__ import annotations

import numpy as np
import pytest

from edgepool.errors import GateFailure
from edgepool.recipes import load_recipe
from edgepool.verify import compare

rng = np.random.default_rng(0)
REF = rng.normal(size=(200, 10)).astype(np.float32) * 5
Y = REF.argmax(1)


def test_float32_parity_passes_within_tolerance_and_fails_beyond():
    ok = compare(REF + 1e-6, REF, Y, load_recipe("float32"), float_exact=True)
    assert ok["status"] == "pass" and ok["agreement"] == 1.0
    bad = compare(REF + 1e-3, REF, Y, load_recipe("float32"), float_exact=True)
    assert bad["status"] == "fail" and "differ from Keras" in bad["reason"]


def _disagree(fraction: float) -> np.ndarray:
    """REF with the top class of the first `fraction` of samples moved elsewhere."""
    out = REF.copy()
    n = int(fraction * len(out))
    out[np.arange(n), (Y[:n] + 1) % 10] = out[:n].max(1) + 1
    return out


@pytest.mark.parametrize(
    "recipe,hint",
    [
        ("int8", "per_channel = true"),
        ("edgetpu-int8", "int8-qat"),
        ("int8-qat", "more than"),
        ("float16", "float32"),
    ],
)
def test_quantized_failure_says_what_to_try(recipe, hint):
    r = load_recipe(recipe)
    assert compare(_disagree(0.0), REF, Y, r, float_exact=False)["status"] == "pass"
    v = compare(_disagree(0.05), REF, Y, r, float_exact=False)  # 95 % agreement, 5 pp drop
    assert v["status"] == "fail" and "agreement 0.9500" in v["reason"] and "accuracy drop 5.00 pp" in v["reason"]
    assert hint in v["hint"]


def test_core_ml_hints():
    from edgepool.verify import quantization_hint

    assert "coreml-fp32" in quantization_hint(load_recipe("coreml-fp16"))
    assert "coreml-fp16" in quantization_hint(load_recipe("coreml-palettize"))


def test_a_failed_or_errored_row_fails_the_command():
    """Rows that failed verification exit 1; rows that could not be made exit with their error's code."""
    from edgepool.cli._render import fail_unless_passed

    fail_unless_passed([{"target": "pi4", "status": "pass"}, {"target": "coral-usb", "status": "not-compiled"},
                        {"target": "iphone-12", "status": "unverified"}])
    with pytest.raises(GateFailure, match="coral-usb") as e:
        fail_unless_passed([{"target": "coral-usb", "status": "fail", "hint": "use int8-qat"}])
    assert e.value.hint == "use int8-qat" and e.value.exit_code == 1
    with pytest.raises(GateFailure, match="host-cpu") as e:
        fail_unless_passed([{"target": "host-cpu", "status": "error", "exit_code": 2, "hint": "pass --force to overwrite it"}])
    assert e.value.exit_code == 2 and "--force" in e.value.hint


# ------------------------------------------------------------------ the FP16 rule (verify.criteria)


def _fp16_like(ref: np.ndarray, rel: float, seed: int = 1) -> np.ndarray:
    """`ref` with an error of up to `rel` x each sample's max |logit| (FP16 rounding of that size)."""
    noise = np.random.default_rng(seed).uniform(-1, 1, ref.shape)
    return (ref + rel * noise * np.abs(ref).max(1, keepdims=True)).astype(np.float32)


def test_fp16_rule_is_relative_to_the_logit_scale_and_depth():
    from edgepool.verify.criteria import EPS_FP16, K_FP16, fp16_bound, fp16_rtol, logit_scale

    assert EPS_FP16 == 2.0**-10 and fp16_rtol(4) == pytest.approx(K_FP16 * EPS_FP16 * 2)
    ref = np.array([[20.0, -3.0, 1.0], [1.0, 0.5, -0.2], [8.0, 0.0, 0.0]])
    # a sample's own max |logit|, at least the median over samples (an unsure sample's activations are not small)
    assert logit_scale(ref).tolist() == [20.0, 8.0, 8.0]
    assert fp16_bound(ref, 4).tolist() == pytest.approx([20 * fp16_rtol(4), 8 * fp16_rtol(4), 8 * fp16_rtol(4)])
    assert fp16_bound(ref, 4, probabilities=True)[0] == pytest.approx(10 * fp16_rtol(4))


def test_fp16_parity_at_the_issues_scale_passes_and_a_bias_shift_fails():
    """Logits up to ~20, errors of 0.0156 (the issue's Core ML FP16 export): within the FP16 bound. A bias
    moved by 2 % of the logit scale keeps every prediction, yet fails on parity."""
    from edgepool.verify.criteria import EPS_FP16

    r = load_recipe("float16")
    ref = REF * 1.5  # max |logit| per sample about 10 to 25
    good = _fp16_like(ref, 1.5 * EPS_FP16)  # 1.5 eps x scale: 0.0156 at a logit of ~10
    assert 0.01 < float(np.abs(good - ref).max()) < 0.04
    v = compare(good, ref, Y, r, float_exact=False, depth=4)
    assert v.status.value == "pass", v.reason
    assert v["fp16_parity"]["depth"] == 4 and v["fp16_parity"]["worst_ratio"] < 0.5
    assert "2^-10" in v["criterion"] and "sqrt(4)" in v["criterion"]
    shifted = ref.copy()
    shifted[:, 3] += 0.02 * float(np.median(np.abs(ref).max(1)))
    assert (shifted.argmax(1) == ref.argmax(1)).mean() >= r.min_agreement
    bad = compare(shifted, ref, Y, r, float_exact=False, depth=4)
    assert bad["status"] == "fail" and bad["reason"].startswith("FP16 outputs differ from Keras by")
    assert "beyond the FP16 bound" in bad["reason"] and "sqrt(4 weight layers)" in bad["reason"]
    assert "float32" in bad["hint"]
    # int8 recipes are not held to the FP16 bound: the same shift passes on agreement alone
    assert compare(shifted, ref, Y, load_recipe("int8"), float_exact=False)["status"] == "pass"


def test_core_ml_fp16_uses_the_same_rule():
    from edgepool.verify import criteria
    from edgepool.verify.coreml import criteria_for

    fp16, tfl16 = load_recipe("coreml-fp16"), load_recipe("float16")
    assert criteria.is_fp16(fp16) and criteria.is_fp16(tfl16)
    assert not criteria.is_fp16(load_recipe("coreml-palettize")) and not criteria.is_fp16(load_recipe("dynamic-int8"))
    assert not criteria.is_fp16(load_recipe("coreml-fp32")) and not criteria.is_fp16(load_recipe("float32"))
    c = criteria_for(fp16, depth=4)
    assert c["rule"] == "fp16" and c["rtol"] == criteria.fp16_rtol(4) and c["atol"] == 0.0
    assert c["min_agreement"] == fp16.min_agreement and c["max_accuracy_drop"] == pytest.approx(fp16.max_accuracy_drop_pp / 100)


def test_weight_layers_are_counted_in_both_formats():
    from edgepool.verify.criteria import weighted_layers

    assert weighted_layers(["DEQUANTIZE", "CONV_2D", "MAX_POOL_2D", "CONV_2D", "RESHAPE", "FULLY_CONNECTED"]) == 3
    assert weighted_layers(["cast", "conv", "relu", "max_pool", "conv", "reshape", "linear", "softmax"]) == 3
    assert weighted_layers(["RESHAPE"]) == 1  # at least one stage

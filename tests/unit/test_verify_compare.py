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

"""`edgepool verify EXPORT`: re-verify an export against the run it came from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import _common
from ._options import JsonOpt


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(
    export_path: Annotated[Path, typer.Argument(metavar="EXPORT", help="An export directory (or its model file)")],
    per_layer: Annotated[bool, typer.Option(
        "--per-layer", help="Where a full-int8 export loses accuracy: every layer's quantization error on the test "
        "split (TensorFlow's QuantizationDebugger), worst first, and the layers to keep in float")] = False,
    samples: Annotated[int | None, typer.Option(
        "--samples", min=1, help="With --per-layer: use the first N test samples (default: all)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-verify an export: parity with the source Keras model and accuracy on the test split."""
    from .. import pipeline
    from ..errors import GateFailure
    from ..types import Status
    from ._render import progress_bar

    if samples is not None and not per_layer:
        from ..errors import InputError

        raise InputError("--samples applies to --per-layer only", "add --per-layer, or drop --samples")
    if per_layer:
        with progress_bar(enabled=not json_out) as cb:
            report = pipeline.per_layer(export_path, samples=samples, progress=cb)
        if json_out:
            _common.print_json(report.to_dict())
        else:
            _render_per_layer(export_path, report)
        return
    with progress_bar(enabled=not json_out) as cb:
        export, v = pipeline.verify(export_path, progress=cb)
    if json_out:
        _common.print_json(v.to_dict())
    else:
        _render(export_path, v)
    if v.status == Status.FAIL:
        raise GateFailure(f"verification of {export_path} failed: {v.reason}", v.hint or "re-export, or use a less aggressive recipe")


# Figures the records hold as fractions (0.9632 -> 96.32%), and the one fraction that is a drop (-> pp).
_FRACTIONS = ("accuracy", "reference_accuracy", "keras_accuracy", "agreement", "min_agreement")
_DROPS = ("max_accuracy_drop",)
_LABELS = {"accuracy_delta_pp": "accuracy change", "reference_accuracy": "keras accuracy", "max_abs_diff": "max |Δ|",
           "mean_abs_diff": "mean |Δ|", "max_rel_diff": "max relative Δ"}


def _label(key: str) -> str:
    return _LABELS.get(key) or key.removesuffix("_pp").replace("_", " ")


def _shown(key: str, val: object) -> str:
    """One figure of a verification record as people read it: percentages, pp, '-' for none."""
    if val is None:
        return "-"
    if isinstance(val, bool):
        return "yes" if val else "no"
    if isinstance(val, dict):
        return ", ".join(f"{_label(k)} {_shown(k, x)}" for k, x in val.items())
    if isinstance(val, list | tuple):
        return ", ".join(_shown(key, x) for x in val)
    if isinstance(val, int):
        return f"{val:,}"
    if isinstance(val, float):
        if key in _FRACTIONS:
            return _common.fmt_pct(val)
        if key in _DROPS:
            return f"{100 * val:.2f} pp"
        if key.endswith("_pp"):
            return f"{val:+.2f} pp" if "delta" in key else f"{val:.2f} pp"
        return f"{val:.3g}"
    return str(val)


def _render(path: Path, v: object) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..types import Verification

    assert isinstance(v, Verification)
    t = Table(title=f"verification of {path}", show_header=False)
    t.add_row("status", v.status.value)
    if v.reason:
        t.add_row("reason", escape(v.reason))
    if v.hint:
        t.add_row("hint", escape(v.hint))
    details = dict(v.details)
    if details.get("keras_accuracy") == details.get("reference_accuracy"):
        details.pop("keras_accuracy", None)  # Core ML records hold the figure under both names
    for k, val in details.items():
        t.add_row(escape(_label(k)), escape(_shown(k, val)))
    _common.console().print(t)


def _render_per_layer(path: Path, report: object) -> None:
    from rich.markup import escape
    from rich.table import Table

    from ..verify.per_layer import PerLayerReport

    assert isinstance(report, PerLayerReport)
    t = Table(title=f"quantization error per layer of {path} ({report.samples} test samples, worst first)")
    for col in ("#", "layer", "op", "rmse/scale", "mean error", "max |error|", "vs float model"):
        t.add_column(col, justify="left" if col in ("layer", "op") else "right")
    for i, e in enumerate(report.errors, 1):
        flag = " !" if e.rmse_scale > report.threshold else ""
        acc = "-" if e.float_rmse is None else f"{100 * e.float_rmse:.1f} %"
        t.add_row(str(i), escape(e.layer), e.op, f"{e.rmse_scale:.3f}{flag}", f"{e.mean_error:+.3g}",
                  f"{e.max_abs_error:.3g}", acc)
    c = _common.console()
    c.print(t)
    for note in report.notes:
        c.print(escape(note))
    c.print(f"rmse/scale: the op's own error in units of its int8 step (rounding alone gives 0.289; "
            f"! above {report.threshold}); vs float model: the tensor's accumulated error relative to its RMS")
    if report.flagged:
        c.print(f"above rmse/scale {report.threshold}: {escape(', '.join(report.flagged))}")
    gains = ", ".join(f"{r['layer']} {r['gain_pp']:+.1f} pp" for r in report.trials[:6])
    if gains:
        c.print(f"top-1 agreement with the float model when one layer stays float: {escape(gains)}")
    if report.keep_float and report.combined:
        layers = ", ".join(f'"{n}"' for n in report.keep_float)
        comb = report.combined
        c.print(f"keep in float: {escape(', '.join(report.keep_float))} (together: agreement "
                f"{_common.fmt_pct(comb['int8_agreement'])} -> {_common.fmt_pct(comb['agreement'])})")
        c.print(escape(f"  copy the int8-float-pool recipe with float_layers = [{layers}] and export with it"))
    else:
        c.print("keep in float: none (no single layer in float raises agreement by 0.5 pp or more)")

"""`edgepool recipes`, `edgepool quantize`, `edgepool export`, `edgepool verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import _common
from ._options import ForceOpt, JsonOpt, RunArg

recipes_app = typer.Typer(help="Quantization recipes (quantization/*.toml).", no_args_is_help=True)
RecipeOpt = Annotated[str, typer.Option("--recipe", "-r", help="Recipe name (`edgepool recipes list`) or a .toml path")]


def register(app: typer.Typer) -> None:
    app.add_typer(recipes_app, name="recipes")
    app.command("quantize")(quantize)
    app.command("export")(export)
    app.command("verify")(verify)


@recipes_app.command("list")
def recipes_list(json_out: JsonOpt = False) -> None:
    """List the shipped recipes."""
    from ..quantize import list_recipes

    rs = list_recipes()
    if json_out:
        _common.print_json([r.to_dict() for r in rs])
        return
    from rich.table import Table

    t = Table(title="quantization recipes")
    for col in ("name", "format", "weights", "activations", "in/out", "QAT", "description"):
        t.add_column(col)
    for r in rs:
        if r.format == "tflite":
            t.add_row(r.name, r.format, r.weights_label, r.activations, f"{r.input_type}/{r.output_type}", str(r.qat_epochs or "-"), r.description)
        else:
            t.add_row(r.name, r.format, r.weights_label, r.compute_precision, "-", "-", r.description)
    _common.console().print(t)


@recipes_app.command("show")
def recipes_show(name: Annotated[str, typer.Argument(help="Recipe name or .toml path")], json_out: JsonOpt = False) -> None:
    """Show one recipe's settings."""
    from ..quantize import load_recipe

    r = load_recipe(name)
    if json_out:
        _common.print_json(r.to_dict())
        return
    from rich.table import Table

    t = Table(title=f"recipe {r.name}", show_header=False)
    for k, v in r.settings().items():
        t.add_row(k, str(v))
    _common.console().print(t)


def quantize(
    run: RunArg,
    recipe: RecipeOpt = "int8-qat",
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="QAT epochs (default: the recipe's)")] = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Quantization-aware fine-tune (TFMOT) of RUN's model for a QAT recipe; `export` then converts it.

    For post-training recipes there is nothing to train: use `edgepool export RUN --recipe int8`.
    """
    from ..errors import RecipeError
    from ..quantize import load_recipe
    from ..quantize_run import train_qat
    from ..runs import load_run
    from ._render import epoch_progress

    r = load_run(run)
    rec = load_recipe(recipe)
    if not rec.qat:
        raise RecipeError(f"recipe {rec.name} is post-training: there is no fine-tune step", f"run `edgepool export {run} --recipe {rec.name}`")
    from ..quantize import qat_model

    qat_model(r.load_model(), rec.name)  # a layer TFMOT cannot quantize fails here, before any progress bar
    with epoch_progress(f"QAT {rec.name}", enabled=not json_out) as cb:
        info = train_qat(r, rec, epochs=epochs, force=force, progress=cb)
    summary = {k: info[k] for k in ("recipe", "epochs", "float_test_accuracy", "qat_test_accuracy")}
    if json_out:
        _common.print_json(summary)
        return
    _common.console().print(
        f"QAT [bold]{rec.name}[/]: float {_common.fmt_pct(info['float_test_accuracy'])} -> QAT (fake-quant) "
        f"{_common.fmt_pct(info['qat_test_accuracy'])} on the test split; now `edgepool export {run} --recipe {rec.name}`"
    )


def export_rows(results: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """Rows for the export table: (label, ExportResult | str status)."""
    rows = []
    for label, res in results:
        if isinstance(res, str):
            rows.append({"target": label, "status": res})
            continue
        v = res.verification
        status = v.get("status", "unverified")
        tpu = res.sidecar.get("edgetpu")
        if tpu is not None and not tpu.get("compiled"):
            status += " (not compiled for Edge TPU)"
        rows.append(
            {
                "target": label,
                "format": res.sidecar.get("format"),
                "recipe": res.sidecar.get("recipe"),
                "path": str(res.path),
                "size_bytes": res.size_bytes,
                "accuracy": v.get("accuracy"),
                "reference_accuracy": v.get("reference_accuracy"),
                "agreement": v.get("agreement"),
                "max_abs_diff": v.get("max_abs_diff"),
                "status": status,
                "hint": v.get("hint"),
                "notes": res.notes,
            }
        )
    return rows


def print_export_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.table import Table

    t = Table(title=title)
    for col in ("target", "format", "recipe", "size", "accuracy", "keras", "agreement", "max |Δ|", "status"):
        t.add_column(col, justify="right" if col in ("size", "accuracy", "keras", "agreement", "max |Δ|") else "left")
    for r in rows:
        st = r["status"]
        color = "green" if st == "pass" else "red" if st == "fail" or st.startswith("error") else "yellow"
        mad = r.get("max_abs_diff")
        t.add_row(
            r["target"], r.get("format") or "-", r.get("recipe") or "-", _common.fmt_bytes(r.get("size_bytes")),
            _common.fmt_pct(r.get("accuracy")), _common.fmt_pct(r.get("reference_accuracy")), _common.fmt_pct(r.get("agreement")),
            "-" if mad is None else f"{mad:.2g}", f"[{color}]{st}[/]",
        )
    c = _common.console()
    c.print(t)
    for r in rows:
        for n in r.get("notes") or []:
            c.print(f"[dim]{r['target']}:[/] {n}")


def export(
    run: RunArg,
    recipe: RecipeOpt = "int8",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Export directory (default RUN/exports/<recipe>)")] = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Export RUN's model with a recipe (.tflite or Core ML), then verify it on the test split."""
    from ..export import export as export_fn
    from ..quantize import load_recipe
    from ..runs import load_run
    from ._render import epoch_progress

    r = load_run(run)
    rec = load_recipe(recipe)
    with epoch_progress(f"QAT {rec.name}", enabled=rec.qat and not json_out) as cb:
        res = export_fn(r, rec, out=out, force=force, progress=cb, strict=False)
    rows = export_rows([(rec.name, res)])
    if json_out:
        _common.print_json({**rows[0], "verification": res.verification, "sidecar": res.sidecar})
    else:
        print_export_table(rows, f"export of {r.path}")
    _fail_on(rows)


def _fail_on(rows: list[dict[str, Any]]) -> None:
    bad = [r for r in rows if r["status"].startswith("fail")]  # also "fail (not compiled for Edge TPU)"
    if bad:
        from ..errors import GateFailure

        hints = sorted({r["hint"] for r in bad if r.get("hint")})
        raise GateFailure(f"verification failed for {', '.join(r['target'] for r in bad)}", "; ".join(hints) or "see verify.json in the export directory")


def verify(
    export_path: Annotated[Path, typer.Argument(metavar="EXPORT", help="An export directory (or its model file)")],
    json_out: JsonOpt = False,
) -> None:
    """Re-verify an export: parity with the source Keras model and accuracy on the test split."""
    from ..verify import verify_export

    v = verify_export(export_path)
    if json_out:
        _common.print_json(v)
    else:
        from rich.table import Table

        t = Table(title=f"verification of {export_path}", show_header=False)
        for k, val in v.items():
            t.add_row(k, f"{val:.6g}" if isinstance(val, float) else str(val))
        _common.console().print(t)
    if v.get("status") == "fail":
        from ..errors import GateFailure

        raise GateFailure(f"verification of {export_path} failed: {v.get('reason')}", v.get("hint") or "re-export, or use a less aggressive recipe")

"""`edgepool import MODEL --data D --out RUN`: a model edgepool did not train -> a run every command works on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import _common
from ._options import ChannelsOpt, DataOpt, ForceOpt, ImageSizeOpt, JsonOpt, SkipBadOpt

ModelArg = Annotated[Path, typer.Argument(help="A .keras / .h5 Keras file, a SavedModel folder, an .onnx or a .tflite file",
                                          show_default=False)]
LabelsOpt = Annotated[Path | None, typer.Option("--labels", help="Class names, one a line, in the model's output order "
                                                "(default: the data's classes)")]
NormalizeOpt = Annotated[str, typer.Option("--normalize", help="What the model takes: 0..1 (raw/255), -1..1, imagenet "
                                           "(per-channel mean/std), or SCALE,OFFSET (raw * scale + offset)")]
CustomObjectsOpt = Annotated[list[str] | None, typer.Option("--custom-objects", help="module:attr of a custom Keras "
                                                           "layer/function (the module is imported); repeat for several")]
UnsafeOpt = Annotated[bool, typer.Option("--unsafe-load", help="Allow Python code stored in a Keras file (Lambda "
                                         "layers, functions) to run while loading: only for files you trust")]

UNSAFE_WARNING = ("unsafe load: Python code stored in the model (Lambda layers, serialized functions) runs with your "
                  "permissions while it loads; do this only for a file you trust")


def register(app: typer.Typer) -> None:
    app.command("import")(import_model)


def import_model(
    model: ModelArg,
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="The run directory to write")],
    labels: LabelsOpt = None,
    normalize: NormalizeOpt = "0..1",
    custom_objects: CustomObjectsOpt = None,
    unsafe_load: UnsafeOpt = False,
    channels: ChannelsOpt = None,
    image_size: ImageSizeOpt = None,
    skip_bad: SkipBadOpt = False,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Make a run directory from an existing model, so export, convert, verify, benchmark and evaluate work on it.

    The model is checked against the data (input size, channels, layout: a mismatch is an error, never
    a reshape) and run on the test split by its own runtime. Keras files load in safe mode; every model
    is parsed and converted in a child process.
    """
    from ._render import progress_bar

    with progress_bar(enabled=not json_out) as cb:
        result = run_import(model, data, out, labels=labels, normalize=normalize, custom_objects=custom_objects,
                            unsafe_load=unsafe_load, channels=channels, image_size=image_size, skip_bad=skip_bad,
                            force=force, progress=cb)
    if json_out:
        _common.print_json(summary(result))
        return
    render(result)


def run_import(model: Path, data: str, out: Path, *, labels: Path | None, normalize: str, custom_objects: list[str] | None,
               unsafe_load: bool, channels: int | None, image_size: str | None, skip_bad: bool, force: bool,
               progress: Any = None) -> Any:
    """Load the data and import (the library call), with the flags named in the hints."""
    from ..errors import DataError
    from ..importers import CustomObjectError, UnsafeModelError, detect, import_model, read_labels
    from ._options import load_data

    detect(model)  # a file that is not a model fails before the data is loaded
    names = read_labels(labels) if labels is not None else None
    dataset = load_data(data, channels, image_size, skip_bad)
    if unsafe_load:
        _common.err_console().print(f"warning: {UNSAFE_WARNING}", soft_wrap=True, markup=False)
    try:
        return import_model(model, dataset, out, labels=names, normalization=normalize, custom_objects=custom_objects or [],
                            unsafe_load=unsafe_load, force=force, progress=progress)
    except UnsafeModelError as e:
        raise UnsafeModelError(e.message, "pass --unsafe-load only if you trust the file and who made it") from None
    except DataError as e:
        fix = getattr(e, "fix", None) or {}
        if "image_size" in fix:
            raise DataError(e.message, f"pass --image-size {fix['image_size']} to load the data at the model's size") from None
        if "channels" in fix:
            raise DataError(e.message, f"pass --channels {fix['channels']} to load the data with the model's channels") from None
        raise
    except CustomObjectError as e:
        raise CustomObjectError(e.message, "pass --custom-objects MODULE:CLASS (the module that defines it, importable "
                                "from the current folder)") from None


def summary(result: Any) -> dict[str, Any]:
    m = result.run.manifest
    return {"run": str(result.run.path), "source": m["source"], "input": m["input"], "labels": m["data"]["labels"],
            "test_accuracy": m["metrics"]["test_accuracy"], "samples": m["source"]["parity"]["samples"],
            "model_file": m["model"]["file"], "notes": result.notes}


def render(result: Any) -> None:
    c = _common.console()
    m = result.run.manifest
    s, i = m["source"], m["input"]
    acc = _common.fmt_pct(m["metrics"]["test_accuracy"])
    c.print(f"imported {s['name']} ({s['description']}, {s['layout']} input {s['input_shape']}) into {result.run.path}",
            soft_wrap=True, markup=False)
    c.print(f"  data: {m['data']['name']}, {i['height']}x{i['width']}x{i['channels']}, {len(m['data']['labels'])} classes; "
            f"test split {s['parity']['samples']} samples, {m['data']['calibration_samples']} calibration samples",
            soft_wrap=True, markup=False)
    c.print(f"  normalization: {i['normalization']} (x = raw * {_num(i['scale'])} + {_num(i['offset'])})", soft_wrap=True, markup=False)
    c.print(f"  test accuracy {acc} with {s['reference']}", soft_wrap=True, markup=False)
    if m["model"]["file"]:
        c.print(f"  run model {m['model']['file']}: max |Δ| {s['parity']['max_abs_diff']:.2g} vs the source, top-1 agreement "
                f"{s['parity']['agreement']:.1%}" + (f" (converted with {s['converted_with']})" if s.get("converted_with") else ""),
                soft_wrap=True, markup=False)
    if s.get("qat_unavailable"):
        c.print(f"  post-training quantization only (QAT needs a tf_keras model): {s['qat_unavailable']}", soft_wrap=True, markup=False)
    for note in result.notes:
        c.print(f"  note: {note}", soft_wrap=True, markup=False)
    if s["kind"] == "tflite":
        c.print(f"next: edgepool verify {result.run.path}/exports/imported, or edgepool benchmark {result.run.path}",
                soft_wrap=True, markup=False)
    else:
        c.print(f"next: edgepool convert {result.run.path} --profile host-cpu", soft_wrap=True, markup=False)


def _num(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(f"{float(x):.4g}" for x in v) + "]"
    return f"{float(v):.6g}"

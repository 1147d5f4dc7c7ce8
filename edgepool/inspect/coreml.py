"""The one Core ML reader: open a `.mlpackage` / `.mlmodel`, list its ops and read its metadata.

Everything that needs a Core ML model's spec (inspect, the NumPy MIL executor in `verify.mil`, the
tests) loads it through `load_spec`, so a broken file raises one error everywhere: `ModelError`
"<path> is not a readable Core ML model (...)". Reads the protobuf spec with coremltools (imported
lazily, quietly); runs nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import ModelError

# user-defined metadata key: "true" when the exporter appended a softmax to a logits model
SOFTMAX_APPENDED_KEY = "edgepool.softmax_appended"

_DTYPE_BYTES = {"FLOAT16": 2, "FLOAT32": 4, "FLOAT64": 8, "INT8": 1, "UINT8": 1, "INT16": 2, "INT32": 4,
                "INT4": 0.5, "UINT4": 0.5, "UINT2": 0.25, "UINT1": 0.125}
_REEXPORT = "export it again"


def load_spec(path: Path) -> Any:
    """The protobuf spec (`Model_pb2.Model`) of a saved `.mlpackage` or `.mlmodel`.

    Raises ModelError when the path does not exist or is not a readable Core ML model.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path} does not exist", "check the path, or export the model first")
    if path.is_dir() and not (path / "Manifest.json").is_file():
        # checked here: coremltools' package reader would create a manifest in the folder it is given
        raise ModelError(_unreadable(path, "a folder without Manifest.json is not an .mlpackage"), _REEXPORT)
    from .._tf import coremltools

    ct = coremltools()
    try:
        spec = ct.utils.load_spec(str(path))
        kind = spec.WhichOneof("Type")
    except Exception as e:  # coremltools raises many kinds for a corrupt file or package
        raise ModelError(_unreadable(path, f"{type(e).__name__}: {str(e)[:120]}"), _REEXPORT) from None
    if kind is None:  # protobuf parsed something, but it holds no model
        raise ModelError(_unreadable(path, "no model in the file"), _REEXPORT)
    return spec


def weights_dir(path: Path) -> Path | None:
    """The weights folder inside a `.mlpackage` (None for a `.mlmodel` or a package without weights)."""
    path = Path(path)
    if not path.is_dir():
        return None
    from .._tf import coremltools

    coremltools()
    from coremltools.libmodelpackage import ModelPackage

    try:
        if not ModelPackage.isValid(str(path)):
            return None
        item = ModelPackage(str(path)).findItemByNameAuthor("weights", "com.apple.CoreML")
    except Exception:
        return None
    return Path(item.path()) if item is not None else None


def _unreadable(path: Path, detail: str) -> str:
    return f"{path} is not a readable Core ML model ({detail})"


def _main_block(path: Path, spec: Any) -> Any:
    fn = spec.mlProgram.functions.get("main")
    if fn is None:
        raise ModelError(_unreadable(path, "its ML Program has no main function"), _REEXPORT)
    return fn.block_specializations.get(fn.opset) or next(iter(fn.block_specializations.values()))


def _const_size(spec_mod: Any, op: Any) -> tuple[int, float]:
    elems, nbytes = 0, 0.0
    for out in op.outputs:
        tt = out.type.tensorType if out.type.HasField("tensorType") else None
        if tt is None:
            continue
        dims = [d.constant.size for d in tt.dimensions if d.HasField("constant")]
        n = math.prod(dims) if dims else 1
        elems += n
        dname = spec_mod.DataType.Name(tt.dataType)
        nbytes += n * _DTYPE_BYTES.get(dname, 4)
    return elems, nbytes


def read_coreml(path: Path) -> dict[str, Any]:
    """{"kind", "ops": [{"index", "op", "outputs"}...], "op_counts", "params", "weight_bytes", "spec_version"}."""
    path = Path(path)
    spec = load_spec(path)
    from coremltools.proto import MIL_pb2

    ops: list[dict[str, Any]] = []
    params = 0
    wbytes = 0.0
    kind = spec.WhichOneof("Type") or "unknown"
    if kind == "mlProgram":

        def walk(b: Any) -> None:
            nonlocal params, wbytes
            for op in b.operations:
                if op.type.startswith("const"):
                    e, nb = _const_size(MIL_pb2, op)
                    params += e
                    wbytes += nb
                    continue
                ops.append({"index": len(ops), "op": op.type, "outputs": [o.name for o in op.outputs]})
                for nested in op.blocks:
                    walk(nested)

        walk(_main_block(path, spec))
    else:
        nn = getattr(spec, kind, None)
        for i, layer in enumerate(getattr(nn, "layers", [])):
            ltype = layer.WhichOneof("layer")
            ops.append({"index": i, "op": ltype, "outputs": list(layer.output)})
            sub = getattr(layer, ltype)
            for fname in ("weights", "bias", "gamma", "beta", "mean", "variance"):
                w = getattr(sub, fname, None)
                if w is None or not hasattr(w, "floatValue"):
                    continue
                n16 = len(w.float16Value) // 2
                n8 = len(w.rawValue) if w.rawValue else 0
                n = len(w.floatValue) or n16 or n8
                params += n
                wbytes += len(w.floatValue) * 4 + len(w.float16Value) + n8
    return {"kind": kind, "spec_version": spec.specificationVersion, "ops": ops,
            "op_counts": dict(Counter(o["op"] for o in ops)), "params": int(params), "weight_bytes": int(wbytes)}


# ---------------------------------------------------------------- metadata and class labels


def _tensor_values(value: Any) -> list[str]:
    """Values of a MIL proto immediate value (a tensor, or a list of tensors) as strings."""
    imm = value.immediateValue
    if imm.HasField("list"):
        return [v for item in imm.list.values for v in _tensor_values(item)]
    if not imm.HasField("tensor"):
        return []
    t = imm.tensor
    for kind in ("strings", "longInts", "ints"):
        if t.HasField(kind):
            return [str(v) for v in getattr(t, kind).values]
    return []


def _program_labels(path: Path, spec: Any) -> list[str]:
    """Class labels of an ML Program classifier: the `classes` of its `classify` op."""
    block = _main_block(path, spec)
    consts = {out.name: op for op in block.operations if op.type == "const" for out in op.outputs}
    for op in block.operations:
        if op.type != "classify" or "classes" not in op.inputs:
            continue
        arg = op.inputs["classes"].arguments[0]
        if arg.HasField("value"):
            return _tensor_values(arg.value)
        const = consts.get(arg.name)
        if const is not None and "val" in const.attributes:
            return _tensor_values(const.attributes["val"])
    return []


def _labels(path: Path, spec: Any) -> list[str]:
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        return _program_labels(path, spec)
    holder = getattr(spec, kind, None) if kind else None
    if holder is None or not hasattr(holder, "WhichOneof"):
        return []
    which = holder.WhichOneof("ClassLabels") if "ClassLabels" in holder.DESCRIPTOR.oneofs_by_name else None
    if which == "stringClassLabels":
        return [str(s) for s in holder.stringClassLabels.vector]
    if which == "int64ClassLabels":
        return [str(i) for i in holder.int64ClassLabels.vector]
    return []


def read_metadata(path: Path) -> dict[str, Any]:
    """Description, version, author, user-defined metadata, inputs/outputs and class labels of a saved model."""
    path = Path(path)
    spec = load_spec(path)
    d = spec.description
    return {
        "type": spec.WhichOneof("Type"),
        "specification_version": int(spec.specificationVersion),
        "description": d.metadata.shortDescription,
        "version": d.metadata.versionString,
        "author": d.metadata.author,
        "user_defined": dict(d.metadata.userDefined),
        "inputs": [i.name for i in d.input],
        "input_types": [i.type.WhichOneof("Type") for i in d.input],
        "outputs": [o.name for o in d.output],
        "predicted_feature": d.predictedFeatureName,
        "predicted_probabilities": d.predictedProbabilitiesName,
        "labels": _labels(path, spec),
    }


__all__ = ["SOFTMAX_APPENDED_KEY", "load_spec", "read_coreml", "read_metadata", "weights_dir"]

"""List the ops (ML Program) or layers (neuralnetwork) of a Core ML model and count its parameters.

Reads the protobuf spec with coremltools (imported lazily); runs nothing.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from edgepool.errors import InputError

_DTYPE_BYTES = {"FLOAT16": 2, "FLOAT32": 4, "FLOAT64": 8, "INT8": 1, "UINT8": 1, "INT16": 2, "INT32": 4,
                "INT4": 0.5, "UINT4": 0.5, "UINT2": 0.25, "UINT1": 0.125}


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
    if not path.exists():
        raise InputError(f"model {path} does not exist", "check the path")
    from edgepool._tf import coremltools

    ct = coremltools()
    from coremltools.proto import MIL_pb2

    try:
        spec = ct.utils.load_spec(str(path))
    except Exception as e:
        raise InputError(f"{path} is not a readable Core ML model ({type(e).__name__}: {str(e)[:120]})",
                         "export it again with `edgepool export`") from None
    ops: list[dict[str, Any]] = []
    params = 0
    wbytes = 0.0
    kind = spec.WhichOneof("Type") or "unknown"
    if kind == "mlProgram":
        fn = spec.mlProgram.functions.get("main")
        if fn is None:
            raise InputError(f"{path} has no main function", "export it again")
        block = fn.block_specializations.get(fn.opset) or next(iter(fn.block_specializations.values()))

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

        walk(block)
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

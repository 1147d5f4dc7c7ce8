"""Read a .tflite flatbuffer without running it (and without TensorFlow).

Uses the flatbuffer schema bindings shipped with LiteRT (`ai_edge_litert.schema_py_generated`).
Everything in a file is untrusted: any malformed structure ends in `InputError`, never in another
exception, and vector lengths are checked against the file size before they are walked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgepool.errors import InputError

EDGEPOOL_METADATA = "edgepool"
MIN_RUNTIME_METADATA = "min_runtime_version"

_ITEMSIZE = {
    "FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1, "INT16": 2,
    "COMPLEX64": 8, "INT8": 1, "FLOAT64": 8, "COMPLEX128": 16, "UINT64": 8, "UINT32": 4,
    "UINT16": 2, "INT4": 1, "BFLOAT16": 2,
}
_ENUMS_IN_OPTIONS = {"fused_activation_function": "ActivationFunctionType", "padding": "Padding"}


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _enum_names(cls: Any) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class Quantization:
    scale: list[float]
    zero_point: list[int]
    quantized_dimension: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "zero_point": self.zero_point, "quantized_dimension": self.quantized_dimension}


@dataclass
class TensorInfo:
    index: int
    name: str
    shape: list[int]
    shape_signature: list[int] | None
    dtype: str
    buffer: int
    is_constant: bool
    is_variable: bool
    quantization: Quantization | None
    const_nbytes: int = 0  # bytes stored in the file for a constant tensor
    const_all_zero: bool = False  # a constant whose stored bytes are all zero (e.g. a converter-inserted bias)
    const_values: list[int] | None = None  # values of small INT32/INT64 constants (axes, paddings, shapes)

    @property
    def is_dynamic(self) -> bool:
        return bool(self.shape_signature) and any(d < 0 for d in self.shape_signature)

    @property
    def num_elements(self) -> int:
        return math.prod(max(d, 1) for d in self.shape) if self.shape else 1

    @property
    def nbytes(self) -> int | None:
        size = _ITEMSIZE.get(self.dtype)
        if size is None:
            return None
        if self.dtype == "INT4":
            return (self.num_elements + 1) // 2
        return self.num_elements * size

    @property
    def is_quantized(self) -> bool:
        return self.quantization is not None and bool(self.quantization.scale)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "name": self.name, "shape": self.shape, "shape_signature": self.shape_signature,
            "dtype": self.dtype, "bytes": self.nbytes, "constant": self.is_constant, "variable": self.is_variable,
            "quantization": self.quantization.to_dict() if self.quantization else None,
        }


@dataclass
class OpInfo:
    index: int
    builtin_code: int
    name: str  # builtin name ("CONV_2D") or "CUSTOM:<code>"
    version: int
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    custom_code: str | None = None

    @property
    def is_custom(self) -> bool:
        return self.custom_code is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "op": self.name, "builtin_code": self.builtin_code, "version": self.version,
            "inputs": self.inputs, "outputs": self.outputs, "options": self.options, "custom_code": self.custom_code,
        }


@dataclass
class SubgraphInfo:
    index: int
    name: str
    tensors: list[TensorInfo]
    ops: list[OpInfo]
    inputs: list[int]
    outputs: list[int]

    def tensor(self, i: int) -> TensorInfo | None:
        return self.tensors[i] if 0 <= i < len(self.tensors) else None


@dataclass
class TfliteModel:
    """What is in a .tflite file, read statically."""

    source: str
    size_bytes: int
    schema_version: int
    description: str
    subgraphs: list[SubgraphInfo]
    metadata_names: list[str]
    edgepool_metadata: dict[str, Any] | None
    min_runtime_version: str | None  # from the file's own `min_runtime_version` metadata
    warnings: list[str] = field(default_factory=list)

    @property
    def main(self) -> SubgraphInfo:
        return self.subgraphs[0]

    @property
    def constant_bytes(self) -> int:
        return sum(t.const_nbytes for g in self.subgraphs for t in g.tensors if t.is_constant)


def _check_len(n: int, limit: int, what: str) -> int:
    if n < 0 or n > limit:
        raise InputError(f"corrupt {what} length {n}")
    return n


def _camel_to_snake(name: str) -> str:
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i:
            out.append("_")
        out.append(c.lower())
    return "".join(out)


def _read_options(s: Any, op: Any, options_type_names: dict[int, str], enum_maps: dict[str, dict[int, str]]) -> dict[str, Any]:
    otype = op.BuiltinOptionsType()
    if otype == 0:
        return {}
    cls_name = options_type_names.get(otype)
    cls = getattr(s, cls_name, None) if cls_name else None
    table = op.BuiltinOptions()
    if cls is None or table is None:
        return {}
    obj = cls()
    obj.Init(table.Bytes, table.Pos)
    out: dict[str, Any] = {}
    names = [n for n in dir(cls) if not n.startswith("_") and n[0].isupper()]
    for n in names:
        if n in ("Init", "GetRootAs") or n.startswith("GetRootAs") or n.endswith(("BufferHasIdentifier", "Length", "IsNone")):
            continue
        if n + "AsNumpy" in names:
            continue  # read the vector through its AsNumpy accessor below
        key = _camel_to_snake(n[: -len("AsNumpy")] if n.endswith("AsNumpy") else n)
        try:
            val = getattr(obj, n)()
        except TypeError:
            continue
        if n.endswith("AsNumpy"):
            val = [] if isinstance(val, int) else [v.item() for v in val]
        elif isinstance(val, bytes):
            val = val.decode("utf-8", "replace")
        elif not isinstance(val, (int, float, bool)):
            continue
        if key in _ENUMS_IN_OPTIONS and isinstance(val, int):
            val = enum_maps[_ENUMS_IN_OPTIONS[key]].get(val, f"UNKNOWN({val})")
        out[key] = val
    return out


def _np_list(accessor: Any, length: int, limit: int, what: str) -> list[Any]:
    _check_len(length, limit, what)
    if length == 0:
        return []
    arr = accessor()
    if isinstance(arr, int):
        return []
    return [v.item() for v in arr]


def parse_tflite(data: bytes, source: str = "<bytes>") -> TfliteModel:
    """Parse flatbuffer bytes; raise InputError for anything that is not a valid TFLite model."""
    if len(data) < 8:
        raise InputError(f"{source} is not a TFLite model: only {len(data)} bytes", "export the model again")
    s = _schema()
    if not s.Model.ModelBufferHasIdentifier(data, 0):
        raise InputError(
            f"{source} is not a TFLite flatbuffer (file identifier {data[4:8]!r}, expected b'TFL3')",
            "pass a .tflite file produced by the TFLite converter / `edgepool export`",
        )
    try:
        return _parse(s, data, source)
    except InputError as e:
        raise InputError(f"{source} is a corrupt TFLite model: {e.message}", "export the model again") from None
    except RecursionError:
        raise InputError(f"{source} is a corrupt TFLite model (cyclic structure)", "export the model again") from None
    except Exception as e:  # struct.error, IndexError, ValueError, UnicodeDecodeError ... on corrupt offsets
        raise InputError(
            f"{source} is a truncated or corrupt TFLite model ({type(e).__name__}: {str(e)[:80]})",
            "export the model again",
        ) from None


def _parse(s: Any, data: bytes, source: str) -> TfliteModel:
    n = len(data)
    limit = n // 4
    m = s.Model.GetRootAs(data, 0)
    op_names = _enum_names(s.BuiltinOperator)
    dtype_names = _enum_names(s.TensorType)
    options_type_names = _enum_names(s.BuiltinOptions)
    enum_maps = {k: _enum_names(getattr(s, k)) for k in set(_ENUMS_IN_OPTIONS.values())}
    warnings: list[str] = []

    nbuf = _check_len(m.BuffersLength(), limit, "buffers")
    buffers: list[tuple[int, int, int, bool]] = []  # (data length, offset, size, all zero)
    for i in range(nbuf):
        b = m.Buffers(i)
        if b is None:
            buffers.append((0, 0, 0, False))
            continue
        dl = _check_len(b.DataLength(), n, f"buffer {i}")
        zero = False
        if dl:
            arr = b.DataAsNumpy()
            zero = not isinstance(arr, int) and not arr.any()
        buffers.append((dl, b.Offset(), b.Size(), zero))

    def buffer_bytes(i: int) -> bytes:
        b = m.Buffers(i)
        if b is None or b.DataLength() == 0:
            return b""
        arr = b.DataAsNumpy()
        return b"" if isinstance(arr, int) else arr.tobytes()

    def small_int_values(bidx: int, dtype: str) -> list[int] | None:
        if dtype not in ("INT32", "INT64") or not 0 <= bidx < nbuf or not 0 < buffers[bidx][0] <= 8 * 64:
            return None
        import numpy as np

        raw = buffer_bytes(bidx)
        width = 4 if dtype == "INT32" else 8
        raw = raw[: len(raw) // width * width]
        return [int(v) for v in np.frombuffer(raw, dtype="<i4" if width == 4 else "<i8")]

    codes: list[tuple[int, int, str | None]] = []
    for i in range(_check_len(m.OperatorCodesLength(), limit, "operator codes")):
        oc = m.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        custom = oc.CustomCode()
        custom_s = custom.decode("utf-8", "replace") if custom else None
        codes.append((code, oc.Version(), custom_s))

    subgraphs: list[SubgraphInfo] = []
    nsub = _check_len(m.SubgraphsLength(), limit, "subgraphs")
    if nsub == 0:
        raise InputError("no subgraphs")
    for gi in range(nsub):
        g = m.Subgraphs(gi)
        tensors: list[TensorInfo] = []
        for ti in range(_check_len(g.TensorsLength(), limit, "tensors")):
            t = g.Tensors(ti)
            shape = _np_list(t.ShapeAsNumpy, t.ShapeLength(), limit, "shape")
            sig = _np_list(t.ShapeSignatureAsNumpy, t.ShapeSignatureLength(), limit, "shape signature") or None
            tcode = t.Type()
            dtype = dtype_names.get(tcode, f"UNKNOWN({tcode})")
            bidx = t.Buffer()
            dl, off, size, zero = buffers[bidx] if 0 <= bidx < len(buffers) else (0, 0, 0, False)
            const_nbytes = dl if dl else (size if off > 1 else 0)
            q = t.Quantization()
            quant = None
            if q is not None:
                scale = _np_list(q.ScaleAsNumpy, q.ScaleLength(), limit, "quantization scale")
                zp = _np_list(q.ZeroPointAsNumpy, q.ZeroPointLength(), limit, "quantization zero point")
                if scale:
                    quant = Quantization([float(x) for x in scale], [int(x) for x in zp], q.QuantizedDimension())
            name = t.Name()
            tensors.append(
                TensorInfo(
                    index=ti, name=name.decode("utf-8", "replace") if name else "", shape=[int(d) for d in shape],
                    shape_signature=[int(d) for d in sig] if sig else None, dtype=dtype, buffer=bidx,
                    is_constant=const_nbytes > 0, is_variable=bool(t.IsVariable()), quantization=quant,
                    const_nbytes=const_nbytes, const_all_zero=zero,
                    const_values=small_int_values(bidx, dtype) if const_nbytes and quant is None else None,
                )
            )
        nt = len(tensors)
        ops: list[OpInfo] = []
        for oi in range(_check_len(g.OperatorsLength(), limit, "operators")):
            op = g.Operators(oi)
            ci = op.OpcodeIndex()
            if not 0 <= ci < len(codes):
                raise InputError(f"operator {oi} refers to operator code {ci} of {len(codes)}")
            code, version, custom = codes[ci]
            ins = [int(x) for x in _np_list(op.InputsAsNumpy, op.InputsLength(), limit, "op inputs")]
            outs = [int(x) for x in _np_list(op.OutputsAsNumpy, op.OutputsLength(), limit, "op outputs")]
            for x in ins + outs:
                if x < -1 or x >= nt:
                    raise InputError(f"operator {oi} refers to tensor {x} of {nt}")
            if custom is not None and code == s.BuiltinOperator.CUSTOM:
                name = f"CUSTOM:{custom}"
            else:
                name = op_names.get(code, f"UNKNOWN_OP({code})")
                custom = None
            ops.append(
                OpInfo(index=oi, builtin_code=code, name=name, version=version, inputs=ins, outputs=outs,
                       options=_read_options(s, op, options_type_names, enum_maps), custom_code=custom)
            )
        g_in = [int(x) for x in _np_list(g.InputsAsNumpy, g.InputsLength(), limit, "subgraph inputs")]
        g_out = [int(x) for x in _np_list(g.OutputsAsNumpy, g.OutputsLength(), limit, "subgraph outputs")]
        for x in g_in + g_out:
            if not 0 <= x < nt:
                raise InputError(f"subgraph {gi} input/output refers to tensor {x} of {nt}")
        gname = g.Name()
        subgraphs.append(SubgraphInfo(gi, gname.decode("utf-8", "replace") if gname else "", tensors, ops, g_in, g_out))

    metadata_names: list[str] = []
    edgepool_md = None
    min_rt = None
    for i in range(_check_len(m.MetadataLength(), limit, "metadata")):
        md = m.Metadata(i)
        raw_name = md.Name()
        mname = raw_name.decode("utf-8", "replace") if raw_name else ""
        metadata_names.append(mname)
        bidx = md.Buffer()
        if not 0 <= bidx < nbuf:
            warnings.append(f"metadata {mname!r} points at missing buffer {bidx}")
            continue
        if mname == EDGEPOOL_METADATA:
            try:
                edgepool_md = json.loads(buffer_bytes(bidx).decode("utf-8"))
                if not isinstance(edgepool_md, dict):
                    raise ValueError("not a JSON object")
            except ValueError as e:
                edgepool_md = None
                warnings.append(f"embedded edgepool metadata is not valid JSON ({str(e)[:60]})")
        elif mname == MIN_RUNTIME_METADATA:
            txt = buffer_bytes(bidx).split(b"\x00", 1)[0].decode("ascii", "replace").strip()
            min_rt = txt or None
    desc = m.Description()
    return TfliteModel(
        source=source, size_bytes=n, schema_version=m.Version(),
        description=desc.decode("utf-8", "replace") if desc else "", subgraphs=subgraphs,
        metadata_names=metadata_names, edgepool_metadata=edgepool_md, min_runtime_version=min_rt, warnings=warnings,
    )


def read_tflite(model: str | Path | bytes) -> TfliteModel:
    """Read a .tflite model from a path or from bytes."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return parse_tflite(bytes(model))
    path = Path(model)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"model {path} does not exist", "check the path") from None
    except IsADirectoryError:
        raise InputError(f"model {path} is a directory, not a .tflite file", "pass the model file") from None
    except OSError as e:
        raise InputError(f"cannot read model {path}: {e.strerror}", "check the path and permissions") from None
    return parse_tflite(data, str(path))

"""Running an ML Program in NumPy: the op registry, value resolution and storage, and `run`.

`run` feeds the inputs, then executes the main function's ops in order, looking each op type up in
`OPS` (filled by `ops.py`); every result is stored in the dtype the program declares for it, so an
FP16 program rounds each intermediate tensor to float16 as Core ML's FP16 storage does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .program import MilProgram


class UnsupportedOp(Exception):
    """The program uses an op (or an op variant) the NumPy executor does not implement."""

    def __init__(self, op_type: str, detail: str = "") -> None:
        super().__init__(f"op {op_type}" + (f" ({detail})" if detail else ""))
        self.op_type = op_type
        self.detail = detail


@dataclass
class Ctx:
    """What an op may need beyond its inputs: the runtime batch (ops are written for batch 1)."""

    batch: int


OpFn = Callable[[Ctx, dict[str, Any]], Any]
OPS: dict[str, OpFn] = {}
"""The registry: MIL op type -> implementation (`ops.py` registers each with `register`)."""


def register(*names: str) -> Callable[[OpFn], OpFn]:
    """Decorator: implement the MIL op types `names` with the decorated function."""

    def deco(fn: OpFn) -> OpFn:
        for n in names:
            OPS[n] = fn
        return fn

    return deco


# --------------------------------------------------------------------------------------------------
# values


NP_DTYPES = {
    "fp16": np.float16,
    "fp32": np.float32,
    "fp64": np.float64,
    "int32": np.int32,
    "int64": np.int64,
    "int16": np.int16,
    "int8": np.int8,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "bool": np.bool_,
}


def const_value(var: Any) -> Any:
    """The value a PyMIL var holds at build time (None if it is computed)."""
    val = var.val
    if val is None:
        return None
    if hasattr(val, "ls"):  # mil_list (classify classes)
        return list(val.ls)
    return val


def resolve(v: Any, env: dict[str, Any]) -> Any:
    """The value of an op input: computed (in `env`) or constant."""
    if isinstance(v, list | tuple):
        return [resolve(x, env) for x in v]
    if v.name in env:
        return env[v.name]
    val = const_value(v)
    if val is None:
        raise KeyError(f"value of {v.name} is not known")
    if isinstance(val, np.ndarray | np.generic) and np.issubdtype(np.asarray(val).dtype, np.floating):
        return np.asarray(val)
    return val


def store(val: np.ndarray, dtype: str) -> np.ndarray:
    """`val` in the MIL dtype `dtype` ("fp16", "int32", ...); unknown dtypes are kept as they are."""
    npd = NP_DTYPES.get(dtype)
    return val.astype(npd) if npd is not None else val


def store_var(val: Any, var: Any) -> Any:
    """An op result stored in the dtype its output var declares."""
    from coremltools.converters.mil.mil import types

    if isinstance(val, np.ndarray | np.generic) and val.dtype.kind in "fiub":
        return store(np.asarray(val), types.builtin_to_string(var.dtype))
    return val


def f32(x: Any) -> np.ndarray:
    """A float32 working copy."""
    return np.asarray(x, dtype=np.float32)


def ints(x: Any) -> list[int]:
    return [int(v) for v in np.asarray(x).reshape(-1)]


# --------------------------------------------------------------------------------------------------
# running


def missing_ops(function: Any) -> list[str]:
    """Op types in a PyMIL function that `OPS` does not implement, in order of first use."""
    missing: list[str] = []
    for op in function.operations:
        if op.op_type not in OPS and op.op_type not in missing:
            missing.append(op.op_type)
    return missing


def run(
    program: MilProgram,
    feeds: Mapping[str, np.ndarray],
    *,
    keep: bool = False,
) -> dict[str, Any]:
    """Execute the program on `feeds` (input name -> array in the program's layout).

    The leading (batch) dimension may be larger than the program's declared batch of 1: ops are
    batch-agnostic and `reshape` keeps the batch. Returns the outputs by name (classify gives an array
    of label strings and an (N, classes) probability array); with `keep`, every intermediate value by
    var name as well. Raises UnsupportedOp, before anything runs, if an op is not implemented.
    """
    missing = missing_ops(program.function)
    if missing:
        raise UnsupportedOp(missing[0])
    env: dict[str, Any] = {}
    for inp in program.inputs:
        if inp.name not in feeds:
            raise ValueError(f"missing input {inp.name!r}")
        env[inp.name] = store(np.asarray(feeds[inp.name], dtype=np.float32), inp.dtype)
    batch = next(iter(env.values())).shape[0] if env else 1
    ctx = Ctx(batch=batch)
    for op in program.function.operations:
        if op.op_type == "const":
            continue
        args = {k: resolve(v, env) for k, v in op.inputs.items()}
        outs = OPS[op.op_type](ctx, args)
        if not isinstance(outs, tuple):
            outs = (outs,)
        if len(outs) != len(op.outputs):
            raise UnsupportedOp(op.op_type, f"{len(op.outputs)} outputs")
        for var, val in zip(op.outputs, outs, strict=True):
            env[var.name] = store_var(val, var)
    result = {name: env[name] for name in program.output_names}
    if keep:
        result = {**env, **result}
    return result


__all__ = [
    "NP_DTYPES",
    "OPS",
    "Ctx",
    "OpFn",
    "UnsupportedOp",
    "const_value",
    "f32",
    "ints",
    "missing_ops",
    "register",
    "resolve",
    "run",
    "store",
    "store_var",
]

"""Multiply-accumulates and parameters per op of a TFLite graph, read from shapes alone.

MACs count the multiply-accumulates of the weight-bearing ops (convolutions, fully connected,
batch matmul); pooling and element-wise ops count 0 MACs (they are memory-bound, and Keras-level
MAC counts leave them out too). Parameters are the elements of the constant weight and bias tensors
of those ops plus constant operands of element-wise arithmetic (an unfolded BatchNorm). A bias
tensor that is all zeros is not counted: the converter inserts one for ops that had no bias, and a
Keras Dense layer's zero bias is dropped by the converter, so counting them would be arbitrary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .tflite import OpInfo, SubgraphInfo, TfliteModel

WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL"}
ARITH_OPS = {"ADD", "MUL", "SUB", "DIV", "PRELU", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM"}


@dataclass
class OpCost:
    index: int
    macs: int
    params: int
    weight_bytes: int  # bytes of the constant tensors counted in params
    param_tensors: list[int]


def _prod(shape: list[int]) -> int:
    return math.prod(max(d, 1) for d in shape) if shape else 1


def _shape(g: SubgraphInfo, i: int) -> list[int] | None:
    t = g.tensor(i)
    return t.shape if t is not None else None


def op_macs(g: SubgraphInfo, op: OpInfo) -> int:
    """MACs of one op from its tensor shapes (0 for ops without weights or with unknown shapes)."""
    ins = [_shape(g, i) if i >= 0 else None for i in op.inputs]
    outs = [_shape(g, i) for i in op.outputs]
    out = outs[0] if outs else None
    try:
        if op.name == "CONV_2D" and out and len(ins) > 1 and ins[1] and len(ins[1]) == 4:
            oc, kh, kw, ic = ins[1]
            return _prod(out) * kh * kw * ic
        if op.name == "DEPTHWISE_CONV_2D" and out and len(ins) > 1 and ins[1] and len(ins[1]) == 4:
            _, kh, kw, _ = ins[1]
            return _prod(out) * kh * kw
        if op.name == "FULLY_CONNECTED" and out and len(ins) > 1 and ins[1] and len(ins[1]) == 2:
            return _prod(out) * ins[1][1]
        if op.name == "TRANSPOSE_CONV" and len(ins) > 2 and ins[1] and ins[2] and len(ins[1]) == 4:
            oc, kh, kw, ic = ins[1]
            return _prod(ins[2]) * kh * kw * oc
        if op.name == "CONV_3D" and out and len(ins) > 1 and ins[1] and len(ins[1]) == 5:
            kd, kh, kw, ic, _oc = ins[1]
            return _prod(out) * kd * kh * kw * ic
        if op.name == "BATCH_MATMUL" and out and len(ins) > 1 and ins[0]:
            adj_x = bool(op.options.get("adj_x"))
            k = ins[0][-2] if adj_x else ins[0][-1]
            return _prod(out) * max(k, 1)
    except (TypeError, ValueError):
        return 0
    return 0


def op_cost(g: SubgraphInfo, op: OpInfo) -> OpCost:
    params = 0
    wbytes = 0
    tensors: list[int] = []
    if op.name in WEIGHT_OPS or op.name in ARITH_OPS:
        for pos, ti in enumerate(op.inputs):
            t = g.tensor(ti) if ti >= 0 else None
            if t is None or not t.is_constant:
                continue
            if op.name in WEIGHT_OPS and pos == 0:
                continue  # a constant data input is not a parameter
            if t.dtype in ("INT32", "INT64") and not t.is_quantized:
                continue  # shapes / axes
            if t.const_all_zero and op.name in WEIGHT_OPS and pos == 2:
                continue  # converter-inserted zero bias
            params += t.num_elements
            wbytes += t.const_nbytes
            tensors.append(ti)
    return OpCost(op.index, op_macs(g, op), params, wbytes, tensors)


def graph_costs(model: TfliteModel) -> list[OpCost]:
    """Per-op costs of the main subgraph."""
    g = model.main
    return [op_cost(g, op) for op in g.ops]


def total_params(costs: list[OpCost], g: SubgraphInfo) -> int:
    """Parameters counted once per constant tensor (shared weights are not double counted)."""
    seen: set[int] = set()
    total = 0
    for c in costs:
        for ti in c.param_tensors:
            if ti not in seen:
                seen.add(ti)
                total += g.tensors[ti].num_elements
    return total

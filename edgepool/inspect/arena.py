"""Plan the activation (tensor) arena of a TFLite graph from tensor lifetimes.

Follows TFLite's ArenaPlanner: graph inputs are allocated before the first op, graph outputs and
variables are kept to the end, every other non-constant tensor lives from the op that writes it
to the last op that reads it. Offsets are assigned greedily by size, largest first, each at the
lowest 64-byte-aligned offset that does not overlap a tensor alive at the same time (like
TFLite's SimpleMemoryArena / TFLM's GreedyMemoryPlanner). Kernel scratch is modelled for one
case, the im2col temporary of CONV_2D (kernel larger than 1x1 or stride > 1: out_h x out_w x
kh x kw x in_c elements), alive during its op only; other kernel scratch is not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tflite import SubgraphInfo

ALIGNMENT = 64


@dataclass
class TensorLife:
    tensor: int  # tensor index; -1 - op index for an op's im2col temporary
    size: int  # aligned bytes
    first: int  # op index of allocation (0 for graph inputs)
    last: int  # op index of the last use
    offset: int = 0


@dataclass
class ArenaPlan:
    arena_bytes: int  # planned arena size (greedy offsets, with alignment and fragmentation)
    peak_live_bytes: int  # largest sum of tensor bytes alive at one op
    peak_op: int | None  # op index where peak_live_bytes is reached
    live_bytes_per_op: list[int]
    tensors: list[TensorLife]

    def to_dict(self) -> dict[str, object]:
        return {
            "arena_bytes": self.arena_bytes, "peak_live_bytes": self.peak_live_bytes, "peak_op": self.peak_op,
            "live_bytes_per_op": self.live_bytes_per_op,
        }


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def tensor_lifetimes(g: SubgraphInfo) -> list[TensorLife]:
    nops = len(g.ops)
    last_op = max(nops - 1, 0)
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def arena_tensor(i: int) -> bool:
        t = g.tensor(i)
        return t is not None and not t.is_constant and (t.nbytes or 0) > 0

    for i in g.inputs:
        if arena_tensor(i):
            first[i] = 0
            last[i] = last_op
    for op in g.ops:
        for i in op.outputs:
            if arena_tensor(i):
                first.setdefault(i, op.index)
                last[i] = max(last.get(i, op.index), op.index)
        for i in op.inputs:
            if i >= 0 and arena_tensor(i):
                first.setdefault(i, op.index)  # read before written: allocate at first use
                last[i] = max(last.get(i, op.index), op.index)
    for i in g.outputs:
        if i in first:
            last[i] = last_op
    for t in g.tensors:
        if t.is_variable and t.index in first:
            first[t.index] = 0
            last[t.index] = last_op
    lives = [TensorLife(i, _align(g.tensors[i].nbytes or 0), first[i], last[i]) for i in sorted(first)]
    for op in g.ops:
        size = im2col_bytes(g, op)
        if size:
            lives.append(TensorLife(-1 - op.index, _align(size), op.index, op.index))
    return lives


def im2col_bytes(g: SubgraphInfo, op: object) -> int:
    """Bytes of CONV_2D's im2col temporary (0 when the kernel needs none)."""
    if getattr(op, "name", "") != "CONV_2D" or len(op.inputs) < 2 or not op.outputs:  # type: ignore[attr-defined]
        return 0
    inp, w, out = g.tensor(op.inputs[0]), g.tensor(op.inputs[1]), g.tensor(op.outputs[0])  # type: ignore[attr-defined]
    if inp is None or w is None or out is None or len(w.shape) != 4 or len(out.shape) != 4:
        return 0
    _, kh, kw, cin = w.shape
    opts = op.options  # type: ignore[attr-defined]
    strided = opts.get("stride_h", 1) != 1 or opts.get("stride_w", 1) != 1
    dilated = opts.get("dilation_h_factor", 1) != 1 or opts.get("dilation_w_factor", 1) != 1
    if kh == 1 and kw == 1 and not strided and not dilated:
        return 0
    item = (inp.nbytes or 0) // max(inp.num_elements, 1)
    n, oh, ow, _ = out.shape
    return max(n, 1) * oh * ow * kh * kw * cin * item


def plan_arena(g: SubgraphInfo) -> ArenaPlan:
    """Greedy-by-size arena plan for one subgraph."""
    lives = tensor_lifetimes(g)
    order = sorted(lives, key=lambda t: (-t.size, t.first, t.tensor))
    placed: list[TensorLife] = []
    arena = 0
    for t in order:
        overlapping = sorted(
            (p for p in placed if p.first <= t.last and t.first <= p.last), key=lambda p: p.offset
        )
        offset = 0
        for p in overlapping:
            if offset + t.size <= p.offset:
                break
            offset = max(offset, p.offset + p.size)
        t.offset = offset
        placed.append(t)
        arena = max(arena, offset + t.size)
    nops = max(len(g.ops), 1)
    live = [0] * nops
    for t in lives:
        for k in range(t.first, min(t.last, nops - 1) + 1):
            live[k] += t.size
    peak = max(live) if lives else 0
    peak_op = live.index(peak) if lives and g.ops else None
    return ArenaPlan(arena, peak, peak_op, live, sorted(lives, key=lambda t: t.tensor))

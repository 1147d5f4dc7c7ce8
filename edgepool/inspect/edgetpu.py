"""Edge TPU compatibility of a .tflite graph, op by op, predicted without the compiler.

Rules from Coral's "TensorFlow models on the Edge TPU" (coral.ai/docs/edgetpu/models-intro):
tensors fully 8-bit quantized; tensor sizes constant at compile time; at most the 3 innermost
dimensions of a tensor larger than 1; parameters (weights, biases) constant; only the ops of the
supported-operations table, with their limitations (no fused activation on MaxPool2d /
AveragePool2d / Concatenation, Mean and Pad only over x/y, Softmax 1-D up to 16,000 elements, ...).

Partitioning: the compiler maps one partition from the start of the graph. The first op that
cannot run on the Edge TPU and every op after it run on the CPU. Float<->int8 QUANTIZE/DEQUANTIZE at
the graph boundary run on the CPU without ending the partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .tflite import OpInfo, SubgraphInfo, TfliteModel, read_tflite

EIGHT_BIT = {"INT8", "UINT8"}
SOURCE = "coral.ai/docs/edgetpu/models-intro (supported operations)"

# Builtin ops in Coral's supported-operations table (some with limitations checked below).
SUPPORTED_OPS = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "UNIDIRECTIONAL_SEQUENCE_LSTM", "MAXIMUM",
    "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX",
    "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
}
NO_FUSED_ACTIVATION = {"MAX_POOL_2D", "AVERAGE_POOL_2D", "CONCATENATION"}
POOL_ALTERNATIVES = "use pooling `max`, `avg` or `strided` (a stride-2 convolution)"

# What to do instead, for ops the Edge TPU does not run.
SUGGESTIONS = {
    "L2_POOL_2D": f"L2 pooling runs on the CPU; {POOL_ALTERNATIVES}",
    "SQUARE": f"SQUARE is what L2/power pooling lowers to (SQUARE -> AVERAGE_POOL_2D -> SQRT); {POOL_ALTERNATIVES}",
    "SQRT": f"SQRT is what L2 pooling lowers to (SQUARE -> AVERAGE_POOL_2D -> SQRT); {POOL_ALTERNATIVES}",
    "POW": f"power pooling lowers to POW; {POOL_ALTERNATIVES}",
    "DEQUANTIZE": "a float output or float op inside the graph: export with int8/uint8 input and output types",
    "EXP": "softmax-weighted / LSE pooling needs EXP; use pooling `max` or `avg`",
    "LOG": "LSE pooling needs LOG; use pooling `max` or `avg`",
    "DIV": "replace the division by a multiplication with a constant, or use pooling `avg`",
}


@dataclass
class EdgeTpuOp:
    index: int
    name: str
    version: int
    on_tpu: bool
    reason: str  # why it runs on the CPU ("" when mapped)
    suggestion: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.name, "version": self.version, "on_tpu": self.on_tpu,
                "reason": self.reason, "suggestion": self.suggestion}


@dataclass
class EdgeTpuAnalysis:
    ops: list[EdgeTpuOp]
    first_cpu_op: int | None  # index of the op that ends the Edge TPU partition
    notes: list[str] = field(default_factory=list)

    @property
    def mapped_ops(self) -> int:
        return sum(o.on_tpu for o in self.ops)

    @property
    def cpu_ops(self) -> int:
        return len(self.ops) - self.mapped_ops

    @property
    def fully_mapped(self) -> bool:
        return self.cpu_ops == 0 and bool(self.ops)

    @property
    def split(self) -> str:
        """The predicted partition in words."""
        if self.fully_mapped:
            return f"all {len(self.ops)} ops on the Edge TPU"
        if self.mapped_ops == 0:
            return f"all {len(self.ops)} ops on the CPU"
        if self.first_cpu_op is None:
            return f"{self.mapped_ops} ops on the Edge TPU, {self.cpu_ops} boundary conversion ops on the CPU"
        return (f"ops 0-{self.first_cpu_op - 1} on the Edge TPU ({self.mapped_ops} mapped), "
                f"op {self.first_cpu_op} onwards on the CPU ({self.cpu_ops})")

    def op_counts(self) -> dict[str, dict[str, int]]:
        """{op name: {"tpu": n, "cpu": m}}: comparable with the compiler's per-operator table."""
        out: dict[str, dict[str, int]] = {}
        for o in self.ops:
            c = out.setdefault(o.name, {"tpu": 0, "cpu": 0})
            c["tpu" if o.on_tpu else "cpu"] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"mapped_ops": self.mapped_ops, "cpu_ops": self.cpu_ops, "fully_mapped": self.fully_mapped,
                "first_cpu_op": self.first_cpu_op, "split": self.split, "ops": [o.to_dict() for o in self.ops],
                "notes": self.notes, "source": SOURCE}


def _axes(g: SubgraphInfo, op: OpInfo, pos: int, rank: int) -> list[int] | None:
    if len(op.inputs) <= pos:
        return None
    t = g.tensor(op.inputs[pos])
    if t is None or t.const_values is None:
        return None
    return sorted({a % rank if rank else a for a in t.const_values})


def _op_problem(g: SubgraphInfo, op: OpInfo) -> tuple[str, str] | None:
    """(reason, suggestion) if this op alone cannot run on the Edge TPU, else None."""
    if op.is_custom:
        return f"custom op {op.custom_code!r} is not an Edge TPU op", "remove the custom op from the model"
    if op.name == "DEQUANTIZE" and op.outputs:
        users = [o.name for o in g.ops if op.outputs[0] in o.inputs]
        float_user = next((u for u in users if u in SUGGESTIONS and u != "DEQUANTIZE"), None)
        if float_user:
            return (f"DEQUANTIZE: the graph goes back to float for {float_user} (no int8 kernel); the Edge TPU "
                    "runs no float ops", SUGGESTIONS[float_user])
    if op.name not in SUPPORTED_OPS:
        return (f"{op.name} is not in the Edge TPU's supported operations",
                SUGGESTIONS.get(op.name, "replace it with an op from Coral's supported-operations table"))
    # fully 8-bit: activations and weights int8/uint8; int32 only for biases and shape/axis constants
    for ti in op.inputs + op.outputs:
        t = g.tensor(ti) if ti >= 0 else None
        if t is None:
            continue
        if t.dtype in EIGHT_BIT:
            continue
        if t.is_constant and t.dtype in ("INT32", "INT64"):
            continue  # bias (quantized int32) or shape/axes/paddings
        if op.name == "QUANTIZE":
            continue  # handled as a boundary op by the caller
        return (f"tensor {t.name!r} is {t.dtype}: the Edge TPU runs only fully 8-bit quantized ops",
                "quantize fully (int8 full-integer recipe, e.g. edgetpu-int8); a float op means the converter "
                "fell back to float for it")
    # static shapes and at most 3 innermost dims > 1
    for ti in op.inputs + op.outputs:
        t = g.tensor(ti) if ti >= 0 else None
        if t is None or t.is_constant:
            continue
        if t.shape_signature and any(d < 0 for d in t.shape_signature[1:]):
            return (f"tensor {t.name!r} has a dynamic shape {t.shape_signature}",
                    "give the model a fully static input shape")
        if len(t.shape) > 3 and any(d > 1 for d in t.shape[:-3]):
            return (f"tensor {t.name!r} {t.shape} has more than 3 non-1 innermost dimensions (e.g. batch > 1)",
                    "use batch size 1 and at most 3-D feature maps")
    # parameters constant
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
        wpos = 1
        if len(op.inputs) > wpos and op.inputs[wpos] >= 0 and not g.tensors[op.inputs[wpos]].is_constant:
            return "weights are not constant at compile time", "make the weights constants (no runtime weights)"
    act = op.options.get("fused_activation_function", "NONE")
    if op.name in NO_FUSED_ACTIVATION and act not in ("NONE", None):
        pool = op.name in ("MAX_POOL_2D", "AVERAGE_POOL_2D")
        return (f"{op.name} has a fused {act} activation, which the Edge TPU does not support",
                "apply the activation before the pooling (ReLU and max pooling commute), or "
                + ("use `strided` downsampling" if pool else "apply it after the concatenation as its own layer"))
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D") and op.options.get("dilation_h_factor", 1) != op.options.get(
        "dilation_w_factor", 1
    ):
        return "dilation differs in x and y", "use the same dilation in both directions"
    inp = g.tensor(op.inputs[0]) if op.inputs and op.inputs[0] >= 0 else None
    rank = len(inp.shape) if inp is not None else 0
    if op.name == "MEAN" and rank == 4:
        axes = _axes(g, op, 1, rank)
        if axes is None:
            return "MEAN over non-constant axes", "reduce over fixed spatial axes"
        if not set(axes) <= {1, 2}:
            return (f"MEAN reduces over axes {axes}; the Edge TPU reduces only along x and/or y",
                    "average over the spatial axes only (global average pooling)")
    if op.name in ("PAD",) and rank == 4 and len(op.inputs) > 1:
        t = g.tensor(op.inputs[1])
        vals = t.const_values if t is not None else None
        if vals is None or len(vals) != 8:
            return "PAD with non-constant paddings", "use constant padding"
        if any(vals[i] for i in (0, 1, 6, 7)):
            return "PAD pads the batch or channel dimension; the Edge TPU pads only along x and/or y", \
                "pad only the spatial dimensions"
    if op.name == "SOFTMAX" and inp is not None:
        if sum(d > 1 for d in inp.shape) > 1 or inp.num_elements > 16000:
            return (f"SOFTMAX input {inp.shape}: the Edge TPU supports only a 1-D input of at most 16,000 elements",
                    "flatten before the softmax")
    if op.name == "FULLY_CONNECTED" and op.options.get("weights_format", 0) != 0:
        return "FULLY_CONNECTED with a non-default weights format", "use the default weights format"
    return None


def _boundary_conversion(g: SubgraphInfo, op: OpInfo) -> str | None:
    """Float<->int QUANTIZE/DEQUANTIZE on a graph input/output: runs on the CPU, partition continues."""
    if op.name == "QUANTIZE" and op.inputs and op.inputs[0] in g.inputs:
        t = g.tensor(op.inputs[0])
        if t is not None and t.dtype not in EIGHT_BIT:
            return f"converts the {t.dtype} model input to 8-bit: runs on the CPU, outside the Edge TPU partition"
    if op.name in ("DEQUANTIZE", "QUANTIZE") and op.outputs and op.outputs[0] in g.outputs:
        t = g.tensor(op.outputs[0])
        if t is not None and t.dtype not in EIGHT_BIT:
            return f"converts to the {t.dtype} model output: runs on the CPU, after the Edge TPU partition"
    return None


def analyze_graph(model: TfliteModel) -> EdgeTpuAnalysis:
    g = model.main
    ops: list[EdgeTpuOp] = []
    first_cpu: int | None = None
    notes: list[str] = []
    if any(t.shape_signature and t.shape_signature[0] < 0 for t in (g.tensor(i) for i in g.inputs) if t):
        notes.append("the input batch dimension is dynamic (-1) in the signature; the compiler uses batch 1")
    for op in g.ops:
        if first_cpu is not None:
            boundary = _boundary_conversion(g, op)
            problem = _op_problem(g, op)
            reason = (problem[0] + "; " if problem else "") + (
                boundary or f"after op {first_cpu} ({g.ops[first_cpu].name}) the graph stays on the CPU "
                "(the compiler maps one partition from the start)")
            sugg = problem[1] if problem else ""
            ops.append(EdgeTpuOp(op.index, op.name, op.version, False, reason, sugg))
            continue
        boundary = _boundary_conversion(g, op)
        if boundary:
            ops.append(EdgeTpuOp(op.index, op.name, op.version, False, boundary,
                                 "export with int8/uint8 input and output types to keep it off the CPU"))
            continue
        problem = _op_problem(g, op)
        if problem is None:
            ops.append(EdgeTpuOp(op.index, op.name, op.version, True, ""))
        else:
            first_cpu = op.index
            ops.append(EdgeTpuOp(op.index, op.name, op.version, False, problem[0], problem[1]))
    if not g.ops:
        notes.append("the graph has no ops")
    return EdgeTpuAnalysis(ops, first_cpu, notes)


def analyze_edgetpu(model: str | Path | bytes | TfliteModel) -> EdgeTpuAnalysis:
    """Predict which ops of a .tflite model the Edge TPU compiler maps (path, bytes or a parsed model)."""
    parsed = model if isinstance(model, TfliteModel) else read_tflite(model)
    return analyze_graph(parsed)

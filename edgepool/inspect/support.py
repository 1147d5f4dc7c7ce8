"""Which TFLite runtime release first supports each (builtin op, op version).

The table is TFLite's own `FindMinimumRuntimeVersionForOp` (tensorflow/lite/tools/versioning/
runtime_version.cc, TensorFlow 2.13 source) for the ops our models and common CNNs use. An
(op, version) that is not in the table is reported as "unknown" — never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tflite import TfliteModel

# op -> versions "1.5.0", "1.14.0", ... (index 0 = version 1)
_TABLE: dict[str, tuple[str, ...]] = {
    "ADD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0"),
    "ARG_MAX": ("1.9.0", "1.14.0", "2.9.0"),
    "AVERAGE_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "BATCH_MATMUL": ("2.3.0", "2.3.0", "2.4.0", "2.5.0"),
    "CAST": ("1.5.0", "2.7.0", "2.8.0", "2.9.0", "2.12.0"),
    "CONCATENATION": ("1.5.0", "1.14.0", "2.3.0"),
    "CONV_2D": ("1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.4.0", "2.9.0", "2.11.0"),
    "DEPTH_TO_SPACE": ("2.1.0", "2.5.0"),
    "DEPTHWISE_CONV_2D": ("1.5.0", "1.12.0", "1.14.0", "2.2.0", "2.3.0", "2.3.0", "2.11.0"),
    "DEQUANTIZE": ("1.13.1", "1.14.0", "1.15.0", "2.2.0", "2.7.0"),
    "DIV": ("1.6.0", "2.3.0"),
    "EXPAND_DIMS": ("1.10.0",),
    "FULLY_CONNECTED": ("1.5.0", "1.10.0", "1.14.0", "1.14.0", "2.0.0", "2.1.0", "2.3.0", "2.3.0", "2.3.0", "2.11.0"),
    "GATHER": ("1.6.0", "1.14.0", "1.15.0", "2.4.0", "2.5.0"),
    "HARD_SWISH": ("1.15.0",),
    "L2_NORMALIZATION": ("1.5.0", "1.14.0"),
    "L2_POOL_2D": ("1.5.0",),
    "LEAKY_RELU": ("1.13.1", "2.3.0"),
    "LOGISTIC": ("1.14.0", "1.14.0", "2.3.0"),
    "MAX_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "MAXIMUM": ("1.14.0", "1.14.0", "2.3.0", "2.3.0"),
    "MEAN": ("1.6.0", "1.14.0", "2.4.0"),
    "MINIMUM": ("1.14.0", "1.14.0", "2.3.0", "2.3.0"),
    "MIRROR_PAD": ("1.13.1", "2.3.0", "2.12.0"),
    "MUL": ("1.5.0", "1.14.0", "1.15.0", "2.3.0", "2.6.0", "2.11.0"),
    "PACK": ("1.11.0", "1.14.0", "2.3.0"),
    "PAD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0"),
    "PADV2": ("1.9.0", "1.14.0", "2.4.0", "2.6.0"),
    "PRELU": ("1.8.0",),
    "QUANTIZE": ("1.14.0", "1.15.0", "2.7.0"),
    "REDUCE_MAX": ("1.11.0", "1.14.0", "2.5.0"),
    "REDUCE_MIN": ("1.11.0", "1.14.0", "2.5.0"),
    "RELU": ("1.5.0", "2.1.0", "2.5.0"),
    "RELU6": ("1.5.0", "1.14.0", "2.5.0"),
    "RELU_N1_TO_1": ("1.5.0",),
    "RELU_0_TO_1": ("2.10.0",),
    "RESHAPE": ("1.5.0",),
    "RESIZE_BILINEAR": ("1.7.0", "1.14.0", "2.2.0", "2.5.0"),
    "RESIZE_NEAREST_NEIGHBOR": ("1.13.1", "1.14.0", "2.3.0", "2.4.0"),
    "RSQRT": ("1.10.0", "2.5.0"),
    "SHAPE": ("1.10.0",),
    "SOFTMAX": ("1.5.0", "1.14.0", "2.3.0"),
    "SPACE_TO_DEPTH": ("1.5.0", "1.14.0"),
    "SQRT": ("1.10.0",),
    "SQUARE": ("1.12.0",),
    "SQUARED_DIFFERENCE": ("1.13.1", "2.5.0"),
    "SQUEEZE": ("1.6.0", "2.5.0"),
    "STRIDED_SLICE": ("1.6.0", "1.14.0", "2.1.0", "2.2.0", "2.5.0", "2.6.0"),
    "SUB": ("1.6.0", "1.14.0", "2.3.0", "2.4.0", "2.4.0"),
    "SUM": ("1.10.0", "1.15.0"),
    "TANH": ("1.14.0", "1.14.0", "2.3.0"),
    "TRANSPOSE": ("1.6.0", "1.14.0", "1.15.0", "2.3.0", "2.4.0", "2.12.0"),
    "TRANSPOSE_CONV": ("1.9.0", "2.2.0", "2.3.0", "2.13.0"),
}


def parse_version(v: str) -> tuple[int, ...]:
    """'2.14' / '2.14.0' / 'v2.14.1rc0' -> (2, 14, 0) / (2, 14, 1); non-numeric parts are cut."""
    out = []
    for part in v.strip().lstrip("vV").split("."):
        digits = ""
        for c in part:
            if not c.isdigit():
                break
            digits += c
        if not digits:
            break
        out.append(int(digits))
    while len(out) < 3:
        out.append(0)
    return tuple(out)


def min_runtime_for_op(op: str, version: int) -> str | None:
    """First TFLite runtime release supporting `op` at `version`, or None if not in the table."""
    versions = _TABLE.get(op)
    if versions is None or not 1 <= version <= len(versions):
        return None
    return versions[version - 1]


@dataclass
class OpSupport:
    index: int
    op: str
    version: int
    min_runtime: str | None  # from the table; None = unknown
    supported: bool | None  # None = unknown (op version not in the table, or no runtime version)
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "op": self.op, "version": self.version, "min_runtime": self.min_runtime,
                "supported": self.supported, "reason": self.reason}


def model_min_runtime(model: TfliteModel) -> str | None:
    """The newest min_runtime over the model's ops according to the table (None if no op is known)."""
    best: str | None = None
    for g in model.subgraphs:
        for op in g.ops:
            v = min_runtime_for_op(op.name, op.version)
            if v and (best is None or parse_version(v) > parse_version(best)):
                best = v
    return best


def check_runtime_support(model: TfliteModel, runtime_version: str | None, runtime: str = "tflite") -> list[OpSupport]:
    """Per op of the main subgraph: can a TFLite runtime of `runtime_version` run it?

    `runtime` is the runtime's name as the reasons show it ("tflite", "edgetpu host tflite-runtime")."""
    rt = parse_version(runtime_version) if runtime_version else None
    out = []
    for op in model.main.ops:
        need = min_runtime_for_op(op.name, op.version)
        if op.is_custom:
            out.append(OpSupport(op.index, op.name, op.version, None, False,
                                 f"custom op {op.custom_code!r} is not a TFLite builtin; the runtime needs it registered"))
        elif need is None:
            out.append(OpSupport(op.index, op.name, op.version, None, None,
                                 f"{op.name} v{op.version} is not in edgepool's op-version table: unknown"))
        elif rt is None:
            out.append(OpSupport(op.index, op.name, op.version, need, None, f"needs {runtime} >= {need}; profile has no runtime version"))
        elif parse_version(need) <= rt:
            out.append(OpSupport(op.index, op.name, op.version, need, True, f"needs {runtime} >= {need}"))
        else:
            out.append(OpSupport(op.index, op.name, op.version, need, False,
                                 f"{op.name} v{op.version} needs {runtime} >= {need}, the profile has {runtime_version}"))
    return out

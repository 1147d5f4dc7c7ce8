"""Which TFLite runtime release first supports each (builtin op, op version), and whether a profile's runtime can load a model.

`_TABLE` is TFLite's own `FindMinimumRuntimeVersionForOp`, copied whole from
tflite/converter/tools/versioning/runtime_version.cc of google-ai-edge/LiteRT (commit f6745779,
the converter TensorFlow 2.21 ships; the same map as tensorflow/lite/tools/versioning/runtime_version.cc).
It is the map the converter itself uses to write a model's `min_runtime_version` metadata, so the
two agree (a dynamic-int8 export: FULLY_CONNECTED v12 -> 2.17.0). Releases are TensorFlow release
numbers ("2.14.0" = TensorFlow / tflite-runtime 2.14). An (op, version) that is not in the table is
reported as unknown -- never guessed, never called fine.

A profile's runtime can load a model when every op's minimum release is <= the profile's
`runtime_version`; an op that needs a newer release is `supported=False` and says so
("FULLY_CONNECTED v12 needs tflite-runtime >= 2.17.0; raspberry-pi-4 has 2.14"). Profiles whose
runtime package numbers its releases apart from TensorFlow (ai-edge-litert 1.x / 2.x is LiteRT's own
numbering) cannot be placed in the table: their ops are unknown (`check_profile_support`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgepool.types import Runtime

from .tflite import TfliteModel

if TYPE_CHECKING:
    from edgepool.profiles import DeviceProfile

# op -> minimum runtime per version (index 0 = version 1; None: that version does not exist)
_TABLE: dict[str, tuple[str | None, ...]] = {
    "ABS": ("1.13.0", "2.4.0", "2.5.0", "2.6.0", "2.12.0"),
    "ADD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0", "2.13.0", "2.23.0"),
    "ADD_N": ("1.14.0",),
    "ARG_MAX": ("1.9.0", "1.14.0", "2.9.0"),
    "ARG_MIN": ("1.9.0", "1.14.0", "2.9.0"),
    "ASSIGN_VARIABLE": ("2.6.0",),
    "ATAN2": ("2.10.0",),
    "AVERAGE_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "BATCH_MATMUL": ("2.3.0", "2.3.0", "2.4.0", "2.5.0"),
    "BATCH_TO_SPACE_ND": ("1.6.0", "1.14.0", "2.3.0", "2.12.0"),
    "BIDIRECTIONAL_SEQUENCE_LSTM": ("1.14.0", "1.14.0", "1.14.0"),
    "BIDIRECTIONAL_SEQUENCE_RNN": ("1.14.0", "1.14.0", "2.3.0"),
    "BITCAST": ("2.13.0",),
    "BITWISE_XOR": ("2.13.0",),
    "BROADCAST_ARGS": ("2.6.0",),
    "BROADCAST_TO": (None, "2.5.0", "2.5.0", "2.23.0"),
    "BUCKETIZE": ("2.8.0",),
    "CALL_ONCE": ("2.5.0",),
    "CAST": ("1.5.0", "2.7.0", "2.8.0", "2.9.0", "2.12.0", "2.15.0", "2.17.0", "2.21.0", "2.23.0"),
    "CEIL": ("1.14.0",),
    "COMPLEX_ABS": ("2.5.0",),
    "CONCATENATION": ("1.5.0", "1.14.0", "2.3.0", "2.14.0", "2.21.0", "2.23.0", "2.23.0"),
    "CONV_2D": ("1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.4.0", "2.9.0", "2.11.0", "2.15.0"),
    "CONV_3D": ("2.5.0",),
    "CONV_3D_TRANSPOSE": ("2.6.0",),
    "COS": ("1.14.0", "2.23.0"),
    "CUMSUM": ("2.4.0",),
    "DENSIFY": ("2.2.0",),
    "DEPTHWISE_CONV_2D": ("1.5.0", "1.12.0", "1.14.0", "2.2.0", "2.3.0", "2.3.0", "2.11.0"),
    "DEPTH_TO_SPACE": ("2.1.0", "2.5.0"),
    "DEQUANTIZE": ("1.13.1", "1.14.0", "1.15.0", "2.2.0", "2.7.0", "2.18.0", "2.21.0", "2.22.0", "2.23.0"),
    "DILATE": ("2.15.0",),
    "DIV": ("1.6.0", "2.3.0"),
    "DYNAMIC_UPDATE_SLICE": ("2.9.0", "2.17.0", "2.19.0", "2.20.0", "2.21.0", "2.22.0"),
    "ELU": ("1.14.0",),
    "EMBEDDING_LOOKUP": ("1.13.0", "1.14.0", "1.14.0", "2.18.0", "2.21.0"),
    "EMBEDDING_LOOKUP_SPARSE": ("1.5.0",),
    "EQUAL": ("1.14.0", "1.14.0", "2.3.0", "2.13.0", "2.21.0"),
    "EXP": ("1.7.0", "2.12.0"),
    "EXPAND_DIMS": ("1.10.0",),
    "FAKE_QUANT": ("1.5.0", "1.10.0"),
    "FILL": ("1.13.0", "2.3.0", "2.5.0", "2.12.0", "2.23.0"),
    "FLOOR": ("1.9.0",),
    "FLOOR_DIV": ("1.14.0", "1.14.0", "2.13.0"),
    "FLOOR_MOD": ("1.13.0", "2.13.0"),
    "FULLY_CONNECTED": (
        "1.5.0", "1.10.0", "1.14.0", "1.14.0", "2.0.0", "2.1.0", "2.3.0", "2.3.0", "2.3.0", "2.11.0",
        "2.15.0", "2.17.0", "2.18.0", "2.21.0",
    ),
    "GATHER": ("1.6.0", "1.14.0", "1.15.0", "2.4.0", "2.5.0", "2.13.0", "2.15.0", "2.23.0"),
    "GATHER_ND": ("1.14.0", "2.3.0", "2.5.0", "2.13.0", "2.16.0", "2.23.0"),
    "GELU": ("2.9.0", "2.9.0", "2.23.0"),
    "GREATER": ("1.14.0", "1.14.0"),
    "GREATER_EQUAL": ("1.14.0", "1.14.0", "2.13.0"),
    "HARD_SWISH": ("1.15.0",),
    "HASHTABLE": ("2.5.0",),
    "HASHTABLE_FIND": ("2.5.0",),
    "HASHTABLE_IMPORT": ("2.5.0",),
    "HASHTABLE_LOOKUP": ("1.5.0",),
    "HASHTABLE_SIZE": ("2.5.0",),
    "IF": ("1.15.0",),
    "IMAG": ("2.5.0",),
    "L2_NORMALIZATION": ("1.5.0", "1.14.0"),
    "L2_POOL_2D": ("1.5.0",),
    "LEAKY_RELU": ("1.13.1", "2.3.0"),
    "LESS": ("1.14.0", "1.14.0", "2.13.0"),
    "LESS_EQUAL": ("1.14.0", "1.14.0"),
    "LOCAL_RESPONSE_NORMALIZATION": ("1.5.0",),
    "LOG": ("1.14.0", "2.15.0"),
    "LOGICAL_AND": ("1.11.0",),
    "LOGICAL_NOT": ("1.11.0",),
    "LOGICAL_OR": ("1.11.0",),
    "LOGISTIC": ("1.14.0", "1.14.0", "2.3.0"),
    "LOG_SOFTMAX": ("1.14.0", "1.14.0"),
    "LSH_PROJECTION": ("1.5.0",),
    "LSTM": ("1.7.0", "1.10.0", "1.14.0", "2.3.0"),
    "MATRIX_DIAG": ("1.14.0",),
    "MATRIX_SET_DIAG": ("1.14.0",),
    "MAXIMUM": ("1.14.0", "1.14.0", "2.3.0", "2.3.0"),
    "MAX_POOL_2D": ("1.5.0", "1.14.0", "2.3.0"),
    "MEAN": ("1.6.0", "1.14.0", "2.4.0"),
    "MINIMUM": ("1.14.0", "1.14.0", "2.3.0", "2.3.0"),
    "MIRROR_PAD": ("1.13.1", "2.3.0", "2.12.0"),
    "MUL": ("1.5.0", "1.14.0", "1.15.0", "2.3.0", "2.6.0", "2.11.0", "2.13.0", "2.23.0"),
    "MULTINOMIAL": ("2.8.0",),
    "NEG": ("1.9.0",),
    "NON_MAX_SUPPRESSION_V4": ("2.1.0",),
    "NON_MAX_SUPPRESSION_V5": ("2.1.0",),
    "NOT_EQUAL": ("1.14.0", "1.14.0", "2.3.0", "2.21.0"),
    "ONE_HOT": ("1.11.0",),
    "PACK": ("1.11.0", "1.14.0", "2.3.0", "2.13.0", "2.23.0"),
    "PAD": ("1.5.0", "1.14.0", "2.4.0", "2.6.0", "2.20.0", "2.23.0"),
    "PADV2": ("1.9.0", "1.14.0", "2.4.0", "2.6.0", "2.20.0", "2.23.0"),
    "POW": ("1.10.0",),
    "PRELU": ("1.8.0",),
    "QUANTIZE": ("1.14.0", "1.15.0", "2.7.0", "2.21.0", "2.21.0", "2.21.0"),
    "RANDOM_STANDARD_NORMAL": ("2.8.0",),
    "RANDOM_UNIFORM": ("2.8.0",),
    "RANGE": ("1.13.0", "2.14.0"),
    "RANK": ("1.14.0",),
    "READ_VARIABLE": ("2.6.0",),
    "REAL": ("2.5.0",),
    "REDUCE_ALL": ("2.6.0",),
    "REDUCE_ANY": ("1.11.0",),
    "REDUCE_MAX": ("1.11.0", "1.14.0", "2.5.0"),
    "REDUCE_MIN": ("1.11.0", "1.14.0", "2.5.0"),
    "REDUCE_PROD": ("1.11.0", "2.6.0"),
    "REDUCE_WINDOW": ("2.15.0",),
    "RELU": ("1.5.0", "2.1.0", "2.5.0"),
    "RELU6": ("1.5.0", "1.14.0", "2.5.0"),
    "RELU_0_TO_1": ("2.10.0",),
    "RELU_N1_TO_1": ("1.5.0",),
    "RESHAPE": ("1.5.0",),
    "RESIZE_BILINEAR": ("1.7.0", "1.14.0", "2.2.0", "2.5.0"),
    "RESIZE_NEAREST_NEIGHBOR": ("1.13.1", "1.14.0", "2.3.0", "2.4.0"),
    "REVERSE_SEQUENCE": ("1.14.0",),
    "REVERSE_V2": ("1.14.0", "2.2.0", "2.5.0", "2.23.0"),
    "RFFT2D": ("2.5.0",),
    "RIGHT_SHIFT": ("2.13.0",),
    "RNN": ("1.5.0", "1.14.0", "2.3.0"),
    "ROUND": ("1.14.0",),
    "RSQRT": ("1.10.0", "2.5.0", "2.15.0"),
    "SCATTER_ND": ("2.1.0",),
    "SEGMENT_SUM": ("2.2.0",),
    "SELECT": ("1.14.0", "1.14.0", "2.12.0", "2.12.0"),
    "SELECT_V2": ("2.2.0", "2.12.0"),
    "SHAPE": ("1.10.0",),
    "SIGN": ("2.11.0", "2.12.0"),
    "SIN": ("1.9.0", "2.23.0"),
    "SKIP_GRAM": ("1.5.0",),
    "SLICE": ("1.14.0", "1.14.0", "1.14.0", "2.4.0", "2.5.0", "2.14.0", "2.21.0", "2.23.0"),
    "SOFTMAX": ("1.5.0", "1.14.0", "2.3.0", "2.23.0"),
    "SPACE_TO_BATCH_ND": ("1.6.0", "1.14.0", "2.3.0", "2.12.0"),
    "SPACE_TO_DEPTH": ("1.5.0", "1.14.0"),
    "SPARSE_TO_DENSE": ("1.9.0", "1.14.0", "1.15.0"),
    "SPLIT": ("1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.23.0"),
    "SPLIT_V": ("1.13.1", "2.3.0", "2.23.0"),
    "SQRT": ("1.10.0", "2.21.0"),
    "SQUARE": ("1.12.0",),
    "SQUARED_DIFFERENCE": ("1.13.1", "2.5.0"),
    "SQUEEZE": ("1.6.0", "2.5.0"),
    "STABLEHLO_ADD": ("2.16.0",),
    "STABLEHLO_AND": ("2.17.0",),
    "STABLEHLO_CASE": ("2.17.0",),
    "STABLEHLO_CBRT": ("2.17.0",),
    "STABLEHLO_COMPOSITE": ("2.17.0",),
    "STABLEHLO_GATHER": ("2.16.0",),
    "STABLEHLO_MAXIMUM": ("2.16.0",),
    "STABLEHLO_MINIMUM": ("2.16.0",),
    "STABLEHLO_MULTIPLY": ("2.16.0",),
    "STABLEHLO_PAD": ("2.16.0",),
    "STABLEHLO_REDUCE_WINDOW": ("2.16.0",),
    "STABLEHLO_RNG_BIT_GENERATOR": ("2.15.0",),
    "STABLEHLO_SCATTER": ("2.15.0",),
    "STABLEHLO_SHIFT_LEFT": ("2.17.0",),
    "STRIDED_SLICE": ("1.6.0", "1.14.0", "2.1.0", "2.2.0", "2.5.0", "2.6.0", "2.14.0", "2.14.0"),
    "SUB": ("1.6.0", "1.14.0", "2.3.0", "2.4.0", "2.4.0"),
    "SUM": ("1.10.0", "1.15.0"),
    "SVDF": ("1.5.0", "1.14.0", "2.2.0", "2.3.0"),
    "TANH": ("1.14.0", "1.14.0", "2.3.0"),
    "TILE": ("1.10.1", "2.2.0", "2.8.0"),
    "TOPK_V2": ("1.7.0", "1.14.0", "2.13.0"),
    "TRANSPOSE": ("1.6.0", "1.14.0", "1.15.0", "2.3.0", "2.4.0", "2.12.0", "2.14.4", "2.22.0", "2.23.0"),
    "TRANSPOSE_CONV": ("1.9.0", "2.2.0", "2.3.0", "2.13.0", "2.15.0"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("1.13.1", "1.14.0", "2.3.0", "2.12.0"),
    "UNIDIRECTIONAL_SEQUENCE_RNN": ("1.14.0", "1.14.0", "2.3.0"),
    "UNIQUE": ("1.14.0",),
    "UNPACK": ("1.11.0", "1.14.0", "2.2.0", "2.3.0", "2.22.0", "2.23.0"),
    "UNSORTED_SEGMENT_MAX": ("2.10.0",),
    "UNSORTED_SEGMENT_MIN": ("2.11.0",),
    "UNSORTED_SEGMENT_PROD": ("2.10.0",),
    "UNSORTED_SEGMENT_SUM": ("2.10.0",),
    "VAR_HANDLE": ("2.6.0",),
    "WHERE": ("1.14.0", "2.8.0"),
    "WHILE": ("1.15.0",),
    "ZEROS_LIKE": ("1.12.0",),
}

# runtime packages whose version numbers are TensorFlow release numbers (what `_TABLE` holds)
TF_NUMBERED_PACKAGES = ("tflite-runtime", "tensorflow", "tensorflow-lite-android")


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
    """Per op of the main subgraph: can a TFLite runtime of release `runtime_version` (TensorFlow numbering) run it?

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
                                 f"{op.name} v{op.version} is not in the op-version table: whether "
                                 f"{' '.join(filter(None, (runtime, runtime_version)))} loads it is unknown"))
        elif rt is None:
            out.append(OpSupport(op.index, op.name, op.version, need, None,
                                 f"{op.name} v{op.version} needs {runtime} >= {need}; the profile names no runtime version"))
        elif parse_version(need) <= rt:
            out.append(OpSupport(op.index, op.name, op.version, need, True, f"needs {runtime} >= {need}"))
        else:
            out.append(OpSupport(op.index, op.name, op.version, need, False,
                                 f"{op.name} v{op.version} needs {runtime} >= {need}, the profile has {runtime_version}"))
    return out


def check_profile_support(model: TfliteModel, profile: DeviceProfile) -> list[OpSupport]:
    """`check_runtime_support` for a TFLite / Edge TPU profile, named after its runtime package.

    A package that numbers its releases apart from TensorFlow (ai-edge-litert) cannot be placed in the
    table: every builtin op is reported unknown (custom ops are still unsupported)."""
    package = profile.runtime_package
    label = f"edgetpu host {package}" if profile.runtime == Runtime.EDGETPU else package
    if package in TF_NUMBERED_PACKAGES:
        return check_runtime_support(model, profile.runtime_version, label)
    out = []
    for s in check_runtime_support(model, None, label):
        if s.supported is None:
            s.reason = (f"{s.op} v{s.version} needs TensorFlow Lite >= {s.min_runtime}; {package} "
                        f"{profile.runtime_version} numbers its releases apart from TensorFlow, so the op-version "
                        "table cannot place it: unknown") if s.min_runtime else s.reason
        out.append(s)
    return out

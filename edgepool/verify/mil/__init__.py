"""A small NumPy executor for Core ML ML Programs: verification of `.mlpackage` exports without a Mac.

Core ML prediction exists only on macOS. This package loads the MIL program stored in a saved
`.mlpackage` and runs it op by op in NumPy, for the ops edgepool's models produce: conv (grouped /
depthwise, dilated, every padding mode), max / avg / l2 pooling, batch norm, activations, matmul /
linear, reshape / transpose / squeeze / expand_dims / concat / pad, reductions, elementwise maths,
softmax, casts, the weight-decompression ops of 8-bit linear quantization and palettization (iOS16
and iOS18 forms) and `classify`.

    program.py   MilProgram, load_program (spec read by edgepool.inspect.coreml), program_from_pymil
    executor.py  run, the op registry (OPS), value resolution and storage, UnsupportedOp
    ops.py       the op implementations

Precision: every op computes in float32 (float64 for reductions) and its result is stored in the
dtype the program declares for it, so an FP16 program rounds each intermediate tensor to float16 as
Core ML's FP16 storage does. Core ML's own kernels may accumulate differently; the result is a
reference, not a bit-exact emulation of any compute unit.

An op this executor does not implement raises `UnsupportedOp` (before anything runs, via
`unsupported_ops`), and verification reports it unverified (reason "op X") -- never a pass.
"""

from __future__ import annotations

from . import ops  # noqa: F401  (registers the op implementations in executor.OPS)
from .executor import OPS, UnsupportedOp, run
from .ops import unpack_indices
from .program import MilInput, MilProgram, load_program, program_from_pymil, unsupported_ops

__all__ = [
    "OPS",
    "MilInput",
    "MilProgram",
    "UnsupportedOp",
    "load_program",
    "program_from_pymil",
    "run",
    "unpack_indices",
    "unsupported_ops",
]

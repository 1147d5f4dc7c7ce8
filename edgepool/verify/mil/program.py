"""A saved ML Program as the executor sees it: the PyMIL `main` function, its inputs and outputs.

`load_program` reads the spec through `edgepool.inspect.coreml.load_spec` (the one Core ML reader:
a broken file raises the same ModelError everywhere) and the MIL program with coremltools' own proto
reader (`milproto.load`, which works on Linux).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ModelError
from ...inspect.coreml import load_spec, weights_dir
from .executor import UnsupportedOp, const_value, missing_ops


@dataclass
class MilInput:
    name: str
    shape: tuple[int, ...]
    dtype: str  # "fp32" | "fp16" | ...
    image: bool  # an ImageType input: the program sees NCHW float pixels
    color_layout: str | None = None


@dataclass
class MilProgram:
    """A loaded ML Program: the PyMIL `main` function plus what the executor needs to feed it."""

    function: Any
    inputs: list[MilInput]
    output_names: list[str]
    spec_version: int
    opset: str
    user_metadata: dict[str, str] = field(default_factory=dict)
    class_labels: list[str] | None = None

    @property
    def op_types(self) -> list[str]:
        return [op.op_type for op in self.function.operations]


def load_program(package_path: Path) -> MilProgram:
    """Read the MIL program of a saved `.mlpackage`.

    Raises ModelError if the path is not a readable Core ML model, UnsupportedOp if it is a legacy
    (neuralnetwork) model rather than an ML Program.
    """
    package_path = Path(package_path)
    spec = load_spec(package_path)
    kind = spec.WhichOneof("Type")
    if kind != "mlProgram":
        raise UnsupportedOp(f"{kind}-model", "the NumPy executor runs ML Programs (.mlpackage) only")
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    weights = weights_dir(package_path)
    try:
        prog = milproto_load(spec, spec.specificationVersion, str(weights) if weights is not None else None)
    except Exception as e:
        raise ModelError(f"{package_path}: cannot read its ML Program ({e})", "export it again") from None
    return program_from_pymil(prog, spec)


def program_from_pymil(prog: Any, spec: Any = None) -> MilProgram:
    """Wrap a PyMIL Program (from `load_program` or built with coremltools' Builder in tests)."""
    from coremltools.converters.mil.mil import types

    func = prog.functions["main"]
    image_inputs: dict[str, str] = {}
    metadata: dict[str, str] = {}
    labels: list[str] | None = None
    spec_version = 0
    if spec is not None:
        spec_version = int(spec.specificationVersion)
        for inp in spec.description.input:
            if inp.type.WhichOneof("Type") == "imageType":
                image_inputs[inp.name] = str(
                    inp.type.imageType.ColorSpace.Name(inp.type.imageType.colorSpace)
                )
        metadata = dict(spec.description.metadata.userDefined)
    inputs = [
        MilInput(
            name=name,
            shape=tuple(int(d) for d in var.shape),
            dtype=types.builtin_to_string(var.dtype),
            image=name in image_inputs,
            color_layout=image_inputs.get(name),
        )
        for name, var in func.inputs.items()
    ]
    for op in func.operations:
        if op.op_type == "classify":
            labels = [str(c) for c in const_value(op.inputs["classes"])]
    return MilProgram(
        function=func,
        inputs=inputs,
        output_names=[v.name for v in func.outputs],
        spec_version=spec_version,
        opset=str(getattr(func, "opset_version", "")),
        user_metadata=metadata,
        class_labels=labels,
    )


def unsupported_ops(program: MilProgram) -> list[str]:
    """Op types in `program` the executor does not implement (empty: it can run it)."""
    return missing_ops(program.function)


__all__ = ["MilInput", "MilProgram", "load_program", "program_from_pymil", "unsupported_ops"]

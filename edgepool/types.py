"""The project's vocabulary as types: formats, runtimes, statuses, Core ML targets, compression.

Everything here is plain data (standard library only), so every layer can import it. Strings from
files and the command line become these enums at the edge (`Format("tflite")`), and the code inside
compares enums, never strings.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Format(enum.StrEnum):
    """What an export holds."""

    TFLITE = "tflite"
    EDGETPU_TFLITE = "edgetpu-tflite"  # compiled by edgetpu_compiler; runs only with the Edge TPU delegate
    COREML = "coreml"

    @property
    def is_tflite(self) -> bool:
        return self in (Format.TFLITE, Format.EDGETPU_TFLITE)


class RecipeFormat(enum.StrEnum):
    """What a quantization recipe converts to."""

    TFLITE = "tflite"
    COREML = "coreml"


class Runtime(enum.StrEnum):
    """What executes the model on the device."""

    TFLITE = "tflite"
    EDGETPU = "edgetpu"
    COREML = "coreml"


class Transport(enum.StrEnum):
    """How edgepool reaches a device."""

    LOCAL = "local"
    SSH = "ssh"
    ADB = "adb"
    IOS = "ios"


class Status(enum.StrEnum):
    """The verdict on one export. The reason is data beside it (`Verification.reason`), never in the string."""

    PASS = "pass"
    FAIL = "fail"
    UNVERIFIED = "unverified"  # nothing here could run it (an op the MIL executor lacks, a format without a runner)
    NOT_COMPILED = "not-compiled"  # verified on the CPU, but the Edge TPU compiler is not installed here
    ERROR = "error"  # the export could not be made

    @property
    def ok(self) -> bool:
        """Whether a script may go on: pass, or a pass that could not go all the way for a stated reason."""
        return self in (Status.PASS, Status.NOT_COMPILED, Status.UNVERIFIED)


class Compression(enum.StrEnum):
    """Core ML weight compression."""

    NONE = "none"
    LINEAR_INT8 = "linear-int8"
    PALETTIZE = "palettize"


class DeploymentTarget(enum.IntEnum):
    """Core ML deployment targets, ordered (as coremltools' AvailableTarget); iOS15 is the first ML Program."""

    iOS13 = 13
    iOS14 = 14
    iOS15 = 15
    iOS16 = 16
    iOS17 = 17
    iOS18 = 18

    @classmethod
    def parse(cls, text: str) -> DeploymentTarget:
        """'iOS17' -> DeploymentTarget.iOS17; anything else raises ValueError (names are case-sensitive)."""
        try:
            return cls[text]
        except KeyError:
            raise ValueError(text) from None

    @property
    def ml_program(self) -> bool:
        """ML Program (.mlpackage) from iOS15 on; a legacy neuralnetwork .mlmodel before."""
        return self >= DeploymentTarget.iOS15


# Core ML rules in one place: what each compression and compute-unit choice needs.
COMPRESSION_MIN_TARGET: dict[Compression, DeploymentTarget] = {
    Compression.NONE: DeploymentTarget.iOS13,
    Compression.LINEAR_INT8: DeploymentTarget.iOS16,  # constexpr_affine_dequantize
    Compression.PALETTIZE: DeploymentTarget.iOS16,  # constexpr_lut_to_dense
}
PALETTIZE_3BIT_MIN_TARGET = DeploymentTarget.iOS18
COMPUTE_UNITS_MIN_TARGET: dict[str, DeploymentTarget] = {
    "ALL": DeploymentTarget.iOS13,
    "CPU_ONLY": DeploymentTarget.iOS13,
    "CPU_AND_GPU": DeploymentTarget.iOS13,
    "CPU_AND_NE": DeploymentTarget.iOS16,
}


@dataclass
class Verification:
    """Parity and accuracy of an export against its source model. `details` holds the figures
    (executor, accuracy, reference_accuracy, agreement, max_abs_diff, criterion, ...)."""

    status: Status
    reason: str | None = None
    hint: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def __getitem__(self, key: str) -> Any:
        """The record's field as in verify.json (`v["agreement"]`, `v["status"]` -> "pass")."""
        return self.to_dict()[key]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": self.status.value}
        if self.reason:
            d["reason"] = self.reason
        if self.hint:
            d["hint"] = self.hint
        return {**d, **self.details}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verification:
        rest = {k: v for k, v in d.items() if k not in ("status", "reason", "hint")}
        return cls(Status(d["status"]), d.get("reason"), d.get("hint"), rest)


@dataclass
class Artifact:
    """What an exporter returns: the model's files, its sidecar (model.json) and notes for people.

    `files` maps a file name inside the export folder to bytes, or to a path already built on disk
    (a .mlpackage directory coremltools wrote into a temporary folder). `runs.save_export` writes it.
    `verify_file` names the file verification runs (the CPU int8 model of an Edge TPU export).
    """

    format: Format
    model_file: str
    files: dict[str, bytes | Path]
    sidecar: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    verify_file: str | None = None

    @property
    def model_bytes(self) -> bytes:
        data = self.files[self.model_file]
        if not isinstance(data, bytes):
            raise TypeError(f"{self.model_file} is a directory, not bytes")
        return data


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report from a long library call; the CLI draws bars from these.

    `stage`: "train", "qat", "export", "verify", "convert", "benchmark"; `done` of `total` steps
    (total None: unknown); `data`: stage-specific figures (epoch logs, a benchmark event).
    """

    stage: str
    done: int = 0
    total: int | None = None
    message: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[ProgressEvent], None]

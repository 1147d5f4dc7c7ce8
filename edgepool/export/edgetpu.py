"""Edge TPU export: a full-integer .tflite, compiled with Coral's `edgetpu_compiler` where it is installed.

`export(source, recipe, profile)` makes the int8 model (`tflite.export`), predicts which ops the Edge
TPU maps (`edgepool.inspect.edgetpu.analyze_edgetpu`), and runs the compiler when it is on PATH:
the Artifact then holds `model_edgetpu.tflite` (what a device runs, with the libedgetpu delegate),
the compiler log, and the CPU int8 `model.tflite` it was compiled from (what verification runs).
Without the compiler the export is the int8 model and says "not compiled": it never pretends.
`compile_for_edgetpu(tflite_path, out_dir)` is the compiler step alone; its log parser compares the
compiler's mapped/CPU counts with the prediction.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExportError
from ..inspect.edgetpu import EdgeTpuAnalysis, analyze_edgetpu
from ..types import Artifact, Format
from . import tflite
from .source import ModelSource

if TYPE_CHECKING:
    from ..profiles import DeviceProfile
    from ..recipes import QuantRecipe

COMPILER = "edgetpu_compiler"
OUTPUT_NAME = "model_edgetpu.tflite"
LOG_NAME = "edgetpu_compiler.log"
INSTALL_HINT = (
    "install the Edge TPU compiler (x86-64 Debian/Ubuntu: add Coral's apt repository "
    "https://packages.cloud.google.com/apt coral-edgetpu-stable, then `apt-get install edgetpu-compiler`) "
    "or compile on a machine that has it: edgetpu_compiler -s model.tflite"
)
MAPPED_STATUS = "Mapped to Edge TPU"

_TPU_RE = re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)")
_CPU_RE = re.compile(r"Number of operations that will run on CPU:\s*(\d+)")
_TOTAL_RE = re.compile(r"Total number of operations:\s*(\d+)")
_VERSION_RE = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_SUBGRAPHS_RE = re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)")
_ROW_RE = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")


@dataclass
class CompilerOpRow:
    op: str
    count: int
    status: str

    @property
    def mapped(self) -> bool:
        return self.status.strip().startswith(MAPPED_STATUS)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "count": self.count, "status": self.status, "mapped": self.mapped}


@dataclass
class CompilerLog:
    compiler_version: str | None
    tpu_ops: int | None
    cpu_ops: int | None
    total_ops: int | None
    edgetpu_subgraphs: int | None
    rows: list[CompilerOpRow]

    def op_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            c = out.setdefault(r.op, {"tpu": 0, "cpu": 0})
            c["tpu" if r.mapped else "cpu"] += r.count
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"compiler_version": self.compiler_version, "tpu_ops": self.tpu_ops, "cpu_ops": self.cpu_ops,
                "total_ops": self.total_ops, "edgetpu_subgraphs": self.edgetpu_subgraphs,
                "ops": [r.to_dict() for r in self.rows]}


def parse_compiler_log(text: str) -> CompilerLog:
    """Parse edgetpu_compiler's stdout / .log: counts and the "Operator Count Status" table."""

    def num(rx: re.Pattern[str]) -> int | None:
        m = rx.search(text)
        return int(m.group(1)) if m else None

    version = _VERSION_RE.search(text)
    rows: list[CompilerOpRow] = []
    in_table = False
    for line in text.splitlines():
        if re.match(r"^\s*Operator\s+Count\s+Status\s*$", line):
            in_table = True
            continue
        if not in_table:
            continue
        m = _ROW_RE.match(line.strip())
        if m:
            rows.append(CompilerOpRow(m.group(1), int(m.group(2)), m.group(3)))
        elif line.strip() and rows:
            in_table = False  # the table ended
    tpu, cpu = num(_TPU_RE), num(_CPU_RE)
    total = num(_TOTAL_RE)
    if tpu is None and rows:
        tpu = sum(r.count for r in rows if r.mapped)
        cpu = sum(r.count for r in rows if not r.mapped)
    if tpu is not None and cpu is None and total is not None:
        cpu = total - tpu
    return CompilerLog(version.group(1) if version else None, tpu, cpu, total, num(_SUBGRAPHS_RE), rows)


def compare_with_prediction(log: CompilerLog, prediction: EdgeTpuAnalysis) -> list[str]:
    """Differences between the compiler's log and the prediction, one sentence each ([] = agree)."""
    out = []
    if log.tpu_ops is not None and log.tpu_ops != prediction.mapped_ops:
        out.append(f"compiler maps {log.tpu_ops} ops to the Edge TPU, edgepool predicted {prediction.mapped_ops}")
    if log.cpu_ops is not None and log.cpu_ops != prediction.cpu_ops:
        out.append(f"compiler leaves {log.cpu_ops} ops on the CPU, edgepool predicted {prediction.cpu_ops}")
    if log.rows:
        got, want = log.op_counts(), prediction.op_counts()
        for op in sorted(set(got) | set(want)):
            g, w = got.get(op, {"tpu": 0, "cpu": 0}), want.get(op, {"tpu": 0, "cpu": 0})
            if g != w:
                out.append(f"{op}: compiler {g['tpu']} on TPU / {g['cpu']} on CPU, predicted {w['tpu']} / {w['cpu']}")
    return out


@dataclass
class EdgeTpuCompileResult:
    compiled: bool
    message: str  # one line for people
    prediction: EdgeTpuAnalysis
    edgetpu_path: Path | None = None
    log_path: Path | None = None
    log: CompilerLog | None = None
    mismatches: list[str] = field(default_factory=list)
    install_hint: str | None = None

    @property
    def matches_prediction(self) -> bool | None:
        return None if self.log is None else not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "compiled": self.compiled, "message": self.message,
            "edgetpu_path": str(self.edgetpu_path) if self.edgetpu_path else None,
            "log_path": str(self.log_path) if self.log_path else None,
            "compiler": self.log.to_dict() if self.log else None,
            "prediction": self.prediction.to_dict(), "mismatches": self.mismatches,
            "matches_prediction": self.matches_prediction, "install_hint": self.install_hint,
        }


def find_compiler() -> str | None:
    return shutil.which(COMPILER)


def compile_for_edgetpu(
    tflite_path: str | Path, out_dir: str | Path, compiler: str | None = None, timeout_s: float = 300.0
) -> EdgeTpuCompileResult:
    """Compile `tflite_path` into `out_dir/model_edgetpu.tflite` (+ log) if edgetpu_compiler is available.

    `compiler` overrides the executable found on PATH. Raises ExportError if the compiler runs and fails.
    """
    tflite_path = Path(tflite_path)
    prediction = analyze_edgetpu(tflite_path)
    exe = compiler or find_compiler()
    if exe is None:
        return EdgeTpuCompileResult(
            compiled=False, prediction=prediction, install_hint=INSTALL_HINT,
            message=f"not compiled for Edge TPU: {COMPILER} is not on PATH (predicted: {prediction.split})",
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / ".edgetpu_compiler"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        try:
            proc = subprocess.run(
                [exe, "-s", "-o", str(work), str(tflite_path)],
                capture_output=True, text=True, timeout=timeout_s, check=False,
            )
        except subprocess.TimeoutExpired:
            raise ExportError(f"{COMPILER} did not finish in {timeout_s:.0f} s on {tflite_path}",
                              "try a smaller model or a longer timeout") from None
        except OSError as e:
            raise ExportError(f"cannot run {exe}: {e.strerror}", INSTALL_HINT) from None
        text = proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
        produced = work / f"{tflite_path.stem}_edgetpu.tflite"
        compiler_log = work / f"{tflite_path.stem}_edgetpu.log"
        if compiler_log.exists():
            text += "\n" + compiler_log.read_text(errors="replace")
        log_path = out_dir / LOG_NAME
        log_path.write_text(text)
        if proc.returncode != 0 or not produced.exists():
            last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "no output")
            raise ExportError(f"{COMPILER} failed on {tflite_path} (exit {proc.returncode}): {last[:200]}",
                              f"see {log_path}; check the model is fully int8 (edgepool inspect --profile coral-usb)")
        target = out_dir / OUTPUT_NAME
        produced.replace(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log = parse_compiler_log(text)
    mismatches = compare_with_prediction(log, prediction)
    msg = f"compiled for Edge TPU: {log.tpu_ops} ops on the Edge TPU, {log.cpu_ops} on the CPU"
    if mismatches:
        msg += f" (differs from edgepool's prediction: {mismatches[0]})"
    return EdgeTpuCompileResult(True, msg, prediction, target, log_path, log, mismatches)


def export(source: ModelSource, recipe: QuantRecipe, profile: DeviceProfile | None = None) -> Artifact:
    """The int8 model for the Edge TPU, compiled when the compiler is here; notes say what runs where."""
    import tempfile

    art = tflite.export(source, recipe, profile)
    with tempfile.TemporaryDirectory(prefix="edgepool-edgetpu-") as tmp:
        cpu_model = Path(tmp) / tflite.MODEL_FILE
        cpu_model.write_bytes(art.model_bytes)
        res = compile_for_edgetpu(cpu_model, Path(tmp) / "out")
        files = dict(art.files)
        if res.compiled:
            assert res.edgetpu_path is not None and res.log_path is not None
            files[OUTPUT_NAME] = res.edgetpu_path.read_bytes()
            files[LOG_NAME] = res.log_path.read_bytes()
    record = res.to_dict()
    for key in ("edgetpu_path", "log_path"):  # names inside the export folder, not the temporary one
        if record.get(key):
            record[key] = Path(record[key]).name
    sidecar = {**art.sidecar, "edgetpu": record}
    if res.compiled:
        # the compiled model is what a device runs (with the libedgetpu delegate); the CPU int8 model stays beside it
        sidecar.update(format=Format.EDGETPU_TFLITE.value, cpu_file=tflite.MODEL_FILE, file=OUTPUT_NAME)
        return Artifact(Format.EDGETPU_TFLITE, OUTPUT_NAME, files, sidecar, notes(res), verify_file=tflite.MODEL_FILE)
    return Artifact(Format.TFLITE, tflite.MODEL_FILE, files, sidecar, notes(res))


def notes(res: EdgeTpuCompileResult) -> list[str]:
    """What the compiler did (or why it did not run), and each op that keeps the model off the Edge TPU."""
    pred = res.prediction
    out = [res.message]
    out.append(f"Edge TPU (edgepool's prediction): {pred.mapped_ops} ops mapped, {pred.cpu_ops} on the CPU")
    cpu = [op for op in pred.ops if not op.on_tpu]
    # the ops that cannot run there themselves; the rest only follow them (one partition)
    own = [op for op in cpu if op is cpu[0] or "not in the Edge TPU" in (op.reason or "")]
    for op in own:
        out.append(f"  CPU op {op.index} {op.name}: {op.reason}" + (f" -> {op.suggestion}" if op.suggestion else ""))
    if len(cpu) > len(own):
        out.append(f"  and {len(cpu) - len(own)} more ops after them on the CPU (`edgepool inspect --profile coral-usb` lists each)")
    return out

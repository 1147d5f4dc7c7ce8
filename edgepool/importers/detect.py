"""What a model file really is, from its content (magic bytes, zip members, saved_model.pb), not its name.

Reads a few bytes (and a zip's member list and small metadata.json) in this process; nothing is
parsed by a model library here. A file whose content disagrees with its extension is refused.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError

# kinds of model files edgepool imports
KERAS2 = "keras2"  # tf_keras (Keras 2): .keras archive or .h5
KERAS3 = "keras3"  # Keras 3 .keras archive (or .h5 written by Keras 3)
SAVEDMODEL = "savedmodel"  # a TensorFlow SavedModel folder
ONNX = "onnx"
TFLITE = "tflite"

DESCRIPTION = {
    KERAS2: "a tf_keras (Keras 2) model", KERAS3: "a Keras 3 model", SAVEDMODEL: "a TensorFlow SavedModel",
    ONNX: "an ONNX model", TFLITE: "a TFLite model",
}

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
# what each extension promises, by content family
_EXTENSIONS = {".keras": "keras-archive", ".h5": "hdf5", ".hdf5": "hdf5", ".onnx": "onnx", ".tflite": "tflite"}
_FAMILY_WORDS = {"keras-archive": "a Keras .keras archive", "hdf5": "an HDF5 (.h5) Keras file", "onnx": "an ONNX model",
                 "tflite": "a TFLite flatbuffer", "zip": "a zip archive that is not a Keras model"}
_SUFFIX_FOR = {"keras-archive": ".keras", "hdf5": ".h5", "onnx": ".onnx", "tflite": ".tflite"}
HINT_KINDS = "pass a .keras / .h5 Keras file, a SavedModel folder, an .onnx or a .tflite file"


@dataclass(frozen=True)
class Detected:
    """A model file and what its content says it is."""

    path: Path
    kind: str  # KERAS2 | KERAS3 | SAVEDMODEL | ONNX | TFLITE
    keras_version: str | None = None  # from a Keras file's own metadata

    @property
    def description(self) -> str:
        return DESCRIPTION[self.kind]


def detect(path: str | Path) -> Detected:
    """Which kind of model `path` holds (ModelError when it is none, or not what its extension says)."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model {p} does not exist", "check the path")
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return Detected(p, SAVEDMODEL)
        raise ModelError(f"{p} is a folder without saved_model.pb: not a SavedModel", HINT_KINDS)
    if p.name in ("saved_model.pb", "saved_model.pbtxt"):
        raise ModelError(f"{p} is the graph file of a SavedModel", f"pass the folder that holds it ({p.parent})")
    try:
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise ModelError(f"cannot read {p}: {e.strerror or e}", "check the file's permissions") from None
    family = _family(p, head)
    promised = _EXTENSIONS.get(p.suffix.lower())
    if family is None:
        what = "empty" if not head else "not a model file edgepool can read"
        raise ModelError(f"{p} is {what} (its content is not a Keras, SavedModel, ONNX or TFLite model)", HINT_KINDS)
    if promised is not None and promised != family:
        fix = f"rename it to {_SUFFIX_FOR[family]} if that is what it is, or" if family in _SUFFIX_FOR else "check it is the file you meant, or"
        raise ModelError(f"{p} holds {_FAMILY_WORDS[family]}, not {_FAMILY_WORDS[promised]} as its extension says",
                         f"{fix} pass the right file")
    if family == "tflite":
        return Detected(p, TFLITE)
    if family == "onnx":
        return Detected(p, ONNX)
    if family == "hdf5":  # Keras 2 or 3: the child reads the file's keras_version (HDF5 is parsed there, not here)
        return Detected(p, KERAS2)
    if family == "keras-archive":
        version = _archive_keras_version(p)
        return Detected(p, KERAS3 if version is None or version.startswith("3") else KERAS2, version)
    raise ModelError(f"{p} is a zip archive without a Keras config.json: not a Keras model", HINT_KINDS)


def _family(p: Path, head: bytes) -> str | None:
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(p) as z:
                names = set(z.namelist())
        except (zipfile.BadZipFile, OSError):
            return None
        return "keras-archive" if "config.json" in names else "zip"
    if _looks_like_onnx(head):
        return "onnx"
    return None


def _looks_like_onnx(head: bytes) -> bool:
    """An ONNX ModelProto starts with field 1 (ir_version, a small varint) and then producer / graph fields."""
    if len(head) < 4 or head[0] != 0x08 or not (1 <= head[1] <= 20):
        return False
    # the next field is one of ModelProto's: 2 producer_name, 3 producer_version, 4 domain, 5 model_version,
    # 6 doc_string, 7 graph, 8 opset_import, 14 metadata_props, 20 training_info, 25 functions (length-delimited or varint)
    tag = head[2]
    return (tag >> 3) in (2, 3, 4, 5, 6, 7, 8, 14, 20, 25) and (tag & 7) in (0, 2)


def _archive_keras_version(p: Path) -> str | None:
    try:
        with zipfile.ZipFile(p) as z:
            if "metadata.json" not in z.namelist() or z.getinfo("metadata.json").file_size > 1 << 20:
                return None
            meta = json.loads(z.read("metadata.json"))
    except (zipfile.BadZipFile, OSError, ValueError, KeyError):
        return None
    v = meta.get("keras_version") if isinstance(meta, dict) else None
    return str(v) if v else None

"""Bring your own model: a Keras, SavedModel, ONNX or TFLite file -> a run directory every command works on.

    detect(path)                          what a file really is (content, not extension)
    import_model(path, dataset, out)      -> ImportResult (the run, what was detected, notes)

Loading is safe by default: Keras files load in safe mode (no Lambda code), and every model is parsed,
converted and run in a child process (`_child.py`). See `core` for the run layout.
"""

from __future__ import annotations

from .core import (
    IMPORTED_EXPORT,
    NORMALIZATIONS,
    CustomObjectError,
    ImportResult,
    UnsafeModelError,
    import_model,
    parse_normalization,
    qat_refusal,
    read_labels,
    reference_logits,
    reference_name,
    source_record,
)
from .detect import KERAS2, KERAS3, ONNX, SAVEDMODEL, TFLITE, Detected, detect

__all__ = [
    "IMPORTED_EXPORT", "KERAS2", "KERAS3", "NORMALIZATIONS", "ONNX", "SAVEDMODEL", "TFLITE", "CustomObjectError", "Detected",
    "ImportResult", "UnsafeModelError", "detect", "import_model", "parse_normalization", "qat_refusal", "read_labels",
    "reference_logits", "reference_name", "source_record",
]

"""Embed / read the edgepool sidecar as JSON in a .tflite file's `metadata` section (name "edgepool").

A single .tflite file is then self-describing (labels, normalization, quantization, recipe); apps
and `edgepool inspect` read it. Uses the flatbuffer schema shipped with LiteRT, not TensorFlow.
"""

from __future__ import annotations

import json
from typing import Any

METADATA_NAME = "edgepool"


def embed(model: bytes, meta: dict[str, Any]) -> bytes:
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    payload = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode("utf-8")
    buf = schema.BufferT()
    buf.data = np.frombuffer(payload, dtype=np.uint8)
    m.buffers = list(m.buffers or [])
    m.metadata = [md for md in (m.metadata or []) if md.name != METADATA_NAME.encode() and md.name != METADATA_NAME]
    m.buffers.append(buf)
    md = schema.MetadataT()
    md.name = METADATA_NAME
    md.buffer = len(m.buffers) - 1
    m.metadata.append(md)
    b = flatbuffers.Builder(len(model) + len(payload) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def read(model: bytes) -> dict[str, Any] | None:
    """The embedded edgepool metadata, or None when the file has none."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAs(model, 0)
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if md.Name() == METADATA_NAME.encode():
            data = m.Buffers(md.Buffer()).DataAsNumpy()
            return json.loads(bytes(data).decode("utf-8"))
    return None

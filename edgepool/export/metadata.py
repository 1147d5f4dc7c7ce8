"""Embed / read the edgepool sidecar as JSON in a .tflite file's `metadata` section (name "edgepool").

A single .tflite file is then self-describing (labels, normalization, quantization, recipe); apps
and `edgepool inspect` read it. Uses the flatbuffer schema shipped with LiteRT, not TensorFlow.
`strip` removes it again and `content_hash` hashes a model without it: exports of one model for
several profiles (whose embedded sidecars differ) are the same model to a benchmark.
"""

from __future__ import annotations

import hashlib
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


def _is_ours(md: object) -> bool:
    name = getattr(md, "name", None)
    return name in (METADATA_NAME, METADATA_NAME.encode())


def strip(model: bytes) -> bytes:
    """The model without its edgepool metadata (the entry and the buffer holding it, and any buffer that
    nothing refers to, such as one an earlier embed left behind), re-serialized; the bytes unchanged
    when it has none. Raises whatever the flatbuffer reader raises on a broken file."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    if read(model) is None:
        return model
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    m.metadata = [md for md in m.metadata or [] if not _is_ours(md)]
    buffers = list(m.buffers or [])
    used = {md.buffer for md in m.metadata}
    for sg in m.subgraphs or []:
        used.update(t.buffer for t in sg.tensors or [])
    # buffers nothing refers to are emptied (ours, and those an earlier embed left behind; indices of the
    # others stay), then the trailing empty unused ones dropped
    for i in range(len(buffers)):
        if i not in used and not _empty(buffers[i]):
            buffers[i] = schema.BufferT()
    while buffers and len(buffers) - 1 not in used and _empty(buffers[-1]):
        buffers.pop()
    m.buffers = buffers
    b = flatbuffers.Builder(len(model) + 1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _empty(buf: object) -> bool:
    data = getattr(buf, "data", None)
    return (data is None or len(data) == 0) and not getattr(buf, "size", 0)


def content_hash(model: bytes) -> str:
    """sha256 (hex) of the model without its edgepool metadata (`strip`): two exports that differ only in
    their embedded sidecar hash the same. A model without edgepool metadata, or one the reader cannot
    parse (or a machine without LiteRT's schema), hashes its bytes as they are."""
    try:
        data = strip(model)
    except Exception:  # noqa: BLE001 - a broken file is hashed as it is; the benchmark reports it
        data = model
    return hashlib.sha256(data).hexdigest()

#!/usr/bin/env python3
"""Classify images with an edgepool TFLite export on a Raspberry Pi (or any Linux board).

    python3 classify.py EXPORT IMAGE... [--top-k 3] [--threads 4] [--edgetpu] [--json]

EXPORT is an export folder (model.tflite + model.json, as `edgepool export` / `convert` write it) or a
lone .tflite that carries edgepool's embedded metadata. Needs only a TFLite runtime (tflite-runtime,
ai-edge-litert or tensorflow), numpy, and Pillow for PNG/JPEG. Without Pillow it reads binary
PGM/PPM (P5/P6) and .npy images that already have the model's input size.

What it does is the model.json contract (edgepool/data/schemas/model.schema.json):
    x = raw * normalization.scale + normalization.offset          (raw: 0..255 pixels, NHWC)
    q = clip(round(x / input.scale + input.zero_point))           (integer inputs only)
    y = (q_out - output.zero_point) * output.scale                (integer outputs only)
    probabilities = softmax(y) when output_kind is "logits"
Images are read as `edgepool train` reads an image folder: 16-bit scaled to 0..255, alpha composited on
white, converted to grayscale / RGB, resized bilinearly. `edgepool predict EXPORT IMAGES` prints the
same classes on the same images (the tests check it on an emulated Pi).

--edgetpu runs the Edge TPU model of an Edge TPU export (model_edgetpu.tflite) with the libedgetpu
delegate (Coral USB / M.2 / Dev Board); without it, the CPU model the export also holds.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".npy")
EDGETPU_LIB = {"linux": "libedgetpu.so.1", "darwin": "libedgetpu.1.dylib", "win32": "edgetpu.dll"}


class Failure(Exception):
    """One line for the user, exit code 2."""


# ------------------------------------------------------------------ the runtime

def runtime():
    """(Interpreter class, load_delegate, name): tflite-runtime, else ai-edge-litert, else TensorFlow Lite."""
    try:
        from tflite_runtime.interpreter import Interpreter, load_delegate
        return Interpreter, load_delegate, "tflite-runtime"
    except ImportError:
        pass
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate
        return Interpreter, load_delegate, "ai-edge-litert"
    except ImportError:
        pass
    try:
        import tensorflow as tf  # noqa: TID251 - a stand-alone script, not edgepool
        return tf.lite.Interpreter, tf.lite.experimental.load_delegate, "tensorflow"
    except ImportError:
        raise Failure("no TFLite runtime: pip install tflite-runtime (or ai-edge-litert)") from None


# ------------------------------------------------------------------ the metadata

def _table(buf: bytes, pos: int):
    """A flatbuffer table at `pos`: a function field(i) -> absolute position of field i, or None."""
    vtable = pos - struct.unpack_from("<i", buf, pos)[0]
    vlen = struct.unpack_from("<H", buf, vtable)[0]

    def field(i: int):
        off = 4 + 2 * i
        if off >= vlen:
            return None
        rel = struct.unpack_from("<H", buf, vtable + off)[0]
        return pos + rel if rel else None
    return field


def _deref(buf: bytes, pos: int) -> int:
    return pos + struct.unpack_from("<I", buf, pos)[0]


def _vector(buf: bytes, pos: int):
    start = _deref(buf, pos)
    return struct.unpack_from("<I", buf, start)[0], start + 4


def embedded_metadata(model: bytes):
    """The sidecar edgepool embeds in a .tflite (metadata entry "edgepool"), read from the flatbuffer
    (TFLite schema: Model.buffers = field 4, Model.metadata = field 6; Metadata.name = 0, .buffer = 1;
    Buffer.data = 0), so no schema package is needed. None when the file has none."""
    root = _deref(model, 0)
    m = _table(model, root)
    if m(6) is None or m(4) is None:
        return None
    n_meta, meta0 = _vector(model, m(6))
    n_buf, buf0 = _vector(model, m(4))
    for i in range(n_meta):
        md = _table(model, _deref(model, meta0 + 4 * i))
        if md(0) is None or md(1) is None:
            continue
        name_len, name_at = _vector(model, md(0))
        if model[name_at:name_at + name_len] != b"edgepool":
            continue
        index = struct.unpack_from("<I", model, md(1))[0]
        if index >= n_buf:
            return None
        b = _table(model, _deref(model, buf0 + 4 * index))
        if b(0) is None:
            return None
        size, data_at = _vector(model, b(0))
        return json.loads(model[data_at:data_at + size].decode("utf-8"))
    return None


def open_export(path: str, edgetpu: bool):
    """(model file, sidecar) of an export folder, a model file in one, or a lone .tflite with metadata."""
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    side_path = os.path.join(folder, "model.json")
    if os.path.isfile(side_path):
        with open(side_path) as f:
            side = json.load(f)
        if side.get("format") == "coreml":
            raise Failure(f"{path} is a Core ML export: run it on an iPhone or a Mac (examples/ios)")
        if side.get("format") == "edgetpu-tflite" and not edgetpu:
            name = side.get("cpu_file", "model.tflite")  # the CPU model it was compiled from
        else:
            name = side["file"]
        if edgetpu and side.get("format") != "edgetpu-tflite":
            print(f"note: {path} is not an Edge TPU export; running its CPU model on the Edge TPU delegate "
                  "leaves every op on the CPU", file=sys.stderr)
        model = path if os.path.isfile(path) and path.endswith(".tflite") else os.path.join(folder, name)
        return model, side
    if os.path.isfile(path):
        with open(path, "rb") as f:
            side = embedded_metadata(f.read())
        if side is None:
            raise Failure(f"{path} carries no edgepool metadata and has no model.json beside it")
        return path, side
    raise Failure(f"{path}: not an export folder or a .tflite file")


# ------------------------------------------------------------------ the images

def image_files(items):
    out = []
    for item in items:
        if os.path.isdir(item):
            for d, _, names in sorted(os.walk(item)):
                out += [os.path.join(d, n) for n in sorted(names) if n.lower().endswith(IMAGE_SUFFIXES)]
        elif os.path.isfile(item):
            out.append(item)
        else:
            raise Failure(f"image {item} does not exist")
    if not out:
        raise Failure("no images found")
    return out


def _netpbm(path: str) -> np.ndarray:
    """Binary PGM (P5) / PPM (P6), 8 or 16 bit -> H x W x C (uint8 or uint16)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] not in (b"P5", b"P6"):
        raise Failure(f"{path}: only binary PGM/PPM (P5/P6) can be read without Pillow")
    fields, pos = [], 2
    while len(fields) < 3:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(int(data[pos:end]))
        pos = end
    pos += 1  # the single whitespace after maxval
    w, h, maxval = fields
    c = 1 if data[:2] == b"P5" else 3
    dtype = ">u2" if maxval > 255 else "u1"
    return np.frombuffer(data, dtype, w * h * c, pos).reshape(h, w, c)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float64)
    top = 65535.0 if a.max() > 255 else 255.0
    return np.clip(np.round(a * (255.0 / top)), 0, 255).astype(np.uint8)


def _channels(a: np.ndarray, channels: int) -> np.ndarray:
    if a.shape[-1] == channels:
        return a
    if channels == 3:
        return np.repeat(a, 3, axis=-1)
    # ITU-R 601-2 luma in Pillow's fixed point (convert("L"))
    r, g, b = (a[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[..., None]


def load_image(path: str, height: int, width: int, channels: int) -> np.ndarray:
    """Raw uint8 H x W x C pixels, prepared as edgepool prepares an image folder."""
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if path.lower().endswith(".npy") or Image is None:
        a = np.load(path) if path.lower().endswith(".npy") else _netpbm(path)
        a = _to_uint8(a if a.ndim == 3 else a[..., None])
        if a.shape[-1] == 4:
            raise Failure(f"{path}: images with alpha need Pillow (pip install Pillow)")
        a = _channels(a, channels)
        if a.shape[:2] != (height, width):
            raise Failure(f"{path} is {a.shape[0]}x{a.shape[1]}, the model takes {height}x{width}: "
                          "install Pillow to resize (pip install Pillow)")
        return a
    with Image.open(path) as im:
        im.load()
        if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            im = Image.fromarray(_to_uint8(np.asarray(im, dtype=np.float64)))
        if im.mode == "P":
            im = im.convert("RGBA")
        if im.mode == "RGBA":
            im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im).convert("RGB")
        elif im.mode == "LA":
            im = im.convert("L")
        im = im.convert("L" if channels == 1 else "RGB")
        if im.size != (width, height):
            im = im.resize((width, height), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


# ------------------------------------------------------------------ the model

def classify(model_path: str, side: dict, files, top_k: int, threads, edgetpu: bool):
    Interpreter, load_delegate, name = runtime()
    delegates = []
    if edgetpu:
        lib = EDGETPU_LIB.get(sys.platform, EDGETPU_LIB["linux"])
        try:
            delegates = [load_delegate(lib)]
        except (ValueError, OSError) as e:
            raise Failure(f"cannot load the Edge TPU delegate {lib}: {e} (install libedgetpu1-std and plug in the Coral)") from None
    with open(model_path, "rb") as f:
        it = Interpreter(model_content=f.read(), num_threads=threads, experimental_delegates=delegates or None)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    shape = [int(d) for d in side["input"]["shape"]]
    shape = [1, *shape] if len(shape) == 3 else shape
    n, h, w, c = shape if side["input"].get("layout") != "NCHW" else (shape[0], shape[2], shape[3], shape[1])
    norm = side["normalization"]
    labels = side["labels"]
    # quantization from model.json (the runtime's own figures for the same tensors when it has none)
    inp, outp = side["input"], side["output"]
    in_scale, in_zp = (inp["scale"], inp["zero_point"]) if inp["scale"] is not None else i["quantization"]
    out_scale, out_zp = (outp["scale"], outp["zero_point"]) if outp["scale"] is not None else o["quantization"]
    if inp["dtype"] != np.dtype(i["dtype"]).name or outp["dtype"] != np.dtype(o["dtype"]).name:
        raise Failure(f"{model_path} does not match its model.json (input {inp['dtype']}, output {outp['dtype']})")
    results = []
    for path in files:
        x = load_image(path, h, w, c).astype(np.float32) * np.float32(norm["scale"]) + np.float32(norm["offset"])
        x = x[None].astype(np.float32)
        if i["dtype"] in (np.int8, np.uint8):
            info = np.iinfo(i["dtype"])
            x = np.clip(np.round(x / in_scale + in_zp), info.min, info.max)
        it.set_tensor(i["index"], x.astype(i["dtype"]))
        it.invoke()
        y = it.get_tensor(o["index"]).astype(np.float32)
        if o["dtype"] in (np.int8, np.uint8):
            y = (y - out_zp) * out_scale
        y = y.reshape(-1)
        if side.get("output_kind", "logits") == "logits":
            e = np.exp(y.astype(np.float64) - y.max())
            p = e / e.sum()
        else:
            p = y.astype(np.float64)
        order = np.argsort(-y, kind="stable")[:top_k]
        top = [{"label": labels[k], "index": int(k), "score": float(p[k])} for k in order]
        results.append({"path": path, "label": top[0]["label"], "index": top[0]["index"], "score": top[0]["score"],
                        "top": top, "outputs": [float(v) for v in y]})
    return results, name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("export", help="export folder, or a .tflite with edgepool metadata")
    ap.add_argument("images", nargs="+", help="image files or folders")
    ap.add_argument("--top-k", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--edgetpu", action="store_true", help="run the Edge TPU model with the libedgetpu delegate")
    ap.add_argument("--json", action="store_true", help="one JSON object per image")
    a = ap.parse_args(argv)
    try:
        model, side = open_export(a.export, a.edgetpu)
        results, name = classify(model, side, image_files(a.images), max(1, a.top_k), a.threads, a.edgetpu)
    except Failure as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in results:
        if a.json:
            print(json.dumps(r))
        else:
            rest = ", ".join(f"{t['label']} {100 * t['score']:.1f}%" for t in r["top"][1:])
            print(f"{r['path']}: {r['label']} ({100 * r['score']:.1f}%)" + (f"  next: {rest}" if rest else ""))
    if not a.json:
        print(f"({len(results)} images, {name}, {os.path.basename(model)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Child process: run a .tflite model (loaded from bytes) over float inputs, write dequantized outputs.

Usage: python -m edgepool.verify._tflite_child MODEL INPUTS.npy OUTPUTS.npy
   or: python -I /path/to/_tflite_child.py MODEL INPUTS.npy OUTPUTS.npy   (another Python, e.g. a device runtime's)

Runs apart from the CLI so a crash in the runtime cannot take the CLI down (DESIGN.md, Conventions).
Imports only numpy and a TFLite runtime: `ai_edge_litert`, else `tflite_runtime` (what a Raspberry Pi
OS venv holds), so it runs in a Python where edgepool is not installed.

Protocol: the first stdout line is JSON {"runtime": "tflite-runtime", "version": "2.14.0"}. On failure
the last stderr line is one line, "error: <message>", and the exit code says where it failed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

EXIT_RUN = 1  # the model loaded but failed while running
EXIT_NO_RUNTIME = 3  # neither ai_edge_litert nor tflite_runtime can be imported
EXIT_LOAD = 4  # the runtime refused the model (e.g. an op version it does not have)


def interpreter_class() -> tuple[Any, str, str]:
    """(Interpreter class, runtime package name, its version)."""
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert", str(getattr(ai_edge_litert, "__version__", "unknown"))
    except ImportError:
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime", str(getattr(tflite_runtime, "__version__", "unknown"))


def load(model: bytes, interpreter: Any = None) -> Any:
    """An interpreter holding `model` with its tensors allocated (where a runtime refuses an op)."""
    if interpreter is None:
        interpreter = interpreter_class()[0]
    it = interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    return it


def run(model: bytes, x: np.ndarray, it: Any = None) -> np.ndarray:
    it = load(model) if it is None else it
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    in_scale, in_zp = i["quantization"]
    out_scale, out_zp = o["quantization"]
    outs = []
    for sample in x:
        v = sample[None]
        if i["dtype"] in (np.int8, np.uint8):
            info = np.iinfo(i["dtype"])
            v = np.clip(np.round(v / in_scale + in_zp), info.min, info.max)
        it.set_tensor(i["index"], v.astype(i["dtype"]))
        it.invoke()
        y = it.get_tensor(o["index"]).astype(np.float32)
        if o["dtype"] in (np.int8, np.uint8):
            y = (y - out_zp) * out_scale
        outs.append(y[0])
    return np.stack(outs)


def _fail(code: int, e: BaseException | str) -> int:
    msg = e if isinstance(e, str) else (" ".join(str(e).split()) or type(e).__name__)
    print(f"error: {msg}", file=sys.stderr)
    return code


def main() -> int:
    model_path, in_path, out_path = sys.argv[1:4]
    try:
        interpreter, name, version = interpreter_class()
    except ImportError:
        return _fail(EXIT_NO_RUNTIME, f"{sys.executable} has no TFLite runtime (neither ai_edge_litert nor tflite_runtime)")
    print(json.dumps({"runtime": name, "version": version}), flush=True)
    with open(model_path, "rb") as f:
        model = f.read()
    try:
        it = load(model, interpreter)
    except Exception as e:  # the runtime's own message says why it refused the model
        return _fail(EXIT_LOAD, e)
    try:
        np.save(out_path, run(model, np.load(in_path), it))
    except Exception as e:
        return _fail(EXIT_RUN, e)
    return 0


if __name__ == "__main__":
    sys.exit(main())

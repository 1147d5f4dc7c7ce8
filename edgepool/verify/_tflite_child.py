"""Child process: run a .tflite model (loaded from bytes) over float inputs, write dequantized outputs.

Usage: python -m edgepool.verify._tflite_child MODEL INPUTS.npy OUTPUTS.npy
Runs apart from the CLI so a crash in the runtime cannot take the CLI down (DESIGN.md, Conventions).
Imports only numpy and ai_edge_litert.
"""

from __future__ import annotations

import sys

import numpy as np


def run(model: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
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


def main() -> int:
    model_path, in_path, out_path = sys.argv[1:4]
    with open(model_path, "rb") as f:
        model = f.read()
    np.save(out_path, run(model, np.load(in_path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Models edgepool did not train, for the bring-your-own-model tests and `benchmarks/byom.py`.

One small tf_keras CNN is trained on digits (a few seconds); every other format is made from its
weights, so each import path gets a model that really classifies digits:

    keras2_h5         the tf_keras model saved as .h5 (Keras 2)
    keras3_keras      the same architecture in Keras 3, weights copied, saved as .keras
    savedmodel        tf.saved_model.save of the tf_keras model (a serving signature, no Keras metadata)
    onnx              the same network written with the `onnx.helper` API (NCHW, weights transposed; no torch)
    tflite            TFLiteConverter output of the tf_keras model (float32)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

FILTERS = 8


def digits_xy() -> tuple[np.ndarray, np.ndarray]:
    from edgepool.datasets import load_dataset

    ds = load_dataset("digits")
    return ds.x.astype(np.float32) / 255.0, ds.y


@functools.cache
def train_base(epochs: int = 4, seed: int = 0) -> Any:
    """A tiny tf_keras CNN on digits (NHWC 8x8x1, raw/255): Conv 3x3 (8, relu) -> MaxPool 2 -> Flatten -> Dense 10.
    Trained once per process (cached): every test reads it, none changes it."""
    from edgepool._tf import keras

    K = keras()
    K.utils.set_random_seed(seed)
    x, y = digits_xy()
    inp = K.Input((8, 8, 1), name="image")
    h = K.layers.Conv2D(FILTERS, 3, activation="relu", name="conv")(inp)
    h = K.layers.MaxPooling2D(2, name="pool")(h)
    h = K.layers.Flatten(name="flat")(h)
    out = K.layers.Dense(10, name="logits")(h)
    m = K.Model(inp, out, name="byom_base")
    m.compile(optimizer=K.optimizers.Adam(0.01), loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return m


def keras2_h5(base: Any, d: Path) -> Path:
    p = Path(d) / "net.h5"
    base.save(p)
    return p


def keras2_keras(base: Any, d: Path) -> Path:
    p = Path(d) / "net_tfkeras.keras"
    base.save(p)
    return p


def savedmodel(base: Any, d: Path) -> Path:
    from edgepool._tf import tf

    p = Path(d) / "net_savedmodel"
    t = tf()
    fn = t.function(lambda x: {"logits": base(x)}, input_signature=[t.TensorSpec([None, 8, 8, 1], t.float32, name="image")])
    t.saved_model.save(base, str(p), signatures={"serving_default": fn})
    return p


def keras3_layers(keras3: Any, lambda_fn: Any = None) -> Any:
    L = keras3.layers
    inp = keras3.Input((8, 8, 1), name="image")
    h = L.Conv2D(FILTERS, 3, activation="relu", name="conv")(inp)
    if lambda_fn is not None:
        h = L.Lambda(lambda_fn, name="side_effect")(h)
    h = L.MaxPooling2D(2, name="pool")(h)
    h = L.Flatten(name="flat")(h)
    out = L.Dense(10, name="logits")(h)
    return keras3.Model(inp, out)


def keras3_keras(base: Any, d: Path, lambda_fn: Any = None, name: str = "net3.keras") -> Path:
    import keras as keras3

    m = keras3_layers(keras3, lambda_fn)
    m.set_weights(base.get_weights())
    p = Path(d) / name
    m.save(p)
    return p


def onnx_model(base: Any, d: Path, *, batch: int | str = 1, name: str = "net.onnx", nhwc: bool = False) -> Path:
    """The base network as ONNX (NCHW input `x` [batch, 1, 8, 8]; `nhwc`: input [batch, 8, 8, 1] transposed inside)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k, b, w, bias = base.get_weights()  # conv HWIO, conv bias, dense (h*w*c, 10), dense bias
    conv_w = np.transpose(k, (3, 2, 0, 1)).astype(np.float32)  # OIHW
    hp = wp = 3  # after conv 3x3 (6x6) and max-pool 2 (3x3)
    # Keras flattens (h, w, c); ONNX Flatten of NCHW gives (c, h, w): reorder the dense rows
    idx = np.arange(hp * wp * FILTERS).reshape(hp, wp, FILTERS).transpose(2, 0, 1).reshape(-1)
    dense_w = w[idx].T.astype(np.float32)  # (10, c*h*w) for Gemm transB
    nodes = []
    x_in = "x"
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2]))
        x_in = "x_nchw"
    nodes += [
        helper.make_node("Conv", [x_in, "W", "B"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "W2", "B2"], ["logits"], transB=1),
    ]
    shape = [batch, 8, 8, 1] if nhwc else [batch, 1, 8, 8]
    graph = helper.make_graph(
        nodes, "byom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        [numpy_helper.from_array(a, n) for a, n in ((conv_w, "W"), (b.astype(np.float32), "B"), (dense_w, "W2"),
                                                     (bias.astype(np.float32), "B2"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edgepool-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    p = Path(d) / name
    onnx.save(model, str(p))
    return p


def onnx_with_op(d: Path, op: str = "Celu", name: str = "odd.onnx") -> Path:
    """A tiny valid ONNX model whose one op is `op` (for the unsupported-op message)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], domain="com.example")], "odd",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.example", 1)])
    model.ir_version = 8
    p = Path(d) / name
    onnx.save(model, str(p))
    return p


def tflite(base: Any, d: Path, name: str = "net.tflite") -> Path:
    from edgepool._tf import quiet_stderr, tf

    with quiet_stderr():
        data = tf().lite.TFLiteConverter.from_keras_model(base).convert()
    p = Path(d) / name
    p.write_bytes(data)
    return p


CUSTOM_LAYER_MODULE = '''
from edgepool._tf import keras

K = keras()


class Scale(K.layers.Layer):
    """Multiplies by a learned scalar: a custom layer the loader cannot know without this module."""

    def __init__(self, init=1.0, **kw):
        super().__init__(**kw)
        self.init = init

    def build(self, shape):
        self.s = self.add_weight(name="s", shape=(), initializer=K.initializers.Constant(self.init))

    def call(self, x):
        return x * self.s

    def get_config(self):
        return {**super().get_config(), "init": self.init}
'''


def custom_layer_model(base: Any, d: Path, module: str = "byom_layers") -> Path:
    """A tf_keras .keras whose last layer is a custom class defined in `d/<module>.py` (import it from `d`)."""
    import importlib
    import sys

    from edgepool._tf import keras

    K = keras()
    (Path(d) / f"{module}.py").write_text(CUSTOM_LAYER_MODULE)
    sys.path.insert(0, str(d))
    try:
        mod = importlib.import_module(module)
    finally:
        sys.path.remove(str(d))
    inp = K.Input((8, 8, 1), name="image")
    out = mod.Scale(2.0, name="scale")(base(inp))
    m = K.Model(inp, out)
    p = Path(d) / "custom.keras"
    m.save(p)
    sys.modules.pop(module, None)
    return p

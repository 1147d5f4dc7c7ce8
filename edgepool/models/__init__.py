"""Model zoo: a `ModelSpec` describes a lightweight pooling CNN; `build_model` makes the tf_keras Model.

A block is conv -> batch-norm -> ReLU (optionally depthwise-separable, optionally repeated), then one
downsampling step chosen per block: `max`, `avg`, `l2` (L2/Lp pooling), `strided` (a learned
stride-s 3x3 conv), `none`, or a layer of `edgepool.layers`: `adaptive-max` / `adaptive-avg`
(adaptive pooling to the size max pooling would give, with PyTorch's bins: overlapping windows where
the stride does not divide the map), `stochastic` (stochastic pooling). The head is `flatten`,
`global-avg`, `global-max`, `spp` (spatial pyramid pooling, levels 1, 2, 4 as far as the last map
allows) or `attention` (attention pooling), then dropout and a Dense layer that outputs logits.
`with_pool("spp")` / `with_pool("attention")` keep the blocks and set the head.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, ModelError

if TYPE_CHECKING:
    from ..runs import Run

POOLS = ("max", "avg", "l2", "strided", "none", "adaptive-max", "adaptive-avg", "stochastic")
HEADS = ("flatten", "global-avg", "global-max", "spp", "attention")
HEAD_POOLS = ("spp", "attention")  # pooling choices that replace the head, not the blocks' downsampling
POOL_CHOICES = POOLS + HEAD_POOLS
SPP_LEVELS = (1, 2, 4)
PADDINGS = ("same", "valid")
# Small data sets take few steps per epoch: a faster moving average keeps BN statistics usable early.
BN_MOMENTUM = 0.9


@dataclass
class BlockSpec:
    filters: int
    pool: str = "max"
    pool_size: int = 2
    pool_stride: int | None = None  # defaults to pool_size
    padding: str = "same"  # padding of the downsampling step
    separable: bool = False
    convs: int = 1
    kernel: int = 3


@dataclass
class ModelSpec:
    name: str
    blocks: list[BlockSpec]
    head: str = "flatten"
    width: float = 1.0
    dropout: float = 0.25
    description: str = ""
    # Inputs this small or smaller (e.g. 8x8 digits) keep full resolution through the first block:
    # pooling them at once throws away most of the image. 0 turns it off.
    full_res_stem_max: int = 12

    def with_pool(self, pool: str) -> ModelSpec:
        """The same spec with every block's downsampling set to `pool` (a head pool: the head set to it)."""
        check_choice("pool", pool, POOL_CHOICES)
        if pool in HEAD_POOLS:
            return dataclasses.replace(self, head=pool, blocks=[dataclasses.replace(b) for b in self.blocks])
        return dataclasses.replace(self, blocks=[dataclasses.replace(b, pool=pool) for b in self.blocks])

    def count(self, input_shape: tuple[int, int, int], num_classes: int) -> tuple[int, int]:
        """(parameters, MACs) of the model `build_model` makes, by arithmetic: no TensorFlow, no model."""
        return _count(self, input_shape, num_classes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        d = dict(d)
        d["blocks"] = [BlockSpec(**b) for b in d["blocks"]]
        return cls(**d)

    def validate(self, names: Mapping[str, str] | None = None) -> None:
        """Check every field; `names` maps a field to what the caller calls it in messages (a CLI flag)."""
        if not self.blocks:
            raise InputError(f"model {self.name!r} has no blocks", "give at least one conv block")
        check_choice("head", self.head, HEADS)
        check_range("width", self.width, 0, 8, names=names, low_open=True,
                    hint="the width multiplies every block's filter count: use a value in (0, 8], e.g. 0.5 for half")
        check_range("dropout", self.dropout, 0, 1, names=names, high_open=True, hint="use a value in [0, 1)")
        for i, b in enumerate(self.blocks):
            check_choice(f"block {i} pool", b.pool, POOLS)
            check_choice(f"block {i} padding", b.padding, PADDINGS)
            if b.filters < 1 or b.pool_size < 1 or b.convs < 1 or b.kernel < 1:
                raise InputError(f"block {i} has a non-positive size", "filters, pool_size, convs and kernel must be >= 1")


def check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r}", f"choose one of: {', '.join(allowed)}")


def check_range(field: str, value: float, low: float | None = None, high: float | None = None, *,
                names: Mapping[str, str] | None = None, low_open: bool = False, high_open: bool = False,
                hint: str | None = None) -> None:
    """Fail (InputError) unless low <= value <= high (strict with `low_open` / `high_open`; NaN never passes).

    The message names the field as `names` calls it (a CLI passes its flags), else in words:
    "learning rate must be > 0 (got -1)".
    """
    label = (names or {}).get(field, field.replace("_", " "))
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    rule = None
    if low is not None and not (value > low if low_open else value >= low):
        rule = f"> {low:g}" if low_open else f">= {low:g}"
    elif high is not None and not (value < high if high_open else value <= high):
        rule = f"< {high:g}" if high_open else f"<= {high:g}"
    if rule is None:
        return
    if hint is None:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        hint = f"use a value in {lo or '(-inf'}, {hi or 'inf)'}"
    raise InputError(f"{label} must be {rule} (got {shown})", hint)


PRESETS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(
        "tiny",
        [BlockSpec(8), BlockSpec(16)],
        description="2 conv blocks (8, 16 filters); the smallest, for tests and microcontroller-sized budgets",
    ),
    "small": ModelSpec(
        "small",
        [BlockSpec(16), BlockSpec(32), BlockSpec(64)],
        description="3 conv blocks (16, 32, 64) + flatten head; the default",
    ),
    "small-ds": ModelSpec(
        "small-ds",
        [BlockSpec(16), BlockSpec(32, separable=True), BlockSpec(64, separable=True)],
        description="like small, with depthwise-separable convs in blocks 2-3: fewer MACs",
    ),
    "small-gap": ModelSpec(
        "small-gap",
        [BlockSpec(16), BlockSpec(32), BlockSpec(64)],
        head="global-avg",
        dropout=0.1,
        description="3 blocks + global-average head: size independent of the input resolution",
    ),
}
DEFAULT_PRESET = "small"


def preset(name: str) -> ModelSpec:
    if name not in PRESETS:
        raise InputError(f"unknown model {name!r}", f"choose one of: {', '.join(PRESETS)} (see `edgepool models`)")
    return dataclasses.replace(PRESETS[name])


def build_model(spec: ModelSpec, input_shape: tuple[int, int, int], num_classes: int, seed: int | None = None) -> Any:
    """Build the tf_keras Model for `spec` (float NHWC input, logits output)."""
    from .._tf import keras
    from ..layers import get as layer

    spec.validate()
    k = keras()
    L = k.layers
    counter = iter(range(10_000))

    def init() -> Any:  # a fresh initializer per layer, seeded from `seed` when given
        return k.initializers.GlorotUniform(seed=None if seed is None else seed * 1000 + next(counter))

    pools = [b.pool for b in spec.blocks]
    if max(input_shape[0], input_shape[1]) <= spec.full_res_stem_max:
        pools[0] = "none"
    h, w = input_shape[0], input_shape[1]
    sizes = []  # the map size after each block
    for i, pool in enumerate(pools):
        if pool != "none":
            h, w = _downsampled(spec, input_shape, i, h, w)
        sizes.append((h, w))
    inp = L.Input(shape=tuple(input_shape), name="image")
    x = inp
    for i, b in enumerate(spec.blocks):
        f = max(1, int(round(b.filters * spec.width)))
        for j in range(b.convs):
            name = f"b{i}_conv{j}"
            if b.separable and not (i == 0 and j == 0 and input_shape[-1] == 1):
                x = L.SeparableConv2D(f, b.kernel, padding="same", use_bias=False, name=name,
                                      depthwise_initializer=init(), pointwise_initializer=init())(x)
            else:
                x = L.Conv2D(f, b.kernel, padding="same", use_bias=False, name=name, kernel_initializer=init())(x)
            x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"b{i}_bn{j}")(x)
            x = L.ReLU(name=f"b{i}_relu{j}")(x)
        stride = b.pool_stride or b.pool_size
        if pools[i] == "none":
            pass
        elif b.pool == "max":
            x = L.MaxPooling2D(b.pool_size, stride, b.padding, name=f"b{i}_maxpool")(x)
        elif b.pool == "avg":
            x = L.AveragePooling2D(b.pool_size, stride, b.padding, name=f"b{i}_avgpool")(x)
        elif b.pool == "l2":
            x = layer("L2Pooling2D")(b.pool_size, stride, b.padding, name=f"b{i}_l2pool")(x)
        elif b.pool in ("adaptive-max", "adaptive-avg"):
            cls = layer("AdaptiveMaxPooling2D" if b.pool == "adaptive-max" else "AdaptiveAveragePooling2D")
            x = cls(sizes[i], name=f"b{i}_{b.pool.replace('-', '')}pool")(x)
        elif b.pool == "stochastic":
            x = layer("StochasticPooling2D")(b.pool_size, stride, b.padding, seed=seed, name=f"b{i}_stochpool")(x)
        elif b.pool == "strided":
            x = L.Conv2D(f, 3, strides=stride, padding=b.padding, use_bias=False, name=f"b{i}_stridedconv",
                         kernel_initializer=init())(x)
            x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"b{i}_strided_bn")(x)
            x = L.ReLU(name=f"b{i}_strided_relu")(x)
    if spec.head == "flatten":
        x = L.Flatten(name="flatten")(x)
    elif spec.head == "global-avg":
        x = L.GlobalAveragePooling2D(name="gap")(x)
    elif spec.head == "global-max":
        x = L.GlobalMaxPooling2D(name="gmp")(x)
    elif spec.head == "spp":
        x = layer("SpatialPyramidPooling2D")(spp_levels(h, w), name="spp")(x)
    else:
        x = layer("AttentionPooling")(name="attnpool")(x)
    if spec.dropout:
        x = L.Dropout(spec.dropout, seed=seed, name="dropout")(x)
    out = L.Dense(num_classes, name="logits", kernel_initializer=init())(x)
    return k.Model(inp, out, name=spec.name.replace("-", "_"))


SEQUENCE_POOLS = ("max", "avg", "l2", "adaptive-max", "attention")


def build_sequence_model(length: int | None, channels: int, num_classes: int, pool: str = "max",
                         filters: tuple[int, ...] = (16, 32), seed: int | None = None) -> Any:
    """A small 1D CNN for sensor sequences (accelerometer, ECG, audio features): (length, channels) in,
    logits out. Each block is Conv1D -> BN -> ReLU -> 1D pooling (`max`, `avg`, `l2`; `adaptive-max`
    halves the length with PyTorch's bins; `attention` pools windows by max and ends in attention
    pooling); the head is global average pooling (or attention pooling). `length` None takes any length."""
    from .._tf import keras
    from ..layers import get as layer

    check_choice("pool", pool, SEQUENCE_POOLS)
    k = keras()
    L = k.layers

    def init(i: int) -> Any:
        return k.initializers.GlorotUniform(seed=None if seed is None else seed * 1000 + i)

    inp = L.Input(shape=(length, channels), name="sequence")
    x = inp
    n = length
    for i, f in enumerate(filters):
        x = L.Conv1D(f, 5, padding="same", use_bias=False, kernel_initializer=init(i), name=f"b{i}_conv")(x)
        x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"b{i}_bn")(x)
        x = L.ReLU(name=f"b{i}_relu")(x)
        if pool == "adaptive-max" and n is not None:  # (a variable length pools by max windows)
            x = layer("AdaptiveMaxPooling1D")(-(-n // 2), name=f"b{i}_adaptivemaxpool")(x)
        elif pool in ("max", "attention", "adaptive-max"):
            x = layer("MaxPooling1D")(2, padding="same", name=f"b{i}_maxpool")(x)
        elif pool == "avg":
            x = layer("AveragePooling1D")(2, padding="same", name=f"b{i}_avgpool")(x)
        else:
            x = layer("L2Pooling1D")(2, padding="same", name=f"b{i}_l2pool")(x)
        n = None if n is None else -(-n // 2)
    x = (layer("AttentionPooling")(name="attnpool") if pool == "attention"
         else layer("GlobalAveragePooling1D")(name="gap"))(x)
    out = L.Dense(num_classes, name="logits", kernel_initializer=init(99))(x)
    return k.Model(inp, out, name=f"sequence_{pool.replace('-', '_')}")


def build_segmentation_model(input_shape: tuple[int, int, int], num_classes: int, filters: tuple[int, ...] = (16, 32),
                             seed: int | None = None) -> Any:
    """A small SegNet-style encoder-decoder: per-pixel logits (H, W, classes).

    Encoder blocks: Conv -> BN -> ReLU -> MaxPoolingWithIndices2D(2, "same"); decoder blocks, in
    reverse: MaxUnpooling2D with the matching indices (back to the encoder's exact size, odd sizes
    included) -> Conv -> BN -> ReLU; a 1x1 Conv gives the class logits. No custom ops: it converts to
    TFLite builtins and Core ML."""
    from .._tf import keras
    from ..layers import get as layer

    k = keras()
    L = k.layers

    def init(i: int) -> Any:
        return k.initializers.GlorotUniform(seed=None if seed is None else seed * 1000 + i)

    inp = L.Input(shape=tuple(input_shape), name="image")
    x = inp
    skips = []
    for i, f in enumerate(filters):
        x = L.Conv2D(f, 3, padding="same", use_bias=False, kernel_initializer=init(i), name=f"enc{i}_conv")(x)
        x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"enc{i}_bn")(x)
        x = L.ReLU(name=f"enc{i}_relu")(x)
        size = tuple(x.shape[1:3])
        x, idx = layer("MaxPoolingWithIndices2D")(2, "same", name=f"enc{i}_pool")(x)
        skips.append((idx, size))
    for j, (idx, size) in enumerate(reversed(skips)):
        x = layer("MaxUnpooling2D")(2, output_size=size, name=f"dec{j}_unpool")([x, idx])
        f_out = filters[len(filters) - 2 - j] if j < len(filters) - 1 else filters[0]
        x = L.Conv2D(f_out, 3, padding="same", use_bias=False, kernel_initializer=init(50 + j), name=f"dec{j}_conv")(x)
        x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"dec{j}_bn")(x)
        x = L.ReLU(name=f"dec{j}_relu")(x)
    out = L.Conv2D(num_classes, 1, name="logits", kernel_initializer=init(99))(x)
    return k.Model(inp, out, name="segnet_mini")


def spp_levels(h: int, w: int) -> tuple[int, ...]:
    """The spatial pyramid levels for an h x w last map: 1, 2, 4 as far as the map has that many cells."""
    return tuple(n for n in SPP_LEVELS if n == 1 or n <= min(h, w))


def _downsampled(spec: ModelSpec, input_shape: tuple[int, int, int], i: int, h: int, w: int) -> tuple[int, int]:
    """The feature map size after block `i`'s downsampling step (an error when nothing is left)."""
    b = spec.blocks[i]
    s = b.pool_stride or b.pool_size
    win = 3 if b.pool == "strided" else b.pool_size  # adaptive pooling: the size max pooling gives
    h, w = ((-(-h // s), -(-w // s)) if b.padding == "same" else ((h - win) // s + 1, (w - win) // s + 1))
    if h < 1 or w < 1:
        raise InputError(
            f"model {spec.name!r} downsamples a {input_shape[0]}x{input_shape[1]} input to nothing at block {i}",
            "use fewer blocks, no pooling on some blocks, padding 'same', or a larger image size",
        )
    return h, w


def count_params(model: Any) -> int:
    return int(model.count_params())


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one inference, from the Keras layers (conv, depthwise, dense, pooling adds excluded)."""
    from .._tf import keras

    L = keras().layers
    total = 0
    for layer in model.layers:
        if isinstance(layer, L.SeparableConv2D):
            _, h, w, c_out = layer.output_shape
            c_in = layer.input_shape[-1]
            kh, kw = layer.kernel_size
            total += h * w * c_in * kh * kw + h * w * c_in * c_out
        elif isinstance(layer, L.DepthwiseConv2D):
            _, h, w, c = layer.output_shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw
        elif isinstance(layer, L.Conv2D):
            _, h, w, c_out = layer.output_shape
            c_in = layer.input_shape[-1]
            kh, kw = layer.kernel_size
            total += h * w * c_out * c_in * kh * kw
        elif isinstance(layer, L.Dense):
            total += int(layer.input_shape[-1]) * layer.units
        elif callable(getattr(layer, "macs", None)):  # edgepool layers with weights (attention pooling)
            total += int(layer.macs())
    return int(total)


def _count(spec: ModelSpec, input_shape: tuple[int, int, int], num_classes: int) -> tuple[int, int]:
    """`ModelSpec.count`: what count_params / count_macs give for build_model(spec, input_shape, num_classes).

    Follows build_model layer by layer: convs without bias, BN with 4 weights per channel (all counted,
    as Keras counts them), pooling with no weights and no MACs, the Dense head with a bias.
    """
    spec.validate()
    h, w, c = (int(v) for v in input_shape)
    first_none = max(h, w) <= spec.full_res_stem_max
    params = macs = 0
    for i, b in enumerate(spec.blocks):
        f = max(1, int(round(b.filters * spec.width)))
        for j in range(b.convs):  # stride 1, padding "same": h, w unchanged
            k2 = b.kernel * b.kernel
            if b.separable and not (i == 0 and j == 0 and input_shape[-1] == 1):
                params += c * k2 + c * f  # depthwise (multiplier 1) + pointwise
                macs += h * w * (c * k2 + c * f)
            else:
                params += k2 * c * f
                macs += h * w * k2 * c * f
            params += 4 * f  # BN: gamma, beta, moving mean, moving variance
            c = f
        if b.pool == "none" or (i == 0 and first_none):
            continue
        h, w = _downsampled(spec, input_shape, i, h, w)
        if b.pool == "strided":  # a 3x3 conv with stride s (no bias) + BN
            params += 9 * c * c + 4 * c
            macs += h * w * 9 * c * c
    features = h * w * c if spec.head == "flatten" else c
    if spec.head == "spp":
        features = sum(n * n for n in spp_levels(h, w)) * c
    elif spec.head == "attention":  # a 1x1 score conv (c weights + bias) over the h x w positions
        params += c + 1
        macs += h * w * c
    params += (features + 1) * num_classes
    macs += features * num_classes
    return int(params), int(macs)


def load_model(path: Path) -> Any:
    from .._tf import keras
    from ..layers import custom_objects

    try:
        return keras().models.load_model(path, custom_objects=custom_objects(), compile=False)
    except Exception as e:
        raise ModelError(f"cannot load model {path} ({type(e).__name__}: {str(e)[:200]})", "the run may be corrupt; re-train it") from None


def load_run_model(run: Run) -> Any:
    """A run's float tf_keras model (a clear error when the run has none)."""
    run.require_model()
    return load_model(run.model_path)

"""What a sweep is: the grid (pool x model x window x width x seed), the training and benchmark settings,
the profiles and which device measures each of them. Plain data, checked before any work; no TensorFlow."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError

# The settings a finished configuration depends on: a sweep directory made with other values cannot be continued.
TRAINING_KEYS = ("data", "epochs", "batch_size", "learning_rate", "patience", "augment")
LOCAL = "local"


@dataclass(frozen=True)
class Config:
    """One point of the grid: trained once, exported for every profile."""

    pool: str
    model: str
    window: int
    width: float
    seed: int

    @property
    def id(self) -> str:
        return f"{self.model}-{self.pool}-w{self.window}-x{self.width:g}-s{self.seed}"

    @property
    def group(self) -> str:
        """The configuration without its seed: seeds of one group are averaged."""
        return f"{self.model}-{self.pool}-w{self.window}-x{self.width:g}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "group": self.group, **dataclasses.asdict(self)}


@dataclass
class BenchSettings:
    """How each export is measured on its device (a short, fixed protocol; see `edgepool benchmark`)."""

    runs: int = 50
    windows: int = 3
    min_seconds: float = 1.0
    max_samples: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SweepSpec:
    data: str
    pools: list[str]
    profiles: list[str]
    models: list[str] = field(default_factory=lambda: ["small"])
    windows: list[int] = field(default_factory=lambda: [2])
    widths: list[float] = field(default_factory=lambda: [1.0])
    seeds: int = 3
    devices: list[str] = field(default_factory=list)  # DEVICE or PROFILE=DEVICE
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    patience: int = 20
    augment: bool = True
    bench: BenchSettings = field(default_factory=BenchSettings)

    def configs(self) -> list[Config]:
        return [Config(p, m, w, x, s) for m in self.models for p in self.pools for w in self.windows
                for x in self.widths for s in range(self.seeds)]

    def training_settings(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in TRAINING_KEYS}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["bench"] = self.bench.to_dict()
        return d

    def validate(self) -> None:
        """Every choice, before any work: pools, models, windows, widths, seeds and the training numbers."""
        from ..models import POOLS, check_range, preset
        from ..training import TrainConfig

        for name, values in (("pool", self.pools), ("model", self.models), ("window", self.windows),
                             ("width", self.widths), ("profile", self.profiles)):
            if not values:
                raise InputError(f"the sweep has no {name} to try", f"give at least one {name}")
            dupes = sorted({str(v) for v in values if list(values).count(v) > 1})
            if dupes:
                raise InputError(f"{name} {', '.join(dupes)} is listed twice", f"list each {name} once")
        for p in self.pools:
            if p not in POOLS:
                raise InputError(f"unknown pool {p!r}", f"choose from: {', '.join(POOLS)}")
        for m in self.models:
            preset(m)
        for w in self.windows:
            check_range("window", w, 1, 8, hint="the pooling window (and its stride) is 1 to 8 pixels, e.g. 2 or 3")
        for x in self.widths:
            check_range("width", x, 0, 8, low_open=True, hint="the width multiplies every block's filter count: use a value in (0, 8]")
        check_range("seeds", self.seeds, 1, 100, hint="train each configuration with 1 to 100 seeds, e.g. 3")
        TrainConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                    patience=self.patience).validate()
        check_range("runs", self.bench.runs, 1, hint="measure at least one run per window")
        check_range("windows", self.bench.windows, 1, hint="measure at least one window")
        check_range("min_seconds", self.bench.min_seconds, 0, hint="a window lasts 0 or more seconds")

    def model_spec(self, config: Config) -> Any:
        """The ModelSpec `config` trains: the preset with every block's pool, window (size and stride) and width."""
        from ..models import preset

        spec = preset(config.model).with_pool(config.pool)
        blocks = [dataclasses.replace(b, pool_size=config.window, pool_stride=None) for b in spec.blocks]
        return dataclasses.replace(spec, blocks=blocks, width=config.width)

    def train_config(self, config: Config) -> Any:
        from ..training import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                           patience=self.patience, seed=config.seed, augment=self.augment)


def parse_list(text: str, kind: type, what: str) -> list[Any]:
    """"max,avg" -> ["max", "avg"]; "2,3" -> [2, 3]: a comma-separated list of `kind`, or an InputError."""
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(kind(part))
        except ValueError:
            raise InputError(f"{what} {part!r} is not {'an integer' if kind is int else 'a number'}",
                             f"give {what}s as a comma-separated list, e.g. {'2,3' if kind is int else '0.5,1'}") from None
    if not out:
        raise InputError(f"no {what} given", f"give at least one {what}")
    return out


@dataclass
class Assignment:
    """Where each profile's exports are measured: a device (`local` or any `edgepool benchmark` device), or
    nowhere (`device` None: the profile's numbers give an estimate)."""

    profile: str
    device: str | None

    @property
    def kind(self) -> str:
        return "measured" if self.device else "estimated"


def assign_devices(profiles: list[Any], devices: list[str]) -> list[Assignment]:
    """Give each profile (DeviceProfile) the device that measures it.

    A device is `PROFILE=DEVICE`, a registered device name with a profile, or a device whose transport only
    one of the profiles has. A profile without one is measured on this machine when it runs LiteRT here
    (transport local, no accelerator), else estimated from its numbers.
    """
    from .. import devices as devmod
    from ..types import Runtime, Transport

    names = [p.name for p in profiles]
    chosen: dict[str, str] = {}
    for text in devices:
        prof, sep, dev = text.partition("=")
        if sep and prof and not prof.startswith(("ssh:", "adb:", "ios:")):
            if prof not in names:
                raise InputError(f"device {text!r} names profile {prof!r}, which is not in the sweep",
                                 f"use one of the sweep's profiles: {', '.join(names)}")
            ref = devmod.parse_device(dev)
            target = prof
        else:
            ref = devmod.parse_device(text)
            dev = text
            if ref.profile and ref.profile in names:
                target = ref.profile
            else:
                fits = [p.name for p in profiles if p.transport == ref.kind and p.name not in chosen]
                if len(fits) != 1:
                    which = f"{len(fits)} of the sweep's profiles are" if fits else "none of the sweep's profiles is"
                    raise InputError(f"device {ref.label}: {which} reached over {ref.kind.value}, so which one it "
                                     "measures is not clear", "name it as PROFILE=DEVICE, e.g. raspberry-pi-5=ssh://pi@pi5")
                target = fits[0]
        if target in chosen:
            raise InputError(f"profile {target} is given two devices ({chosen[target]} and {dev})",
                             "measure each profile on one device")
        chosen[target] = dev
    out = []
    for p in profiles:
        dev = chosen.get(p.name)
        if dev is None and p.transport == Transport.LOCAL and p.runtime == Runtime.TFLITE:
            dev = LOCAL
        out.append(Assignment(p.name, dev))
    return out


def device_key(device: str) -> str:
    """One name per physical device, for the one-benchmark-at-a-time rule (and a Ray resource name)."""
    from .. import devices as devmod

    ref = devmod.parse_device(device)
    if ref.kind.value == "ssh":
        return f"ssh:{(ref.host or '').lower()}:{ref.port or 22}"
    return f"{ref.kind.value}:{ref.serial or ref.udid or ''}".rstrip(":")


def cpu_count() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)

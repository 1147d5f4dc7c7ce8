"""Where the shipped data folders are: `edgepool/data/<name>`, package data read through
`importlib.resources` (the same in a checkout, an editable install and an installed wheel)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DATA_DIRS = ("device_profiles", "quantization")


def data_dir(name: str) -> Path:
    """Return the shipped folder `name` ("device_profiles" or "quantization")."""
    if name not in DATA_DIRS:
        raise ValueError(f"unknown data folder {name!r}; expected one of {', '.join(DATA_DIRS)}")
    return Path(str(files("edgepool").joinpath("data", name)))

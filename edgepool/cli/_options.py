"""Options shared by several commands, and the parsing of their strings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError

DataOpt = Annotated[str, typer.Option("--data", "-d", help="digits | mnist-5k | an image folder (one sub-folder per class) | an .npz with x, y")]
ChannelsOpt = Annotated[int | None, typer.Option("--channels", help="1 (grayscale) or 3 (RGB); default: from the data")]
ImageSizeOpt = Annotated[str | None, typer.Option("--image-size", help="HxW to resize images to, e.g. 32x32 (32 alone means 32x32); default: the data's own")]
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable images (named on the console, listed in the manifest) instead of failing")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output")]
RunArg = Annotated[Path, typer.Argument(help="A run directory written by `edgepool train`", show_default=False)]


# what the data options are called on the command line, for the library's range messages
DATA_FLAGS = {"channels": "--channels", "image_size": "--image-size"}


def parse_size(s: str | None) -> tuple[int, int] | None:
    """`HxW` (or `N` for NxN) -> (H, W); the range is checked by `datasets.check_options`."""
    if s is None:
        return None
    try:
        parts = [int(p) for p in s.lower().replace("*", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise InputError(f"--image-size {s!r} is not a size", "write it as HxW, e.g. 32x32 (a single number N means NxN)")
    return parts[0], parts[1]


def load_data(data: str, channels: int | None, image_size: str | None, skip_bad: bool):  # -> Dataset
    from ..datasets import check_options, load_dataset

    size = parse_size(image_size)
    check_options(channels, size, names=DATA_FLAGS)
    return load_dataset(data, channels=channels, image_size=size, skip_bad=skip_bad)
RecipeOpt = Annotated[str, typer.Option("--recipe", "-r", help="Recipe name (`edgepool recipes list`) or a .toml path")]

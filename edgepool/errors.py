"""Errors a user can cause. Each carries a one-line message and a hint; the CLI maps them to exit codes.

Exit codes (DESIGN.md, Conventions): 2 bad input, 3 device/transport, 1 failed gate/regression.
"""

from __future__ import annotations


class EdgepoolError(Exception):
    """Base class: `message` names the thing, `hint` says what to do."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class InputError(EdgepoolError):
    """Bad input: a path, an option value, a file's content."""


class DataError(InputError):
    """A data set that cannot be read or used."""


class ModelError(InputError):
    """A run/model that is missing, corrupt or unsuitable for the request."""


class RecipeError(InputError):
    """A quantization recipe that does not exist or does not validate."""


class ProfileError(InputError):
    """A device profile that does not exist or does not validate."""


class ExportError(InputError):
    """An export that cannot be produced for this model/recipe/profile."""


class ExistsError(InputError):
    """Refusing to overwrite something unless asked to (force)."""


class DeviceError(EdgepoolError):
    """A device, runtime or transport failed (unreachable, crashed, delegate missing)."""

    exit_code = 3


class GateFailure(EdgepoolError):
    """A regression gate or verification found a result worse than allowed."""

    exit_code = 1

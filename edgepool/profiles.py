"""Device profiles: one TOML per device, a strict schema, resolution by name or path.

A profile says which runtime a device runs (TFLite, Edge TPU, Core ML) and at which version, the
quantization recipe to export with, how to reach the device, and the numbers the estimators and
the energy model use. Every number carries a source (`[sources]` table): where it comes from
("datasheet: ...", "vendor: ...", "filing: ...", "benchmark: ...") or "estimate: <formula/reason>".

Lookup order for a name: each dir in $EDGEPOOL_PROFILE_PATH (os.pathsep-separated), then the user
config dir ($XDG_CONFIG_HOME or ~/.config)/edgepool/device_profiles, then the built-in folder.
A user profile with a built-in's name shadows it; `shadowed()` reports that so the CLI can say so.

No TensorFlow / coremltools here: this module only reads TOML.
"""

from __future__ import annotations

import difflib
import enum
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ._paths import data_dir
from .errors import ProfileError, RecipeError

SCHEMA_VERSION = 1
DEFAULT_PROFILE = "host-cpu"
PROFILE_PATH_ENV = "EDGEPOOL_PROFILE_PATH"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_VERSION_RE = re.compile(r"^\d+(\.\d+){0,2}$")


class Runtime(enum.StrEnum):
    """What executes the model on the device."""

    TFLITE = "tflite"
    EDGETPU = "edgetpu"
    COREML = "coreml"

    def recipe_problem(self, recipe: RecipeFacts) -> str | None:
        """Why this runtime cannot run `recipe`, or None if it can."""
        if self is Runtime.COREML:
            if recipe.format != "coreml":
                return f"a {recipe.format!r} recipe cannot run on Core ML; use a coreml-* recipe"
            return None
        if recipe.format != "tflite":
            return f"a {recipe.format!r} recipe cannot run on {self.value}; use a tflite recipe"
        if self is Runtime.EDGETPU and (recipe.weights != "int8" or recipe.activations != "int8"):
            return (
                f"the Edge TPU runs fully int8 models only (recipe has weights={recipe.weights!r}, "
                f"activations={recipe.activations!r}); use edgetpu-int8"
            )
        return None


class DeploymentTarget(enum.IntEnum):
    """Core ML deployment targets, ordered (as coremltools' AvailableTarget)."""

    iOS15 = 15
    iOS16 = 16
    iOS17 = 17
    iOS18 = 18

    @classmethod
    def parse(cls, text: str) -> DeploymentTarget:
        try:
            return cls[text]
        except KeyError:
            raise ValueError(text) from None


# What each runtime accepts.
RUNTIME_PACKAGES = {
    Runtime.TFLITE: ("tflite-runtime", "ai-edge-litert", "tensorflow", "tensorflow-lite-android"),
    Runtime.EDGETPU: ("tflite-runtime", "ai-edge-litert"),
    Runtime.COREML: ("ios",),
}
RUNTIME_DELEGATES = {
    Runtime.TFLITE: ("xnnpack", "gpu", "nnapi"),
    Runtime.EDGETPU: ("edgetpu", "xnnpack"),
    Runtime.COREML: (),
}
TRANSPORTS = ("local", "ssh", "adb", "ios")
# coremltools ComputeUnit names -> first deployment target that has them.
COMPUTE_UNITS = {
    "ALL": DeploymentTarget.iOS15,
    "CPU_ONLY": DeploymentTarget.iOS15,
    "CPU_AND_GPU": DeploymentTarget.iOS15,
    "CPU_AND_NE": DeploymentTarget.iOS16,
}
# Core ML compressed-weight ops (constexpr_affine_dequantize, constexpr_lut_to_dense) need iOS16.
_COMPRESSION_MIN_TARGET = DeploymentTarget.iOS16
SOURCE_KINDS = ("datasheet", "vendor", "filing", "benchmark", "estimate")

# key -> (python type(s), unit/meaning for messages, required)
_STR, _INT, _NUM, _LIST = "string", "integer", "number", "list of strings"
_SCHEMA: dict[str, tuple[str, str, bool]] = {
    "schema_version": (_INT, "schema version", True),
    "display_name": (_STR, "name shown to people", True),
    "description": (_STR, "one or two sentences", True),
    "runtime": (_STR, "tflite | edgetpu | coreml", True),
    "runtime_package": (_STR, "package that provides the runtime", True),
    "runtime_version": (_STR, 'version string such as "2.14"', True),
    "recipe": (_STR, "quantization recipe name", True),
    "threads": (_INT, "CPU threads", True),
    "delegates": (_LIST, "TFLite delegates", False),
    "compute_units": (_STR, "Core ML compute units", False),
    "minimum_deployment_target": (_STR, 'Core ML target such as "iOS17"', False),
    "transport": (_STR, "local | ssh | adb | ios", True),
    "ram_budget_mb": (_INT, "MB", True),
    "latency_target_ms": (_NUM, "milliseconds", True),
    "idle_power_w": (_NUM, "watts", True),
    "active_power_w": (_NUM, "watts", True),
    "battery_wh": (_NUM, "watt-hours", False),
    "peak_gmacs_int8": (_NUM, "GMAC/s", True),
    "peak_gmacs_fp32": (_NUM, "GMAC/s", True),
    "sources": ("table", "key -> source", True),
}
NUMBER_KEYS = (
    "ram_budget_mb",
    "latency_target_ms",
    "idle_power_w",
    "active_power_w",
    "battery_wh",
    "peak_gmacs_int8",
    "peak_gmacs_fp32",
)


class RecipeFacts(NamedTuple):
    """The parts of a quantization recipe a profile is checked against."""

    name: str
    format: str
    weights: str | None = None
    activations: str | None = None
    weight_compression: str | None = None


class Shadowing(NamedTuple):
    """A user profile that hides a built-in one of the same name."""

    name: str
    path: Path
    builtin_path: Path


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    display_name: str
    description: str
    runtime: Runtime
    runtime_package: str
    runtime_version: str
    recipe: str
    threads: int
    delegates: tuple[str, ...]
    compute_units: str | None
    minimum_deployment_target: str | None
    transport: str
    ram_budget_mb: int
    latency_target_ms: float
    idle_power_w: float
    active_power_w: float
    battery_wh: float | None
    peak_gmacs_int8: float
    peak_gmacs_fp32: float
    sources: dict[str, str] = field(hash=False)
    path: Path
    builtin: bool = False
    shadows: Path | None = None  # the built-in profile this one hides, if any

    @property
    def runtime_version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.runtime_version)

    @property
    def deployment_target(self) -> DeploymentTarget | None:
        t = self.minimum_deployment_target
        return DeploymentTarget.parse(t) if t else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "runtime": self.runtime.value,
            "runtime_package": self.runtime_package,
            "runtime_version": self.runtime_version,
            "recipe": self.recipe,
            "threads": self.threads,
            "delegates": list(self.delegates),
            "compute_units": self.compute_units,
            "minimum_deployment_target": self.minimum_deployment_target,
            "transport": self.transport,
            "ram_budget_mb": self.ram_budget_mb,
            "latency_target_ms": self.latency_target_ms,
            "idle_power_w": self.idle_power_w,
            "active_power_w": self.active_power_w,
            "battery_wh": self.battery_wh,
            "peak_gmacs_int8": self.peak_gmacs_int8,
            "peak_gmacs_fp32": self.peak_gmacs_fp32,
            "sources": dict(self.sources),
            "path": str(self.path),
            "builtin": self.builtin,
            "shadows": str(self.shadows) if self.shadows else None,
        }


def version_tuple(text: str) -> tuple[int, ...]:
    """"2.14" -> (2, 14); compare versions as tuples, never as strings."""
    if not _VERSION_RE.match(text):
        raise ValueError(text)
    return tuple(int(p) for p in text.split("."))


# ---------------------------------------------------------------- where profiles live


def builtin_dir() -> Path:
    return data_dir("device_profiles")


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "edgepool" / "device_profiles"


def user_dirs() -> list[Path]:
    """User profile folders in lookup order (first wins)."""
    dirs = [Path(p) for p in os.environ.get(PROFILE_PATH_ENV, "").split(os.pathsep) if p]
    dirs.append(user_config_dir())
    return dirs


def _scan() -> tuple[dict[str, Path], dict[str, Path]]:
    """-> (name -> winning path, name -> built-in path)."""
    found: dict[str, Path] = {}
    for d in user_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.toml")):
                found.setdefault(p.stem, p)
    builtins = {p.stem: p for p in sorted(builtin_dir().glob("*.toml"))}
    for name, p in builtins.items():
        found.setdefault(name, p)
    return found, builtins


def shadowed() -> list[Shadowing]:
    """User profiles that hide a built-in one of the same name."""
    found, builtins = _scan()
    return [
        Shadowing(name, found[name], bp)
        for name, bp in sorted(builtins.items())
        if found[name].resolve() != bp.resolve()
    ]


def names() -> list[str]:
    return sorted(_scan()[0])


def _looks_like_path(text: str) -> bool:
    return text.endswith(".toml") or "/" in text or os.sep in text


def resolve(name_or_path: str | Path) -> DeviceProfile:
    """A profile by name (user dirs, then built-ins) or by path to a .toml file."""
    if isinstance(name_or_path, Path) or _looks_like_path(str(name_or_path)):
        path = Path(name_or_path)
        if not path.is_file():
            raise ProfileError(f"device profile {path}: no such file", "give a path to a .toml file or a profile name")
        return load_profile(path)
    name = str(name_or_path)
    found, builtins = _scan()
    path = found.get(name)
    if path is None:
        close = difflib.get_close_matches(name, list(found), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see `edgepool profiles list`"
        raise ProfileError(f"no device profile named {name!r}", hint)
    return _load(path, builtins)


def list_profiles() -> list[DeviceProfile]:
    """Every profile that a name resolves to (user ones shadow built-ins), sorted by name."""
    found, builtins = _scan()
    return [_load(found[n], builtins) for n in sorted(found)]


def _load(path: Path, builtins: dict[str, Path]) -> DeviceProfile:
    prof = load_profile(path)
    bp = builtins.get(prof.name)
    is_builtin = bp is not None and bp.resolve() == path.resolve()
    shadows = bp if (bp is not None and not is_builtin) else None
    return _replace(prof, builtin=is_builtin, shadows=shadows)


def _replace(prof: DeviceProfile, **kw: Any) -> DeviceProfile:
    from dataclasses import replace

    return replace(prof, **kw)


# ---------------------------------------------------------------- loading + validation


def validate_file(path: str | Path) -> DeviceProfile:
    """Load and fully check one profile file; raises ProfileError naming the file and key."""
    return load_profile(path)


def load_profile(path: str | Path) -> DeviceProfile:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"device profile {path}: no such file", "check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileError(f"device profile {path}: cannot read ({e})", "check the file") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"device profile {path}: not valid TOML ({e})", "fix the TOML syntax") from None
    builtin = path.parent.resolve() == builtin_dir().resolve()
    return _build(path, raw, builtin)


def _err(path: Path, key: str, problem: str, hint: str) -> ProfileError:
    return ProfileError(f"device profile {path}: {key}: {problem}", hint)


def _check_type(path: Path, key: str, value: Any) -> None:
    kind, unit, _ = _SCHEMA[key]
    ok = {
        _STR: isinstance(value, str) and value.strip() != "",
        _INT: isinstance(value, int) and not isinstance(value, bool),
        _NUM: isinstance(value, int | float) and not isinstance(value, bool),
        _LIST: isinstance(value, list) and all(isinstance(v, str) for v in value),
        "table": isinstance(value, dict),
    }[kind]
    if ok:
        return
    if kind in (_INT, _NUM) and isinstance(value, str):
        hint = f"write a bare number in {unit}; the unit is part of the key name"
    elif kind == _INT and isinstance(value, float):
        hint = f"write a whole number ({unit})"
    else:
        hint = f"{key} is a {kind} ({unit})"
    raise _err(path, key, f"expected a {kind}, got {value!r}", hint)


def _build(path: Path, raw: dict[str, Any], builtin: bool) -> DeviceProfile:
    name = path.stem
    if not _NAME_RE.match(name):
        raise _err(path, "file name", f"{name!r} is not a valid profile name", "use lowercase letters, digits and '-'")

    for key in raw:
        if key not in _SCHEMA:
            close = difflib.get_close_matches(key, list(_SCHEMA), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? (units are part of key names)" if close else (
                "allowed keys: " + ", ".join(_SCHEMA)
            )
            raise _err(path, key, "unknown key", hint)
    for key, (_, unit, required) in _SCHEMA.items():
        if key not in raw:
            if required:
                raise _err(path, key, "missing", f"add {key} ({unit})")
            continue
        _check_type(path, key, raw[key])

    if raw["schema_version"] != SCHEMA_VERSION:
        raise _err(
            path, "schema_version", f"{raw['schema_version']} is not supported",
            f"this edgepool reads schema_version = {SCHEMA_VERSION}",
        )

    try:
        runtime = Runtime(raw["runtime"])
    except ValueError:
        raise _err(path, "runtime", f"unknown runtime {raw['runtime']!r}", "one of: " + ", ".join(Runtime)) from None

    package = raw["runtime_package"]
    if package not in RUNTIME_PACKAGES[runtime]:
        raise _err(
            path, "runtime_package", f"{package!r} does not provide the {runtime.value} runtime",
            "one of: " + ", ".join(RUNTIME_PACKAGES[runtime]),
        )
    try:
        version_tuple(raw["runtime_version"])
    except ValueError:
        raise _err(
            path, "runtime_version", f"{raw['runtime_version']!r} is not a version",
            'write dotted numbers such as "2.14" (Core ML: the iOS version, e.g. "17")',
        ) from None

    threads = raw["threads"]
    if not 1 <= threads <= 256:
        raise _err(path, "threads", f"{threads} is out of range", "use 1..256")

    transport = raw["transport"]
    if transport not in TRANSPORTS:
        raise _err(path, "transport", f"unknown transport {transport!r}", "one of: " + ", ".join(TRANSPORTS))
    if (transport == "ios") != (runtime is Runtime.COREML):
        raise _err(path, "transport", f"{transport!r} does not fit runtime {runtime.value!r}",
                   "Core ML profiles use transport = \"ios\"; only Core ML profiles do")

    delegates = tuple(raw.get("delegates", []))
    compute_units = raw.get("compute_units")
    target_text = raw.get("minimum_deployment_target")
    _check_runtime_options(path, runtime, raw, delegates, compute_units, target_text)

    numbers = _check_numbers(path, runtime, raw)
    sources = _check_sources(path, raw)
    recipe = raw["recipe"]
    _check_recipe(path, runtime, recipe, DeploymentTarget.parse(target_text) if target_text else None)

    return DeviceProfile(
        name=name,
        display_name=raw["display_name"],
        description=raw["description"],
        runtime=runtime,
        runtime_package=package,
        runtime_version=raw["runtime_version"],
        recipe=recipe,
        threads=threads,
        delegates=delegates,
        compute_units=compute_units,
        minimum_deployment_target=target_text,
        transport=transport,
        sources=sources,
        path=path,
        builtin=builtin,
        **numbers,
    )


def _check_runtime_options(
    path: Path, runtime: Runtime, raw: dict[str, Any], delegates: tuple[str, ...],
    compute_units: str | None, target_text: str | None,
) -> None:
    if runtime is Runtime.COREML:
        if delegates:
            raise _err(path, "delegates", "Core ML has no delegates", "use compute_units instead")
        if compute_units is None:
            raise _err(path, "compute_units", "missing", "one of: " + ", ".join(COMPUTE_UNITS))
        if target_text is None:
            raise _err(path, "minimum_deployment_target", "missing", "e.g. \"iOS17\"")
        try:
            target = DeploymentTarget.parse(target_text)
        except ValueError:
            raise _err(path, "minimum_deployment_target", f"unknown target {target_text!r}",
                       "one of: " + ", ".join(t.name for t in DeploymentTarget)) from None
        if compute_units not in COMPUTE_UNITS:
            raise _err(path, "compute_units", f"unknown compute units {compute_units!r}",
                       "one of: " + ", ".join(COMPUTE_UNITS))
        if target < COMPUTE_UNITS[compute_units]:
            raise _err(path, "compute_units", f"{compute_units} needs {COMPUTE_UNITS[compute_units].name} or later",
                       f"raise minimum_deployment_target (now {target.name}) or use ALL")
        ios_major = version_tuple(raw["runtime_version"])[0]
        if target.value > ios_major:
            raise _err(path, "minimum_deployment_target", f"{target.name} is newer than runtime_version {ios_major}",
                       "the deployment target cannot exceed the iOS version the profile targets")
        return
    for key, value in (("compute_units", compute_units), ("minimum_deployment_target", target_text)):
        if value is not None:
            raise _err(path, key, f"only Core ML profiles have {key}", "remove it")
    allowed = RUNTIME_DELEGATES[runtime]
    for d in delegates:
        if d not in allowed:
            raise _err(path, "delegates", f"unknown delegate {d!r} for {runtime.value}", "one of: " + ", ".join(allowed))
    if len(set(delegates)) != len(delegates):
        raise _err(path, "delegates", "listed twice", "list each delegate once")
    if runtime is Runtime.EDGETPU and "edgetpu" not in delegates:
        raise _err(path, "delegates", "an Edge TPU profile must use the edgetpu delegate", 'add "edgetpu"')


def _check_numbers(path: Path, runtime: Runtime, raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in NUMBER_KEYS:
        value = raw.get(key)
        if value is None:
            out[key] = None
            continue
        floor_ok = value >= 0 if (key == "peak_gmacs_fp32" and runtime is Runtime.EDGETPU) else value > 0
        if not floor_ok:
            hint = "must be > 0" if key != "peak_gmacs_fp32" else "must be > 0 (0 only on edgetpu: no float unit)"
            raise _err(path, key, f"{value} is out of range", hint)
        out[key] = value if key == "ram_budget_mb" else float(value)
    if out["active_power_w"] < out["idle_power_w"]:
        raise _err(path, "active_power_w", f"{out['active_power_w']} W is below idle_power_w {out['idle_power_w']} W",
                   "active power includes idle power")
    return out


def _check_sources(path: Path, raw: dict[str, Any]) -> dict[str, str]:
    sources = raw["sources"]
    for key, text in sources.items():
        if key not in NUMBER_KEYS:
            raise _err(path, f"sources.{key}", "not a number key of the profile",
                       "sources name numbers: " + ", ".join(NUMBER_KEYS))
        if key not in raw:
            raise _err(path, f"sources.{key}", f"source given but {key} is not set", f"set {key} or drop its source")
        kind = text.split(":", 1)[0].strip() if isinstance(text, str) else ""
        detail = text.split(":", 1)[1].strip() if isinstance(text, str) and ":" in text else ""
        if kind not in SOURCE_KINDS or not detail:
            raise _err(path, f"sources.{key}", f"{text!r} is not '<kind>: <where or how>'",
                       "kind is one of " + ", ".join(SOURCE_KINDS) + "; estimates give their formula")
    for key in NUMBER_KEYS:
        if key in raw and key not in sources:
            raise _err(path, f"sources.{key}", f"{key} has no source",
                       "say where the number comes from, or 'estimate: <formula>'")
    return dict(sources)


# ---------------------------------------------------------------- recipes


def recipe_facts(name: str) -> RecipeFacts:
    """A recipe's format / weights / activations, from the one recipe loader (edgepool.quantize)."""
    from .quantize import load_recipe

    r = load_recipe(name)
    return RecipeFacts(
        name=name, format=r.format, weights=r.weights, activations=r.activations, weight_compression=r.weight_compression
    )


def recipe_problem(runtime: Runtime, recipe: RecipeFacts, target: DeploymentTarget | None = None) -> str | None:
    """Why a device with `runtime` (and Core ML `target`) cannot run `recipe`, or None."""
    problem = runtime.recipe_problem(recipe)
    if problem:
        return problem
    compressed = recipe.weight_compression not in (None, "none")
    if runtime is Runtime.COREML and compressed and target is not None and target < _COMPRESSION_MIN_TARGET:
        return (f"compressed weights ({recipe.weight_compression}) need {_COMPRESSION_MIN_TARGET.name} "
                f"or later, the profile targets {target.name}")
    return None


def _check_recipe(path: Path, runtime: Runtime, name: str, target: DeploymentTarget | None) -> None:
    if not _NAME_RE.match(name):
        raise _err(path, "recipe", f"{name!r} is not a recipe name", "name a recipe in quantization/, e.g. \"int8\"")
    try:
        facts = recipe_facts(name)
    except RecipeError as e:
        raise _err(path, "recipe", e.message, e.hint or "see quantization/") from None
    problem = recipe_problem(runtime, facts, target)
    if problem:
        raise _err(path, "recipe", f"{name!r}: {problem}", "pick a recipe this runtime can run")

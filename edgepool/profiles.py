"""Device profiles: one TOML per device, a strict schema, resolution by name or path.

A profile says which runtime a device runs (TFLite, Edge TPU, Core ML) and at which version, the
quantization recipe to export with, how to reach the device, and the numbers the estimators and
the energy model use. Every number carries a source (`[sources]` table): where it comes from
("datasheet: ...", "vendor: ...", "filing: ...", "benchmark: ...") or "estimate: <formula/reason>".
A local profile (host-cpu) may mark its peaks "derived: ...": they are computed from this machine's
CPU when the profile is loaded (`edgepool.hostinfo`: ISA flags, cores, clock), the file's number
being the fallback where the CPU cannot be read.
Files are read by the one strict-TOML loader (`edgepool.config`); the rules between keys (runtime
and package, delegates, Core ML targets, the recipe) are checked here, the recipe against the real
`QuantRecipe` (`edgepool.recipes`).

Lookup order for a name: each dir in $EDGEPOOL_PROFILE_PATH (os.pathsep-separated), then the user
config dir ($XDG_CONFIG_HOME or ~/.config)/edgepool/device_profiles, then the built-in folder.
A user profile with a built-in's name shadows it: `shadowed()` lists those, `shadow_notice(profile)`
is the line every command that resolved such a profile prints. `list_profiles(errors)` keeps going
past a broken file and reports it in `errors`.

No TensorFlow / coremltools here: this module only reads TOML.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from . import config
from ._paths import data_dir
from .config import Field, Kind, Origin, Range, toml_repr
from .errors import ProfileError, RecipeError
from .recipes import QuantRecipe, load_recipe, recipe_names
from .types import COMPUTE_UNITS_MIN_TARGET, DeploymentTarget, RecipeFormat, Runtime, Transport

SCHEMA_VERSION = config.SCHEMA_VERSION
DEFAULT_PROFILE = "host-cpu"
PROFILE_PATH_ENV = "EDGEPOOL_PROFILE_PATH"
WHAT = "device profile"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_VERSION_RE = re.compile(r"^\d+(\.\d+){0,2}$")

# What each runtime accepts.
RUNTIME_PACKAGES: dict[Runtime, tuple[str, ...]] = {
    Runtime.TFLITE: ("tflite-runtime", "ai-edge-litert", "tensorflow", "tensorflow-lite-android"),
    Runtime.EDGETPU: ("tflite-runtime", "ai-edge-litert"),
    Runtime.COREML: ("ios",),
}
RUNTIME_DELEGATES: dict[Runtime, tuple[str, ...]] = {
    Runtime.TFLITE: ("xnnpack", "gpu", "nnapi"),
    Runtime.EDGETPU: ("edgetpu", "xnnpack"),
    Runtime.COREML: (),
}

_NOT_COREML = (Runtime.TFLITE.value, Runtime.EDGETPU.value)
_COREML = (Runtime.COREML.value,)


def _number(meaning: str, *, required: bool = True, range: Range | None = None, kind: Kind = Kind.NUMBER) -> Field:
    return Field(kind, required=required, range=range or Range.positive(), meaning=meaning, needs_source=True)


SCHEMA: dict[str, Field] = {
    "display_name": Field(Kind.STRING, required=True, meaning="name shown to people", example='"Raspberry Pi 5"'),
    "description": Field(Kind.STRING, required=True, meaning="one or two sentences"),
    "runtime": Field(Kind.STRING, required=True, choices=Runtime, meaning="what runs the model"),
    "runtime_package": Field(Kind.STRING, required=True, meaning="package that provides the runtime",
                             example='"tflite-runtime"'),
    "runtime_version": Field(Kind.STRING, required=True, meaning='version such as "2.14"', example='"2.14"'),
    "recipe": Field(Kind.STRING, required=True, meaning="quantization recipe name", example='"int8"'),
    "threads": Field(Kind.INTEGER, required=True, range=Range(1, 256), meaning="CPU threads", example="4"),
    "delegates": Field(Kind.STRINGS, applies_to=_NOT_COREML, meaning="TFLite delegates", example='["xnnpack"]'),
    "compute_units": Field(Kind.STRING, required=True, choices=tuple(COMPUTE_UNITS_MIN_TARGET), applies_to=_COREML,
                           meaning="Core ML compute units"),
    "minimum_deployment_target": Field(Kind.STRING, required=True, choices=DeploymentTarget, applies_to=_COREML,
                                       meaning='Core ML target such as "iOS17"', example='"iOS17"'),
    "transport": Field(Kind.STRING, required=True, choices=Transport, meaning="how edgepool reaches the device"),
    "ram_budget_mb": _number("RAM budget in MB", kind=Kind.INTEGER),
    "latency_target_ms": _number("latency target in milliseconds"),
    "idle_power_w": _number("idle power in watts"),
    "active_power_w": _number("power while inferring, in watts"),
    "battery_wh": _number("battery capacity in watt-hours", required=False),
    "peak_gmacs_int8": _number("peak int8 GMAC/s"),
    # 0 only on the Edge TPU (no float unit): checked below
    "peak_gmacs_fp32": _number("peak fp32 GMAC/s", range=Range(0, None)),
}
NUMBER_KEYS: tuple[str, ...] = tuple(k for k, f in SCHEMA.items() if f.needs_source)
# Numbers a local profile may mark "derived": computed from this machine's CPU when loaded (edgepool.hostinfo).
DERIVABLE_KEYS: tuple[str, ...] = ("peak_gmacs_int8", "peak_gmacs_fp32")


class Shadowing(NamedTuple):
    """A user profile that hides a built-in one of the same name."""

    name: str
    path: Path
    builtin_path: Path


class BrokenProfile(NamedTuple):
    """A profile file that does not load, as `list_profiles(errors)` reports it."""

    name: str
    path: Path
    error: ProfileError


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
    deployment_target: DeploymentTarget | None  # Core ML only
    transport: Transport
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
    def minimum_deployment_target(self) -> str | None:
        """The deployment target as written in the file ("iOS17"), None for non-Core ML profiles."""
        return self.deployment_target.name if self.deployment_target is not None else None

    @property
    def runtime_version_tuple(self) -> tuple[int, ...]:
        return version_tuple(self.runtime_version)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON values (what `profiles show --json` prints)."""
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
            "transport": self.transport.value,
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


def shadow_notice(profile: DeviceProfile) -> str | None:
    """The line to print when a command resolved a user profile that hides a built-in one, else None."""
    if profile.shadows is None:
        return None
    return f"notice: profile {profile.name} from {profile.path} shadows the built-in one"


def names() -> list[str]:
    return sorted(_scan()[0])


def _looks_like_path(text: str) -> bool:
    return text.endswith(".toml") or "/" in text or os.sep in text


def resolve(name_or_path: str | Path) -> DeviceProfile:
    """A profile by name (user dirs, then built-ins) or by path to a .toml file."""
    if isinstance(name_or_path, Path) or _looks_like_path(str(name_or_path)):
        path = Path(name_or_path)
        if not path.is_file():
            raise ProfileError(f"{WHAT} {path}: no such file", "give a path to a .toml file or a profile name")
        return load_profile(path)
    name = str(name_or_path)
    found, builtins = _scan()
    path = found.get(name)
    if path is None:
        close = config.did_you_mean(name, found)
        hint = f"did you mean {close!r}?" if close else "see `edgepool profiles list`"
        raise ProfileError(f"no {WHAT} named {name!r}", hint)
    return _load(path, builtins)


def list_profiles(errors: list[BrokenProfile] | None = None) -> list[DeviceProfile]:
    """Every profile that a name resolves to (user ones shadow built-ins), sorted by name.

    A file that does not load is left out, so one broken user profile cannot hide the others; pass
    a list as `errors` to get those files with their error (the CLI flags them and exits 2).
    """
    found, builtins = _scan()
    out: list[DeviceProfile] = []
    for name in sorted(found):
        try:
            out.append(_load(found[name], builtins))
        except ProfileError as e:
            if errors is not None:
                errors.append(BrokenProfile(name, found[name], e))
    return out


def _load(path: Path, builtins: dict[str, Path]) -> DeviceProfile:
    prof = load_profile(path)
    bp = builtins.get(prof.name)
    is_builtin = bp is not None and bp.resolve() == path.resolve()
    shadows = bp if (bp is not None and not is_builtin) else None
    return dataclasses.replace(prof, builtin=is_builtin, shadows=shadows)


# ---------------------------------------------------------------- loading + validation


def validate_file(path: str | Path) -> DeviceProfile:
    """Load and fully check one profile file; raises ProfileError naming the file and key."""
    return load_profile(path)


def load_profile(path: str | Path) -> DeviceProfile:
    path = Path(path)
    raw = config.read_toml(path, error=ProfileError, what=WHAT)
    origin = Origin(path, ProfileError, WHAT)
    if not _NAME_RE.match(path.stem):
        raise origin.fail("file name", f"{path.stem!r} is not a valid profile name", "use lowercase letters, digits and '-'")
    values = config.check_table(raw, SCHEMA, origin, variant="runtime")
    builtin = path.parent.resolve() == builtin_dir().resolve()
    return _build(path, values, origin, builtin)


def _build(path: Path, v: dict[str, Any], origin: Origin, builtin: bool) -> DeviceProfile:
    runtime: Runtime = v["runtime"]
    package: str = v["runtime_package"]
    if package not in RUNTIME_PACKAGES[runtime]:
        raise origin.fail(
            "runtime_package", f"{toml_repr(package)} does not provide the {runtime.value} runtime",
            "one of: " + ", ".join(RUNTIME_PACKAGES[runtime]),
        )
    runtime_version: str = v["runtime_version"]
    try:
        version = version_tuple(runtime_version)
    except ValueError:
        raise origin.fail(
            "runtime_version", f"{toml_repr(runtime_version)} is not a version",
            'write dotted numbers such as "2.14" (Core ML: the iOS version, e.g. "17")',
        ) from None
    transport: Transport = v["transport"]
    if (transport is Transport.IOS) != (runtime is Runtime.COREML):
        raise origin.fail("transport", f"{toml_repr(transport)} does not fit runtime {toml_repr(runtime)}",
                          'Core ML profiles use transport = "ios"; only Core ML profiles do')

    delegates: tuple[str, ...] = tuple(v.get("delegates", ()))
    compute_units: str | None = v.get("compute_units")
    target: DeploymentTarget | None = v.get("minimum_deployment_target")
    if runtime is Runtime.COREML:
        _check_coreml(origin, compute_units, target, version)
    else:
        _check_delegates(origin, runtime, delegates)

    numbers = {k: v.get(k) for k in NUMBER_KEYS}  # floats (ram_budget_mb: int); None if not set
    if runtime is not Runtime.EDGETPU and numbers["peak_gmacs_fp32"] == 0:
        raise origin.fail("peak_gmacs_fp32", "0 is out of range (expected greater than 0)",
                          "0 only on an edgetpu profile (no float unit)")
    idle, active = v["idle_power_w"], v["active_power_w"]
    if active < idle:
        raise origin.fail("active_power_w", f"{toml_repr(active)} W is below idle_power_w {toml_repr(idle)} W",
                          "active power includes idle power")

    sources = _derived_peaks(origin, v["sources"], numbers, transport, v["threads"])
    recipe: str = v["recipe"]
    _check_recipe(origin, runtime, recipe, target)
    return DeviceProfile(
        name=path.stem,
        display_name=v["display_name"],
        description=v["description"],
        runtime=runtime,
        runtime_package=package,
        runtime_version=runtime_version,
        recipe=recipe,
        threads=v["threads"],
        delegates=delegates,
        compute_units=compute_units,
        deployment_target=target,
        transport=transport,
        sources=sources,
        path=path,
        builtin=builtin,
        **numbers,
    )


def _derived_peaks(origin: Origin, sources: dict[str, str], numbers: dict[str, Any], transport: Transport,
                   threads: int) -> dict[str, str]:
    """Peaks whose source is "derived: ..." are this machine's (`edgepool.hostinfo`, over the profile's
    threads): `numbers` gets them and the returned sources say how each was derived. Where this machine's
    CPU cannot be read, the file's number stays and its source becomes an estimate saying why."""
    derived = [k for k, text in sources.items() if text.split(":", 1)[0].strip() == "derived"]
    for key in derived:
        if key not in DERIVABLE_KEYS:
            raise origin.fail(f"{config.SOURCES_KEY}.{key}",
                              f"{key} cannot be derived: only {' and '.join(DERIVABLE_KEYS)} are (from this machine's CPU)",
                              "give it a datasheet, vendor, benchmark or estimate source")
        if transport is not Transport.LOCAL:
            raise origin.fail(f"{config.SOURCES_KEY}.{key}",
                              f"a derived peak describes this machine: only a profile with transport \"local\" "
                              f"may derive it (this one: {toml_repr(transport)})",
                              "give the device's peak a datasheet, vendor, benchmark or estimate source")
    if not derived:
        return sources
    from . import hostinfo

    out = dict(sources)
    peaks, why = hostinfo.host_peaks(max_cores=threads)
    for key in derived:
        if peaks is None:
            detail = sources[key].split(":", 1)[1].strip()
            fallback = detail.split("fallback", 1)[1].lstrip(" :") if "fallback" in detail else detail
            out[key] = f"estimate: {fallback} (not derived: {why})"
        elif key == "peak_gmacs_int8":
            numbers[key], out[key] = peaks.int8_gmacs, peaks.int8_source()
        else:
            numbers[key], out[key] = peaks.fp32_gmacs, peaks.fp32_source()
    return out


def _check_coreml(origin: Origin, compute_units: str | None, target: DeploymentTarget | None, version: tuple[int, ...]) -> None:
    if compute_units is None or target is None:  # required for Core ML by the schema
        return
    needs = COMPUTE_UNITS_MIN_TARGET[compute_units]
    if target < needs:
        raise origin.fail("compute_units", f"{compute_units} needs {needs.name} or later",
                          f"raise minimum_deployment_target (now {target.name}) or use ALL")
    if target.value > version[0]:
        raise origin.fail("minimum_deployment_target", f"{target.name} is newer than runtime_version {version[0]}",
                          "the deployment target cannot exceed the iOS version the profile targets")


def _check_delegates(origin: Origin, runtime: Runtime, delegates: tuple[str, ...]) -> None:
    allowed = RUNTIME_DELEGATES[runtime]
    for d in delegates:
        if d not in allowed:
            raise origin.fail("delegates", f"unknown delegate {toml_repr(d)} for {runtime.value}",
                              "one of: " + ", ".join(map(toml_repr, allowed)))
    if len(set(delegates)) != len(delegates):
        raise origin.fail("delegates", "a delegate is listed twice", "list each delegate once")
    if runtime is Runtime.EDGETPU and "edgetpu" not in delegates:
        raise origin.fail("delegates", "an Edge TPU profile must use the edgetpu delegate", 'add "edgetpu"')


# ---------------------------------------------------------------- recipes


def recipe_problem(runtime: Runtime, recipe: QuantRecipe, target: DeploymentTarget | None = None) -> str | None:
    """Why a device with `runtime` (and Core ML deployment `target`) cannot run `recipe`, or None."""
    if runtime is Runtime.COREML:
        if recipe.format is not RecipeFormat.COREML:
            return f"a {recipe.format.value} recipe cannot run on Core ML; use a coreml-* recipe"
        return recipe.coreml_target_problem(target) if target is not None else None
    if recipe.format is not RecipeFormat.TFLITE:
        return f"a {recipe.format.value} recipe cannot run on {runtime.value}; use a tflite recipe"
    if runtime is Runtime.EDGETPU and not (recipe.weights == "int8" and recipe.activations == "int8"):
        return (
            f"the Edge TPU runs fully int8 models only (recipe has weights={recipe.weights!r}, "
            f"activations={recipe.activations!r}); use edgetpu-int8"
        )
    return None


def _check_recipe(origin: Origin, runtime: Runtime, name: str, target: DeploymentTarget | None) -> None:
    if not _NAME_RE.match(name):
        raise origin.fail("recipe", f"{toml_repr(name)} is not a recipe name", 'name a shipped recipe, e.g. "int8" (`edgepool recipes list`)')
    shipped = recipe_names()
    if name not in shipped:
        close = config.did_you_mean(name, shipped)
        hint = f"did you mean {toml_repr(close)}?" if close else "shipped recipes: " + ", ".join(shipped)
        raise origin.fail("recipe", f"no recipe named {toml_repr(name)}", hint)
    try:
        recipe = load_recipe(name)
    except RecipeError as e:
        raise origin.fail("recipe", e.message, e.hint or "see `edgepool recipes list`") from None
    problem = recipe_problem(runtime, recipe, target)
    if problem:
        raise origin.fail("recipe", f"{toml_repr(name)}: {problem}", "pick a recipe this runtime can run")

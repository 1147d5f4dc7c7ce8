"""The one strict-TOML loader: recipes, device profiles (and later devices and gates) are read here.

A schema is a mapping `key -> Field`. `load_table(path, schema, error=..., what=...)` reads the file
and checks, in this order:

1. the file can be read and is TOML;
2. `schema_version` is present and is the version this edgepool reads;
3. no unknown keys (the hint suggests the closest known key: units are part of key names);
4. the variant key, if the schema has one (a recipe's `format`, a profile's `runtime`): keys that
   `apply_to` other variants are errors, and `required` keys are only required where they apply;
5. each value's type (a bool is not an integer; an integer is accepted for a number and returned as
   a float), allowed values (`choices`: a tuple or an enum class) and `range`;
6. missing required keys (the hint shows a line to add: `add schema_version = 1`);
7. a `[sources]` entry `"<kind>: <detail>"` for every number whose field `needs_source`, with kind
   one of `SOURCE_KINDS` (`derived`: computed from the machine the file is loaded on, the number in
   the file being the fallback; the caller says which keys may be derived and computes them).

Every error is one line naming the file and the key, with a hint, raised as the caller's
`EdgepoolError` subclass (`RecipeError`, `ProfileError`). Values from an enum class come back as
enum members. Standard library only: no TensorFlow.
"""

from __future__ import annotations

import difflib
import enum
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EdgepoolError, InputError

SCHEMA_VERSION = 1
VERSION_KEY = "schema_version"
SOURCES_KEY = "sources"
SOURCE_KINDS = ("datasheet", "vendor", "filing", "benchmark", "estimate", "derived")


class Kind(enum.StrEnum):
    """The TOML type a key holds (the value is how messages name it)."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    STRINGS = "list of strings"

    @property
    def with_article(self) -> str:
        """'an integer', 'a string', ... for messages."""
        return f"{article(self.value)} {self.value}"


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


@dataclass(frozen=True)
class Range:
    """Allowed numbers: `lo`/`hi` (None: unbounded), each bound inclusive unless said otherwise."""

    lo: float | None = None
    hi: float | None = None
    lo_inclusive: bool = True
    hi_inclusive: bool = True

    @classmethod
    def positive(cls) -> Range:
        """Greater than 0."""
        return cls(0, None, lo_inclusive=False)

    def contains(self, x: float) -> bool:
        if math.isnan(x):
            return False
        if self.lo is not None and (x < self.lo or (x == self.lo and not self.lo_inclusive)):
            return False
        return not (self.hi is not None and (x > self.hi or (x == self.hi and not self.hi_inclusive)))

    def describe(self) -> str:
        """'from 1 to 256', 'greater than 0', 'at least 0', 'greater than 0 and at most 1' ..."""
        lo, hi = _num_text(self.lo), _num_text(self.hi)
        if self.lo is not None and self.hi is not None and self.lo_inclusive and self.hi_inclusive:
            return f"from {lo} to {hi}"
        parts = []
        if self.lo is not None:
            parts.append(f"at least {lo}" if self.lo_inclusive else f"greater than {lo}")
        if self.hi is not None:
            parts.append(f"at most {hi}" if self.hi_inclusive else f"less than {hi}")
        return " and ".join(parts) or "any number"


@dataclass(frozen=True)
class Field:
    """What one key may hold.

    `choices`: allowed values, a tuple or an enum class (a StrEnum matches its values, any other
    enum its member names; the loaded value is the member). `range`: for integers and numbers.
    `meaning`: what the key is, with its unit ("RAM budget in MB"), shown in hints.
    `needs_source`: a number that must have a `[sources]` entry. `applies_to`: the values of the
    schema's variant key this key is for (None: all). `required`: must be present (where it
    applies). `example`: the value shown in "add key = example" (default: derived). `hint`: replaces
    the generic hint for a value that is not allowed or out of range.
    """

    kind: Kind
    required: bool = False
    choices: tuple[Any, ...] | type[enum.Enum] | None = None
    range: Range | None = None
    meaning: str = ""
    needs_source: bool = False
    applies_to: tuple[str, ...] | None = None
    example: str | None = None
    hint: str | None = None

    def allowed(self) -> list[str]:
        """The allowed values as they are written in a file."""
        return [toml_repr(v) for v in self._choice_map()] if self.choices is not None else []

    def _choice_map(self) -> dict[Any, Any]:
        """written value -> loaded value."""
        c = self.choices
        if c is None:
            return {}
        if isinstance(c, type) and issubclass(c, enum.Enum):
            if all(isinstance(m.value, str) for m in c):
                return {m.value: m for m in c}
            return {m.name: m for m in c}
        return {v: v for v in c}

    def example_text(self) -> str:
        if self.example is not None:
            return self.example
        written = list(self._choice_map())
        if written:
            return toml_repr(written[0])
        if self.kind is Kind.STRING:
            return '"..."'
        if self.kind is Kind.STRINGS:
            return '["..."]'
        if self.kind is Kind.BOOLEAN:
            return "true"
        lo = self.range.lo if self.range and self.range.lo is not None else 0
        if self.range and not self.range.lo_inclusive:
            lo += 1
        return _num_text(lo if self.kind is Kind.NUMBER else int(lo))


Schema = Mapping[str, Field]


@dataclass(frozen=True)
class Origin:
    """Where a table came from, to raise errors that all look the same: `<what> <path>: <key>: <problem>`."""

    path: Path
    error: type[EdgepoolError] = InputError
    what: str = "file"

    def fail(self, key: str | None, problem: str, hint: str) -> EdgepoolError:
        where = f"{self.what} {self.path}"
        return self.error(f"{where}: {key}: {problem}" if key else f"{where}: {problem}", hint)


def toml_repr(value: object) -> str:
    """A value as it is written in TOML: "text", true, 3, 2.5, ["a", "b"]."""
    if isinstance(value, enum.Enum):
        value = value.value if isinstance(value.value, str) else value.name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_repr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_repr(v)}" for k, v in value.items()) + "}"
    return _num_text(value) if isinstance(value, int | float) else str(value)


def _num_text(x: object) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return str(x)


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


# ---------------------------------------------------------------- reading


def read_toml(path: str | Path, *, error: type[EdgepoolError] = InputError, what: str = "file") -> dict[str, Any]:
    """Parse a TOML file; a missing, unreadable or non-TOML file is one clear `error`."""
    origin = Origin(Path(path), error, what)
    try:
        text = origin.path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise origin.fail(None, "no such file", "check the path") from None
    except IsADirectoryError:
        raise origin.fail(None, "is a directory, not a file", f"give the path of a {what} .toml file") from None
    except PermissionError:
        raise origin.fail(None, "cannot read it (permission denied)", "check the file's permissions") from None
    except UnicodeDecodeError:
        raise origin.fail(None, "not UTF-8 text", f"a {what} is a UTF-8 TOML text file") from None
    except OSError as e:
        raise origin.fail(None, f"cannot read it ({e.strerror or e})", "check the file") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise origin.fail(None, f"not valid TOML ({e})", "fix the TOML syntax at that line") from None


def load_table(
    path: str | Path,
    schema: Schema,
    *,
    error: type[EdgepoolError] = InputError,
    what: str = "file",
    variant: str | None = None,
    version: int = SCHEMA_VERSION,
) -> dict[str, Any]:
    """Read `path` and check it against `schema`; return the validated values (see the module doc).

    The result holds the keys present in the file (not `schema_version`), values converted (enum
    members, floats for numbers) and, if any field needs a source, `sources` (key -> text).
    `variant` names the key whose value decides which fields apply (`Field.applies_to`).
    """
    origin = Origin(Path(path), error, what)
    return check_table(read_toml(path, error=error, what=what), schema, origin, variant=variant, version=version)


def check_table(
    raw: Mapping[str, Any], schema: Schema, origin: Origin, *, variant: str | None = None, version: int = SCHEMA_VERSION
) -> dict[str, Any]:
    """`load_table` for a table already parsed (`origin` says where it came from, for messages)."""
    _check_version(raw, origin, version)
    sourced = [k for k, f in schema.items() if f.needs_source]
    known = [VERSION_KEY, *schema, *([SOURCES_KEY] if sourced else [])]
    for key in raw:
        if key not in known:
            close = did_you_mean(key, known)
            if close:
                meaning = schema[close].meaning if close in schema else ""
                hint = f"did you mean {close}" + (f" ({meaning})" if meaning else "") + "?"
            else:
                hint = "allowed keys: " + ", ".join(known)
            raise origin.fail(key, "unknown key", hint)

    out: dict[str, Any] = {}
    chosen: Any = None
    if variant is not None and variant in raw:
        chosen = out[variant] = _check_value(variant, raw[variant], schema[variant], origin)
    for key, value in raw.items():
        if key in (VERSION_KEY, SOURCES_KEY, variant):
            continue
        f = schema[key]
        if f.applies_to is not None and chosen is not None and chosen not in f.applies_to:
            raise origin.fail(
                key,
                f"does not apply to {variant} {toml_repr(chosen)}",
                f"{key} is for {' and '.join(map(str, f.applies_to))} {origin.what}s only; remove it",
            )
        out[key] = _check_value(key, value, f, origin)
    for key, f in schema.items():
        applies = f.applies_to is None or chosen is None or chosen in f.applies_to
        if f.required and applies and key not in raw:
            needs = "" if f.applies_to is None or chosen is None else f" (a {variant} {toml_repr(chosen)} {origin.what} needs it)"
            raise origin.fail(key, "missing" + needs, f"add {key} = {f.example_text()}")
    if sourced:
        out[SOURCES_KEY] = _check_sources(raw, sourced, origin)
    return out


def _check_version(raw: Mapping[str, Any], origin: Origin, version: int) -> None:
    if VERSION_KEY not in raw:
        raise origin.fail(VERSION_KEY, "missing", f"add {VERSION_KEY} = {version}")
    v = raw[VERSION_KEY]
    if not isinstance(v, int) or isinstance(v, bool):
        raise origin.fail(VERSION_KEY, f"expected an integer, got {toml_repr(v)}", f"write {VERSION_KEY} = {version}")
    if v != version:
        raise origin.fail(
            VERSION_KEY, f"version {v} is not supported", f"this edgepool reads {VERSION_KEY} = {version}"
        )


def _check_value(key: str, value: Any, f: Field, origin: Origin) -> Any:
    _check_type(key, value, f, origin)
    if f.kind is Kind.NUMBER:
        value = float(value)
        if not math.isfinite(value):
            raise origin.fail(key, f"expected a finite number, got {toml_repr(value)}", _value_hint(key, f))
    if f.kind is Kind.STRINGS:
        value = list(value)
    if f.choices is not None:
        if f.kind is Kind.STRINGS:
            value = [_choose(key, v, f, origin) for v in value]
        else:
            value = _choose(key, value, f, origin)
    if f.range is not None and not f.range.contains(value):
        rng = f.range.describe()
        raise origin.fail(key, f"{toml_repr(value)} is out of range (expected {rng})", f.hint or f"use a value {rng}")
    return value


def _choose(key: str, value: Any, f: Field, origin: Origin) -> Any:
    choices = f._choice_map()
    if value in choices:
        return choices[value]
    allowed = ", ".join(f.allowed())
    close = did_you_mean(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else None
    hint = f.hint or (f"did you mean {toml_repr(close)}?" if close else f"write one of them, e.g. {key} = {f.example_text()}")
    raise origin.fail(key, f"{toml_repr(value)} is not allowed (allowed: {allowed})", hint)


def _check_type(key: str, value: Any, f: Field, origin: Origin) -> None:
    ok = {
        Kind.STRING: isinstance(value, str) and value.strip() != "",
        Kind.INTEGER: isinstance(value, int) and not isinstance(value, bool),
        Kind.NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
        Kind.BOOLEAN: isinstance(value, bool),
        Kind.STRINGS: isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value),
    }[f.kind]
    if ok:
        return
    if f.kind is Kind.STRING and isinstance(value, str):
        raise origin.fail(key, "expected a non-empty string, got an empty one", _value_hint(key, f))
    got = toml_repr(value)
    if isinstance(value, bool) and f.kind in (Kind.INTEGER, Kind.NUMBER):
        hint = f"a boolean is not {f.kind.with_article}; write {'a whole number' if f.kind is Kind.INTEGER else 'a number'}"
    elif f.kind in (Kind.INTEGER, Kind.NUMBER) and isinstance(value, str):
        hint = "write a bare number without quotes" + ("; the unit is part of the key name" if f.meaning else "")
    elif f.kind is Kind.INTEGER and isinstance(value, float):
        hint = "write a whole number" + (f" ({key}: {f.meaning})" if f.meaning else "")
    elif f.kind is Kind.BOOLEAN:
        hint = "write true or false (no quotes)"
    else:
        hint = _value_hint(key, f)
    raise origin.fail(key, f"expected {f.kind.with_article}, got {got}", hint)


def _value_hint(key: str, f: Field) -> str:
    return f"{key} is {f.kind.with_article}" + (f" ({f.meaning})" if f.meaning else "") + f", e.g. {key} = {f.example_text()}"


def check_source(text: object) -> bool:
    """Whether `text` is a source: '<kind>: <detail>' with kind in SOURCE_KINDS and a detail."""
    if not isinstance(text, str) or ":" not in text:
        return False
    kind, detail = (part.strip() for part in text.split(":", 1))
    return kind in SOURCE_KINDS and bool(detail)


def _check_sources(raw: Mapping[str, Any], sourced: list[str], origin: Origin) -> dict[str, str]:
    sources = raw.get(SOURCES_KEY, {})
    if not isinstance(sources, dict):
        raise origin.fail(
            SOURCES_KEY, f"expected a table, got {toml_repr(sources)}", "write a [sources] table: key = \"<kind>: <detail>\""
        )
    kinds = ", ".join(SOURCE_KINDS)
    for key, text in sources.items():
        where = f"{SOURCES_KEY}.{key}"
        if key not in sourced:
            close = did_you_mean(key, sourced)
            hint = f"did you mean {close}?" if close else "sources name these numbers: " + ", ".join(sourced)
            raise origin.fail(where, f"{key} is not a number that takes a source", hint)
        if key not in raw:
            raise origin.fail(where, f"a source is given but {key} is not set", f"set {key}, or remove its source")
        if not check_source(text):
            raise origin.fail(
                where,
                f"{toml_repr(text)} is not \"<kind>: <detail>\"",
                f"kind is one of {kinds}; say where the number comes from, an estimate gives its formula",
            )
    for key in sourced:
        if key in raw and key not in sources:
            raise origin.fail(
                f"{SOURCES_KEY}.{key}",
                f"{key} has no source",
                f"add {key} = \"<kind>: <detail>\" under [{SOURCES_KEY}] (kind: {kinds})",
            )
    return dict(sources)

"""The JSON schemas of what edgepool writes for other programs: an export's `model.json` and benchmark results.

Shipped as package data in `edgepool/data/schemas/` (JSON Schema draft 2020-12), read through
`importlib.resources`, and the one contract the example apps (`examples/`) and edgepool's own code
share:

- `model.schema.json`: the sidecar of every export (also embedded in a .tflite's metadata);
- `benchmark-result.schema.json`: the saved results document; its `$defs/result` is one
  `BenchmarkResult`, `$defs/device_result` / `$defs/device_error` what a device reports for one model
  (the agent's `result` event; the `result.json` the example Android and iOS apps write).

`problems(doc, schema, definition)` lists what is wrong (one line each, with the JSON path); `check`
raises `SchemaViolation`, used where edgepool writes a document itself: a document edgepool wrote that
breaks its own schema is a bug in edgepool, not something a user did.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

MODEL = "model.schema.json"
BENCHMARK = "benchmark-result.schema.json"
SCHEMAS = (MODEL, BENCHMARK)


class SchemaViolation(RuntimeError):
    """A document edgepool wrote does not match its own schema: a bug in edgepool."""


@functools.cache
def load(name: str) -> dict[str, Any]:
    """The shipped schema `name` (MODEL or BENCHMARK) as a dict."""
    if name not in SCHEMAS:
        raise ValueError(f"unknown schema {name!r}; expected one of {', '.join(SCHEMAS)}")
    return json.loads(files("edgepool").joinpath("data", "schemas", name).read_text(encoding="utf-8"))


@functools.cache
def _validator(name: str, definition: str | None) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    schema = load(name)
    Draft202012Validator.check_schema(schema)
    if definition is None:
        return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    if definition not in schema.get("$defs", {}):
        raise ValueError(f"{name} has no definition {definition!r}")
    registry = Registry().with_resource(schema["$id"], Resource.from_contents(schema))
    return Draft202012Validator({"$ref": f"{schema['$id']}#/$defs/{definition}"}, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def problems(doc: Any, name: str, definition: str | None = None) -> list[str]:
    """What is wrong with `doc` against schema `name` (or its `$defs/<definition>`): one line per problem,
    `at <json path>: <message>`, in path order; empty when it is valid."""
    errors = sorted(_validator(name, definition).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"at {e.json_path}: {_short(e.message)}" for e in errors]


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def check(doc: Any, name: str, *, what: str, definition: str | None = None) -> None:
    """Raise SchemaViolation when `doc` (which edgepool wrote: `what` names it) breaks schema `name`."""
    found = problems(doc, name, definition)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise SchemaViolation(f"edgepool wrote {what} that breaks its own schema {name}: {found[0]}{more}; "
                              "this is a bug in edgepool, please report it with this message")


def check_model_json(sidecar: dict[str, Any], where: str = "model.json") -> None:
    """`check` for an export sidecar."""
    check(sidecar, MODEL, what=where)


def check_benchmark_document(doc: dict[str, Any], where: str = "a benchmark results file") -> None:
    """`check` for a saved benchmark results document."""
    check(doc, BENCHMARK, what=where)

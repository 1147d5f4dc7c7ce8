"""edgepool's import graph, derived from the source with `ast`, against the layers in DESIGN.md.

Every `import` / `from ... import` in every module under edgepool/ counts: at module level, inside
functions, under `if TYPE_CHECKING:`; relative imports are resolved, and `importlib.import_module`
calls with a literal (or f-string) "edgepool..." name count too. A unit is a top-level module
(`edgepool.runs`) or a subpackage with everything in it (`edgepool.export.tflite` -> `edgepool.export`).

Rules:
- every unit has a layer in LAYERS (a new module must be given one here);
- no unit imports a unit in a higher layer;
- no import cycle between units (same-layer imports are fine while they stay acyclic);
- `from edgepool import __version__` (the package root) is allowed from anywhere; other names taken
  from the root's lazy public API count as an import of the module that defines them (`_API`);
- `edgepool/bench/agent.py` is copied to devices: it imports nothing from edgepool;
- `edgepool/verify/_tflite_child.py` runs untrusted models in a child: numpy, a TFLite runtime (ai_edge_litert or tflite_runtime), stdlib only.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "edgepool"

# Bottom to top (docs/architecture.md, "Layers"). A unit may import units of its own layer or lower ones.
LAYERS: dict[str, int] = {
    # 0: the package root (__init__: public API by importlib strings, __version__), foundations
    "edgepool": 0, "types": 0, "errors": 0, "_tf": 0, "_paths": 0, "config": 0,
    "numeric": 0,  # NumPy-only helpers (softmax) shared across layers
    "hostinfo": 0,  # this machine's CPU (/proc, /sys) and the peak MAC/s it allows; standard library only
    "schemas": 0,  # the JSON schemas of model.json and benchmark results (jsonschema)
    # 1: storage
    "runs": 1,
    # 2: data, layers, model zoo (plots live in report/, which the pipeline calls when it saves a run)
    "datasets": 2, "layers": 2, "models": 2,
    # 3
    "training": 3, "qat": 3, "recipes": 3, "profiles": 3, "devices": 3,
    # 4
    "export": 4, "verify": 4, "inspect": 4, "bench": 4, "importers": 4, "predict": 4,
    # 5
    "pipeline": 5, "sweep": 5, "report": 5,
    "compat": 5,  # the pooling compatibility matrix: converts and verifies each edgepool.layers layer
    "gate": 5,  # the regression gate: runs, exports and benchmark files compared check by check
    "metrics": 5,  # Prometheus / JSON-lines export of benchmark results and gate reports (uses gate.coverage)
    # 6
    "cli": 6,
}


@dataclass(frozen=True)
class Edge:
    file: str  # importer, relative to the repository
    line: int
    importer: str  # dotted module name
    imported: str  # dotted module name
    exists: bool  # `imported` is a module or package in the source tree

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where} {self.importer} -> {self.imported}"


def unit_of(module: str) -> str:
    """`edgepool` -> `edgepool`; `edgepool.x` and `edgepool.x.y.z` -> `edgepool.x`."""
    return ".".join(module.split(".")[:2])


def short(unit: str) -> str:
    return "edgepool" if unit == "edgepool" else unit.split(".", 1)[1]


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file for every module under `root` (a package directory)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _api_map(init: Path) -> dict[str, str]:
    """The root package's `_API` dict (public name -> defining module), read without importing it."""
    for node in ast.parse(init.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "_API" for t in targets) and node.value is not None:
            return ast.literal_eval(node.value)
    return {}


def _literal_prefix(node: ast.expr) -> str | None:
    """"edgepool.x" from `"edgepool.x"` or from f"edgepool.x.{name}" (up to the first placeholder)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value).rstrip(".")
    return None


def imports_of(path: Path, module: str, modules: dict[str, Path], api: dict[str, str], repo: Path) -> list[Edge]:
    """Every import in `path` (module `module`) as edges; only edges into the `edgepool` package."""
    root = module.split(".")[0]
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    file = str(path.relative_to(repo))
    edges: list[Edge] = []

    def add(node: ast.AST, target: str) -> None:
        if target != root and not target.startswith(root + "."):
            return
        edges.append(Edge(file, node.lineno, module, target, target in modules))

    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:  # `from pkg import submodule`
                    add(node, f"{base}.{alias.name}")
                elif base == root and alias.name in api:  # the lazy public API: the real dependency
                    add(node, api[alias.name])
                else:  # a name defined in `base` (`from .. import __version__` -> the root)
                    add(node, base)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called == "import_module" and (target := _literal_prefix(node.args[0])):
                add(node, target)
    return list(dict.fromkeys(edges))  # `from x import a, b` is one edge


def import_graph(package_dir: Path = PACKAGE_DIR) -> list[Edge]:
    modules = module_names(package_dir)
    api = _api_map(package_dir / "__init__.py")
    repo = package_dir.parent
    edges = []
    for module, path in modules.items():
        edges += imports_of(path, module, modules, api, repo)
    return edges


def unit_cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one unit (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        a, b = unit_of(e.importer), unit_of(e.imported)
        graph.setdefault(a, set())
        graph.setdefault(b, set())
        if a != b:
            graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    sccs: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(sccs)


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_graph()


# --- the graph is really derived (a parser that finds nothing would pass every rule below) ---


def test_import_graph_reads_every_kind_of_import(tmp_path):
    pkg = tmp_path / "edgepool"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('__version__ = "0"\n_API = {"thing": "edgepool.sub.mod"}\n')
    (pkg / "base.py").write_text("")
    (pkg / "other.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .. import base\n")
    (pkg / "sub" / "mod.py").write_text(
        "import os\n"
        "from .. import __version__\n"
        "from ..base import x\n"
        "from . import sibling\n"
        "def f():\n"
        "    import edgepool.other as o\n"
        "    from edgepool import thing\n"
        "    from ..gone import y\n"
        "    importlib.import_module(f'edgepool.other.{o}')\n"
    )
    (pkg / "sub" / "sibling.py").write_text("")
    got = {(e.importer, e.line, e.imported, e.exists) for e in import_graph(pkg)}
    assert got == {
        ("edgepool.sub", 1, "edgepool.base", True),
        ("edgepool.sub.mod", 2, "edgepool", True),
        ("edgepool.sub.mod", 3, "edgepool.base", True),
        ("edgepool.sub.mod", 4, "edgepool.sub.sibling", True),
        ("edgepool.sub.mod", 6, "edgepool.other", True),
        ("edgepool.sub.mod", 7, "edgepool.sub.mod", True),
        ("edgepool.sub.mod", 8, "edgepool.gone", False),
        ("edgepool.sub.mod", 9, "edgepool.other", True),
    }
    assert unit_cycles([Edge("a", 1, "edgepool.a.x", "edgepool.b", True),
                        Edge("b", 1, "edgepool.b", "edgepool.a.y", True),
                        Edge("c", 1, "edgepool.c", "edgepool.a", True)]) == [["edgepool.a", "edgepool.b"]]


def test_upward_rule_flags_only_higher_layers():
    e = [Edge("edgepool/runs.py", 3, "edgepool.runs", "edgepool.report.plots", True),
         Edge("edgepool/cli/main.py", 4, "edgepool.cli.main", "edgepool.runs", True),
         Edge("edgepool/export/a.py", 5, "edgepool.export.a", "edgepool.verify", True)]
    assert upward(e) == ["edgepool/runs.py:3 edgepool.runs -> edgepool.report.plots  (layer 1 runs -> layer 5 report)"]


def test_graph_of_edgepool_is_not_empty(edges):
    importers = {e.importer for e in edges}
    assert len(importers) >= 20 and any(e.importer.startswith("edgepool.cli.") for e in edges)


# --- the rules ---


def test_every_unit_has_a_layer_and_every_import_exists(edges):
    units = {unit_of(m) for m in module_names(PACKAGE_DIR)} | {unit_of(e.imported) for e in edges if e.exists}
    unknown = sorted(short(u) for u in units if short(u) not in LAYERS)
    missing = [str(e) for e in edges if not e.exists]
    problems = []
    if unknown:
        problems.append(
            f"modules with no layer: {', '.join(unknown)}: add each to LAYERS in tests/unit/test_layering.py "
            "(and to the layer list in DESIGN.md / docs/architecture.md)"
        )
    if missing:
        problems.append("imports of modules that do not exist:\n  " + "\n  ".join(missing))
    assert not problems, "\n".join(problems)


def upward(edges: list[Edge]) -> list[str]:
    """Edges from a unit to a unit in a higher layer (units with no layer are reported elsewhere)."""
    out = []
    for e in edges:
        a, b = short(unit_of(e.importer)), short(unit_of(e.imported))
        if a in LAYERS and b in LAYERS and LAYERS[b] > LAYERS[a]:
            out.append(f"{e}  (layer {LAYERS[a]} {a} -> layer {LAYERS[b]} {b})")
    return out


def test_nothing_imports_a_higher_layer(edges):
    bad = upward(edges)
    assert not bad, f"{len(bad)} imports go up a layer:\n  " + "\n  ".join(bad)


def test_no_import_cycle_between_units(edges):
    cycles = unit_cycles(edges)
    lines = []
    for comp in cycles:
        lines.append(f"cycle between {', '.join(short(u) for u in comp)}:")
        members = set(comp)
        lines += [
            f"  {e}"
            for e in edges
            if unit_of(e.importer) in members and unit_of(e.imported) in members
            and unit_of(e.importer) != unit_of(e.imported)
        ]
    assert not cycles, "\n".join(lines)


def test_bench_agent_is_self_contained(edges):
    """agent.py is copied to devices on its own: it must not import edgepool (relative imports included)."""
    bad = [str(e) for e in edges if e.importer == "edgepool.bench.agent"]
    assert not bad, "edgepool/bench/agent.py imports edgepool:\n  " + "\n  ".join(bad)


def test_tflite_child_imports_only_numpy_litert_stdlib():
    path = PACKAGE_DIR / "verify" / "_tflite_child.py"
    allowed = {"numpy", "ai_edge_litert", "tflite_runtime", "__future__"} | set(sys.stdlib_module_names)
    bad = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ["." * node.level + (node.module or "")]
        else:
            continue
        bad += [f"verify/_tflite_child.py:{node.lineno} imports {n}" for n in names
                if n.startswith(".") or n.split(".")[0] not in allowed]
    assert not bad, "\n".join(bad)

"""Architecture rules for ``harness/`` and ``dashboard/``, checked by parsing (and, for rule 4, importing).

1. size: no module over 600 lines -- a file that big does several jobs; split it before it grows further.
2. cycles: no import cycle among harness modules (function-level and ``importlib.import_module`` imports
   count) -- cycles make import order matter, hide layering and turn refactors into whack-a-mole.
3. core: ``harness.core`` imports nothing else from harness -- it is the bottom layer every other package
   may use; anything it imported could never import it back.
4. light: results, dashboard, gate, config and core load none of torch/transformers/lm_eval/pynvml, so CI,
   the dashboard and the regression gate run (fast) on machines without a GPU stack.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 600
HEAVY = ("torch", "transformers", "lm_eval", "pynvml")


def _module_files(*tops: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the given top-level folders."""
    out = {}
    for top in tops:
        for path in sorted((REPO / top).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


HARNESS = _module_files("harness")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _edges_of(mod: str, path: Path) -> list[tuple[str, str, int, bool]]:
    """``(target, "file:line", line, type_only)`` for each harness import in ``mod``, anywhere in the file.

    Convention: ``import harness.a.b`` / ``from harness.a import b`` (b a module) is an edge to
    ``harness.a.b`` only, not to ``harness.a``'s ``__init__`` (which Python also runs first); otherwise every
    submodule importing a sibling would look like a cycle through its package ``__init__``.
    ``type_only``: under ``if TYPE_CHECKING:`` (never runs: not a cycle edge; rule 3 still counts it).
    """
    is_pkg = path.name == "__init__.py"
    package = mod if is_pkg else mod.rpartition(".")[0]
    found: dict[tuple[str, int, bool], None] = {}  # ordered set

    def resolve(name: str) -> str | None:  # longest prefix that is a harness module
        while name and name not in HARNESS:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in HARNESS else base for a in node.names]
        elif isinstance(node, ast.Call) and node.args:
            fname = getattr(node.func, "id", getattr(node.func, "attr", None))
            arg = node.args[0]
            lit = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
            if fname == "import_module" and lit:
                targets = [lit]
            elif fname == "discover":  # plug-in discovery imports every direct submodule of the package
                pkg = mod if isinstance(arg, ast.Name) and arg.id == "__name__" else lit
                targets = [m for m in HARNESS if pkg and m.rpartition(".")[0] == pkg]
        for target in dict.fromkeys(targets):
            if target.split(".")[0] == "harness" and (hit := resolve(target)) and hit != mod:
                found[hit, node.lineno, type_only] = None
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False)
    rel = path.relative_to(REPO)
    return [(t, f"{rel}:{line}", line, type_only) for t, line, type_only in found]


EDGES = {mod: _edges_of(mod, path) for mod, path in HARNESS.items()}


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (recursive; the graph has ~100 nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
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
            out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _cycle_path(start: str, comp: set[str]) -> list[str]:
    """Shortest cycle through ``start`` inside ``comp``, as 'a -> b  (file:line)' lines (BFS)."""
    where: dict[tuple[str, str], str] = {}
    for m in sorted(comp):
        for t, loc, _, type_only in EDGES[m]:
            if t in comp and not type_only:
                where.setdefault((m, t), loc)
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(t for (m, t) in where if m == v):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                path = [*reversed(path), start]
                return [f"    {a} -> {b}  ({where[a, b]})" for a, b in zip(path, path[1:])]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    return []


def test_no_module_over_600_lines():
    files = _module_files("harness", "dashboard").values()
    sizes = {str(p.relative_to(REPO)): len(p.read_text(encoding="utf-8").splitlines()) for p in files}
    big = sorted(((n, p) for p, n in sizes.items() if n > MAX_LINES), reverse=True)
    assert not big, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(f"  {p}: {n}" for n, p in big)


def test_no_import_cycles():
    graph = {m: {t for t, _, _, type_only in EDGES[m] if not type_only} for m in HARNESS}
    comps = [c for c in _sccs(graph) if len(c) > 1]
    report = []
    for i, comp in enumerate(sorted(comps, key=len, reverse=True), 1):
        path = "\n".join(_cycle_path(comp[0], set(comp)))
        report.append(f"cycle {i}: {len(comp)} modules: {', '.join(comp)}\n  e.g.\n{path}")
    assert not comps, f"{len(comps)} import cycle(s) among harness modules:\n" + "\n".join(report)


def test_core_imports_nothing_else_from_harness():
    core = [m for m in HARNESS if m == "harness.core" or m.startswith("harness.core.")]
    assert core, "harness/core/ does not exist yet: the bottom layer (registry, shared types) must live there"
    # TYPE_CHECKING imports count here: the bottom layer should not even name the types of upper layers.
    bad = [
        f"  {m} imports {t}  ({loc})"
        for m in core
        for t, loc, _, _ in EDGES[m]
        if not (t == "harness.core" or t.startswith("harness.core."))
    ]
    assert not bad, "harness.core must import nothing else from harness:\n" + "\n".join(bad)


def _under(pkg: str) -> list[str]:
    return sorted(m for m in HARNESS if m == pkg or m.startswith(pkg + "."))


LIGHT_GROUPS = {
    "results": ["harness.results", *_under("harness.results")],
    # dashboard/app.py and dashboard/views/* are streamlit pages (they render when imported): not here.
    "dashboard": ["dashboard", *(f"dashboard.{m}" for m in ("data", "tables", "charts", "synthetic", "ui"))],
    "gate": ["harness.gate"],
    "config": ["harness.config", "harness.config.suite", *_under("harness.config")],
    "core": ["harness.core", *_under("harness.core")],
}

# Runs in the fresh interpreter: a meta-path finder records who first asks for each heavy package.
_PROBE = r"""
import importlib, json, sys, traceback
HEAVY, MODULES, REPO = {heavy!r}, {modules!r}, {repo!r}
seen, errors, current = {{}}, {{}}, [None]

class Blame:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in seen:
            stack = [f for f in traceback.extract_stack()[:-1] if "importlib._bootstrap" not in f.filename]
            ours = [f"{{f.filename[len(REPO) + 1:]}}:{{f.lineno}}" for f in stack if f.filename.startswith(REPO)]
            direct = f"{{stack[-1].filename}}:{{stack[-1].lineno}}"
            seen[top] = {{"while_importing": current[0], "stack": ours, "direct": direct}}
        return None

sys.meta_path.insert(0, Blame())
for mod in MODULES:
    current[0] = mod
    try:
        m = importlib.import_module(mod)
    except BaseException:
        errors[mod] = traceback.format_exc(limit=-3)
        continue
    where = getattr(m, "__file__", None) or next(iter(getattr(m, "__path__", [])), "?")
    if not where.startswith(REPO + "/"):  # e.g. an editable install of another checkout filled the gap
        errors[mod] = f"resolved to {{where}}, outside this checkout ({{REPO}}): is it missing here?"
print(json.dumps({{"errors": errors, "heavy": {{k: v for k, v in seen.items() if k in sys.modules}}}}))
"""


@pytest.mark.parametrize("group", sorted(LIGHT_GROUPS))
def test_light_imports(group):
    modules = list(dict.fromkeys(LIGHT_GROUPS[group]))
    code = _PROBE.format(heavy=HEAVY, modules=modules, repo=str(REPO))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"probe crashed:\n{proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    msgs = [f"could not import {m}:\n{tb}" for m, tb in result["errors"].items()]
    for name, info in result["heavy"].items():
        chain = "\n".join(f"      {s}" for s in info["stack"]) or "      (no harness frame on the stack)"
        msgs.append(
            f"importing {info['while_importing']} loaded {name} (imported directly by {info['direct']});"
            f" harness frames, outermost first:\n{chain}"
        )
    assert not msgs, f"group {group!r} ({', '.join(modules)}) must stay light:\n" + "\n".join(msgs)

"""The architecture contract: sdtools never imports modx; every sdtools module imports only its
own layer or the ones below it (measures nothing but measures and errors); no import cycle in
either package. Imports inside functions count: the whole source is read, not what is loaded.
"""

import ast
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# sdtools, lowest first: a module may import its own layer and those listed before it
LAYERS = [
    ("base", ["sdtools", "sdtools.errors", "sdtools.io", "sdtools.runs", "sdtools.dist",
              "sdtools.progress", "sdtools.runner", "sdtools.records", "sdtools.log"]),
    ("measures", ["sdtools.measures", "sdtools.measures.*"]),
    ("data", ["sdtools.data", "sdtools.data.*"]),
    ("models", ["sdtools.models", "sdtools.models.*"]),
    ("evaluation", ["sdtools.evaluate", "sdtools.evaluate.*", "sdtools.classify",
                    "sdtools.zeroshot", "sdtools.logistic_probe"]),
    ("reports", ["sdtools.geometry_record", "sdtools.run_report", "sdtools.report_text",
                 "sdtools.kept_geometry", "sdtools.pairwise", "sdtools.report",
                 "sdtools.tables"]),
    ("figures", ["sdtools.viz", "sdtools.viz.*"]),
    ("commands", ["sdtools.cli", "sdtools.cli_common"]),
]
MEASURES_MAY_IMPORT = ["sdtools.measures", "sdtools.measures.*", "sdtools.errors"]


def modules() -> dict[str, Path]:
    out = {}
    for pkg in ("sdtools", "modx"):
        for f in sorted((ROOT / pkg).rglob("*.py")):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = f
    return out


def _targets(mods: dict, cur: str, node) -> set[str]:
    """The project modules an import statement names (the longest known prefix of each)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = cur.split(".")
            base = base if mods[cur].name == "__init__.py" else base[:-1]
            base = base[: len(base) - (node.level - 1)]
            stem = ".".join(base + ([node.module] if node.module else []))
        else:
            stem = node.module or ""
        names = [stem] + [f"{stem}.{a.name}" for a in node.names]
    hits = set()
    for n in names:
        while n and n not in mods:
            n = n.rpartition(".")[0]
        if n and n != cur:
            hits.add(n)
    return hits


def graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its source; a package's
    ``__init__`` importing its own children is not an edge back up."""
    mods = modules()
    edges = {}
    for m, f in mods.items():
        out = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                out |= _targets(mods, m, node)
        edges[m] = {d for d in out if not (m.startswith(d + ".")
                                           and mods[d].name == "__init__.py")}
    return edges


def layer_of(module: str) -> int:
    for i, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch(module, p) for p in patterns):
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name}")


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_sdtools_never_imports_modx():
    bad = [(m, d) for m, ds in graph().items() if m.startswith("sdtools")
           for d in ds if d.split(".")[0] == "modx"]
    assert not bad, bad


def test_every_sdtools_module_imports_only_its_layer_and_below():
    bad = []
    for m, ds in graph().items():
        if not m.startswith("sdtools"):
            continue
        for d in ds:
            if d.startswith("sdtools") and layer_of(d) > layer_of(m):
                bad.append(f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} "
                           f"({LAYERS[layer_of(d)][0]})")
    assert not bad, "\n".join(bad)


def test_measures_import_nothing_above_them():
    bad = [(m, d) for m, ds in graph().items() if m.startswith("sdtools.measures")
           for d in ds if not any(fnmatch(d, p) for p in MEASURES_MAY_IMPORT)]
    assert not bad, bad


def test_no_import_cycle_in_either_package():
    assert cycles(graph()) == []


@pytest.mark.parametrize("edges, expect", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_planted_cycles(edges, expect):
    assert cycles(edges) == expect


def test_the_graph_sees_imports_inside_functions():
    """The contract reads function bodies: a lazy upward import would be caught."""
    mods = modules()
    tree = ast.parse("def f():\n    if True:\n        from ..report import build_report\n")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _targets(mods, "sdtools.data.specs", node)
    assert found == {"sdtools.report"}
    assert layer_of("sdtools.report") > layer_of("sdtools.data.specs")

"""Lower layers never import upper ones: every import of every module (function-level ones
included), checked against the layers of ``STACK`` below (the README's Design section), and no import cycle anywhere.

A new module must be placed in ``STACK`` or ``BRANCH`` below: an unplaced one fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = ("sessrec", "t4r_paper_repro")

# Lowest first. A module may import modules of its own layer (no cycle) and of the layers below.
# Data flows schema → data → features → body → task/head → metrics → loop → outputs; the files a
# run writes (checkpoint, outputs, loggers) sit below the experiment loop because the loop calls
# their writers, and the readers of finished runs (report, recommend, export) sit above it.
STACK: list[tuple[str, set[str]]] = [
    ("foundation", {"sessrec.errors", "sessrec.io", "sessrec.runtime", "sessrec.stopping", "sessrec.runlock", "sessrec.launch", "sessrec.distributed",
                    "sessrec.progress",
                    "sessrec.config", "sessrec.presets"}),
    ("schema", {"sessrec.schema"}),
    ("data", {"sessrec.data"}),
    ("features", {"sessrec.features"}),
    ("bodies", {"sessrec.bodies"}),
    ("tasks/head/losses", {"sessrec.tasks", "sessrec.head", "sessrec.losses", "sessrec.optim"}),
    ("model/baselines", {"sessrec.model", "sessrec.baselines"}),
    ("metrics", {"sessrec.metrics"}),
    ("evaluation/training", {"sessrec.evaluation", "sessrec.training"}),
    ("learners", {"sessrec.learners"}),
    ("run files", {"sessrec.checkpoint", "sessrec.outputs", "sessrec.loggers"}),
    ("experiment", {"sessrec.experiment"}),
    ("seeds", {"sessrec.multiseed"}),
    ("outputs/report", {"sessrec.report_html", "sessrec.report", "sessrec.recommend", "sessrec.export"}),
    ("serving", {"sessrec.serve"}),
    ("tuning", {"sessrec.tuning"}),
    ("cli", {"sessrec.cli", "sessrec.__init__", "sessrec.__main__", "t4r_paper_repro"}),
]
# `sessrec prepare` is a branch beside the stack: it builds on the stack up to BRANCH_BASE, and only
# the stack's BRANCH_USER layer imports it (its own command line module is the top of the branch).
BRANCH: list[tuple[str, set[str]]] = [
    ("prepare", {"sessrec.datasets"}),
    ("prepare cli", {"sessrec.datasets.cli"}),
]
BRANCH_BASE, BRANCH_USER = "data", "cli"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts.pop()  # sessrec/data/__init__.py is sessrec.data; the top packages keep ".__init__"
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((SRC / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, anywhere in its code."""
    package = name.rsplit(".", 1)[0] if path.name != "__init__.py" else name.removesuffix(".__init__")
    found: set[str] = set()

    def add(target: str) -> None:
        if target in PACKAGES:
            target += ".__init__"
        if target.split(".")[0] in PACKAGES:
            found.add(target)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in known else base)
    found.discard(name)
    return found


def place(name: str) -> tuple[str, int]:
    """(``"stack"`` or ``"branch"``, layer index) of a module: its longest listed prefix wins."""
    best: tuple[int, str, int] | None = None
    for chain, layers in (("stack", STACK), ("branch", BRANCH)):
        for i, (_, prefixes) in enumerate(layers):
            for p in prefixes:
                if (name == p or name.startswith(p + ".")) and (best is None or len(p) > best[0]):
                    best = (len(p), chain, i)
    assert best is not None, f"{name} is in no layer: add it to STACK or BRANCH in {Path(__file__).name}"
    return best[1], best[2]


def layer_index(name: str) -> int:
    return next(i for i, (n, _) in enumerate(STACK) if n == name)


def violation(src: str, dst: str) -> str | None:
    """Why ``src`` may not import ``dst``, or None when it may."""
    (sc, si), (dc, di) = place(src), place(dst)
    chains = {"stack": STACK, "branch": BRANCH}
    where = f"{src} ({chains[sc][si][0]}) imports {dst} ({chains[dc][di][0]})"
    if sc == dc and di > si:
        return f"{where}: a lower layer imports an upper one"
    if sc == "branch" and dc == "stack" and di > layer_index(BRANCH_BASE):
        return f"{where}: the prepare branch builds only on the layers up to '{BRANCH_BASE}'"
    if sc == "stack" and dc == "branch" and si < layer_index(BRANCH_USER):
        return f"{where}: only the '{BRANCH_USER}' layer uses the prepare branch"
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    graph = {name: imports_of(name, path, known) for name, path in mods.items()}
    unknown = {d for deps in graph.values() for d in deps} - known
    assert not unknown, f"imports of modules that do not exist: {sorted(unknown)}"
    return graph


def test_every_module_is_in_a_layer():
    for name in modules():
        place(name)


def test_no_module_imports_a_higher_layer():
    graph = import_graph()
    bad = [v for src, deps in sorted(graph.items()) for dst in sorted(deps) if (v := violation(src, dst))]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_checks_catch_what_they_are_for():
    # the checker itself: a backwards import, a branch reaching up, a stack module using the branch, a circle
    assert violation("sessrec.data.loader", "sessrec.training") is not None
    assert violation("sessrec.training", "sessrec.data.loader") is None
    assert violation("sessrec.datasets.events", "sessrec.cli") is not None
    assert violation("sessrec.datasets.events", "sessrec.datasets.cli") is not None
    assert violation("sessrec.datasets.cli", "sessrec.datasets.pipeline") is None
    assert violation("sessrec.experiment", "sessrec.datasets.pipeline") is not None
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

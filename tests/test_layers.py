"""The import graph of ``personalign/``: dependencies point downwards, no circles, no borrowed private parts.

Every ``import`` counts, at module level and inside functions (a function-level import hides a circle from
Python, not from this check). A unit is a top-level package (``personalign/tasks/``) or module
(``personalign/config.py``). ``LAYERS`` lists them from the ground up, as shared/DESIGN.md draws them:
``cli/`` -> ``serve/``, ``eval/`` -> ``methods/`` -> what is specific to RPO/POPI/HYDRA -> ``train/`` ->
``engine/``, ``retrievers/`` -> ``data/`` -> ``tasks/``, ``backends/`` -> config, registry, store -> errors,
types. One difference from the picture: ``data/`` reads task specs (field rules), so ``tasks/`` sits below it.
A unit may import its own package and the units of lower layers only: two units of one layer do not
import each other. Within a package, private (``_name``) modules and names are its own business.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "personalign"

LAYERS: list[set[str]] = [
    {"errors", "types", ""},                                   # "": personalign/__init__.py (the version)
    {"config", "registry", "store", "extras"},
    {"tasks", "backends"},                                     # task specs, filters, metrics; LLM backends
    {"data"},                                                  # LaMP I/O (checks items with the task specs)
    {"engine", "retrievers", "history", "manifest", "rpm"},
    {"train"},                                                 # SFT, generic RL, model I/O, export
    {"rpo", "popi", "hydra"},                                  # what is specific to one method's training
    {"methods"},
    {"eval", "serve"},
    {"cli"},
]
LAYER = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path, root: Path) -> str:
    """``personalign.eval.report`` for ``<root>/eval/report.py``; a package is its ``__init__``'s name."""
    parts = (root.name,) + path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imports(path: Path, name: str, known: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """``(module, imported names, line)`` for every import of the project in ``path``, wherever it stands.

    ``from package import module`` counts as an import of that module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    project = next(iter(known)).split(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [alias.name for alias in node.names]
            submodules = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
            rest = [n for n in names if f"{base}.{n}" not in known]
            found += [(module, [], node.lineno) for module in submodules]
            if rest or not submodules:
                found.append((base, rest, node.lineno))
    return [(module, names, line) for module, names, line in found
            if module == project or module.startswith(project + ".")]


def unit(module: str) -> str:
    """The top-level package or module under the project a module belongs to ("" for the project itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def inside(module: str, package: str) -> bool:
    """Is ``module`` the package ``package`` or one of its modules?"""
    return module == package or module.startswith(package + ".")


def graph(root: Path) -> tuple[dict[str, set[str]], list[str], list[str]]:
    """The module graph, the imports that run up or sideways, and the cross-package private imports."""
    known = modules(root)
    edges: dict[str, set[str]] = {name: set() for name in known}
    upward, private = [], []
    for name, path in known.items():
        where = lambda line: f"{path.relative_to(root.parent)}:{line}"  # noqa: E731
        for target, names, line in imports(path, name, known):
            while target not in known and "." in target:
                target = target.rpartition(".")[0]  # an import of a name inside a module
            if target != name:
                edges[name].add(target)
            a, b = unit(name), unit(target)
            if a != b:
                if a not in LAYER or b not in LAYER:
                    upward.append(f"{where(line)}: {name} -> {target}: '{a if a not in LAYER else b}' has no layer "
                                  "in LAYERS (add it)")
                elif LAYER[b] >= LAYER[a]:
                    upward.append(f"{where(line)}: {name} (layer {LAYER[a]}) imports {target} (layer {LAYER[b]})")
            # private: a module or name starting with "_" belongs to the package that holds it
            parts = target.split(".")
            hidden = next((i for i, part in enumerate(parts) if is_private(part)), None)
            if hidden is not None and not inside(name, ".".join(parts[:hidden])):
                private.append(f"{where(line)}: {name} imports the private module {target}")
            holder = target if known[target].name == "__init__.py" else target.rpartition(".")[0]
            for n in names:
                if is_private(n) and not inside(name, holder):
                    private.append(f"{where(line)}: {name} imports the private name {n} of {target}")
    return edges, upward, private


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_unit_has_a_layer():
    units = {unit(name) for name in modules(ROOT)}
    assert units <= set(LAYER), f"give these a layer in LAYERS: {sorted(units - set(LAYER))}"


def test_imports_point_downwards():
    _, upward, _ = graph(ROOT)
    assert not upward, "imports that run up (or sideways) the layers:\n" + "\n".join(upward)


def test_no_import_circles():
    edges, _, _ = graph(ROOT)
    assert not circles(edges), "modules that import each other in a loop: " + str(circles(edges))


def test_no_package_imports_another_packages_private_parts():
    _, _, private = graph(ROOT)
    assert not private, "\n".join(private)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "personalign"
    for relative, text in {"__init__.py": "", **files}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_check_finds_planted_violations(tmp_path):
    root = _tree(tmp_path, {
        "tasks/__init__.py": "",
        "tasks/spec.py": "def f():\n    from personalign.methods.base import Method  # upward, inside a function\n",
        "tasks/metrics.py": "_index = 1\n",
        "methods/__init__.py": "",
        "methods/base.py": "from personalign.tasks import spec\n",
        "methods/_helpers.py": "x = 1\n",
        "methods/icl.py": "from personalign.methods._helpers import x  # same package: allowed\n",
        "eval/__init__.py": "",
        "eval/report.py": "from personalign.eval.rescore import run\nfrom personalign.methods._helpers import x\n",
        "eval/rescore.py": "def run():\n    from personalign.eval import report\n",
        "eval/stats.py": "from personalign.tasks.metrics import _index\n",
        "shelf.py": "import personalign.errors\n",
    })
    edges, upward, private = graph(root)
    assert any("personalign.tasks.spec (layer 2) imports personalign.methods.base (layer 7)" in u for u in upward)
    assert any("'shelf' has no layer" in u for u in upward)
    assert len(upward) == 2
    assert circles(edges) == [["personalign.eval.report", "personalign.eval.rescore"],
                              ["personalign.methods.base", "personalign.tasks.spec"]]
    assert sorted(p.split(": ", 1)[1] for p in private) == [
        "personalign.eval.report imports the private module personalign.methods._helpers",
        "personalign.eval.stats imports the private name _index of personalign.tasks.metrics"]


def test_the_check_passes_a_clean_tree(tmp_path):
    root = _tree(tmp_path, {
        "errors.py": "class E(Exception): pass\n",
        "tasks/__init__.py": "from personalign.errors import E\n",
        "tasks/_parse.py": "",
        "tasks/spec.py": "from . import _parse\nfrom personalign import errors\n",
        "methods/__init__.py": "",
        "methods/base.py": "def f():\n    from personalign.tasks.spec import errors\n",
    })
    edges, upward, private = graph(root)
    assert upward == [] and circles(edges) == [] and private == []
    assert edges["personalign.tasks.spec"] == {"personalign.tasks._parse", "personalign.errors"}
    assert edges["personalign.methods.base"] == {"personalign.tasks.spec"}


if __name__ == "__main__":  # the findings, without pytest
    edges, upward, private = graph(ROOT)
    print("\n".join(upward + private) or "no upward or private imports", circles(edges) or "no circles", sep="\n")

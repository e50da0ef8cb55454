"""The package's import rules, checked on the source (STYLE rule 15, DESIGN §4).

Every module under ``lifelab/`` is parsed (nothing is imported, so the check costs no start-up
and sees imports under ``TYPE_CHECKING`` and inside functions too, which a type-only circle or a
deferred import would otherwise hide) and two rules are applied:

- **No private names across modules.** ``from lifelab.x import _name``, or ``m._name`` where ``m``
  is a lifelab module, is refused, except inside ``lifelab/life`` (the compiled engine is part of
  the organism and shares its internals). A private *module* (``lifelab._files``,
  ``lifelab.lab._worker``) is private to the package it sits in: that package, and for a
  top-level one all of lifelab, may import it.
- **Layers run one way.** A module imports only from its own layer or lower ones (:data:`LEVELS`);
  ``memory`` never imports ``store`` (``store`` may import ``memory``). ``lifelab/__init__.py`` is
  the public facade: it may name any layer (it loads ``Life`` & co. lazily); the rest of the
  package may take only its ``__version__`` from it.

Exceptions are listed in :data:`PRIVATE_ALLOWED` and :data:`EDGES_ALLOWED`, each with why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "lifelab"

# Layer of each top-level part of the package: a module may import its own level or lower ones.
# "lifelab" is the package's __init__ (its __version__, and lazily the public names).
LEVELS = {
    "lifelab": 0,
    "exceptions": 0,
    "config": 0,
    "_files": 0,
    "memory": 1,
    "store": 1,
    "observe": 1,
    "life": 2,
    "lab": 3,
    "studies": 4,
    "cli": 5,
    "_argtypes": 5,
}
# Same level, one way only: (importer part, imported part) pairs that are refused.
FORBIDDEN_SIDEWAYS = {("memory", "store")}

# Packages whose modules may use each other's private names.
PRIVATE_SHARED = {"life"}  # the compiled engine is part of Life: one organism, two engines
# (importing module, "lifelab.module._name") pairs allowed besides; keep this empty.
PRIVATE_ALLOWED: set[tuple[str, str]] = set()

# (importing module, imported module) edges that break the layers but are allowed for now; keep
# this empty too (observe -> life and store -> life were the last ones).
EDGES_ALLOWED: set[tuple[str, str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _package_of(name: str) -> str:
    """The package a module belongs to (a package's __init__ belongs to the package itself)."""
    return name if _is_package(name) else name.rpartition(".")[0]


def _part(name: str) -> str:
    """The top-level part (``lifelab.memory.active`` → ``memory``; the package itself: lifelab)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "lifelab"


def _lazy_targets() -> dict[str, str]:
    """``lifelab.__getattr__``'s table: public name → the module that defines it."""
    tree = ast.parse((ROOT / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return {}


LAZY = _lazy_targets()


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from … import`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = _package_of(importer).split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


class _Imports(ast.NodeVisitor):
    """Collect, for one module, the lifelab modules it imports and the private names it uses."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.edges: list[tuple[str, int]] = []  # (imported module, line)
        self.private: list[tuple[str, int]] = []  # ("lifelab.x._name", line)
        self.private_modules: list[tuple[str, int]] = []  # ("lifelab.x._mod", line)
        self.aliases: dict[str, str] = {}  # local name → lifelab module it is bound to

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] != "lifelab":
                continue
            self._module(alias.name, node.lineno)
            if alias.asname:
                self.aliases[alias.asname] = alias.name
            else:
                self.aliases["lifelab"] = "lifelab"

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = _resolve(self.name, node)
        if source.split(".")[0] != "lifelab":
            return
        for alias in node.names:
            full = f"{source}.{alias.name}"
            local = alias.asname or alias.name
            if full in MODULES:  # a submodule
                self._module(full, node.lineno)
                self.aliases[local] = full
                continue
            if source == "lifelab" and alias.name in LAZY:  # `from lifelab import Life`
                self.edges.append((LAZY[alias.name], node.lineno))
            else:
                self.edges.append((source, node.lineno))
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                self.private.append((full, node.lineno))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        dotted = _dotted(node)
        if dotted is not None:
            head, *rest = dotted.split(".")
            if head in self.aliases:
                module = self.aliases[head]
                for attr in rest:
                    if f"{module}.{attr}" in MODULES:
                        module = f"{module}.{attr}"
                        self._module(module, node.lineno)
                        continue
                    if attr.startswith("_") and not attr.startswith("__"):
                        self.private.append((f"{module}.{attr}", node.lineno))
                    break
        self.generic_visit(node)

    def _module(self, name: str, line: int) -> None:
        self.edges.append((name, line))
        leaf = name.rpartition(".")[2]
        if leaf.startswith("_") and not leaf.startswith("__"):
            self.private_modules.append((name, line))


def _dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _scan(name: str) -> _Imports:
    visitor = _Imports(name)
    visitor.visit(ast.parse(MODULES[name].read_text(), filename=str(MODULES[name])))
    return visitor


SCANS = {name: _scan(name) for name in MODULES}


def _where(name: str, line: int) -> str:
    return f"{MODULES[name].relative_to(ROOT.parent)}:{line}"


def test_the_scan_sees_the_package():
    """Every part of the package has a level, and the scan finds imports to judge."""
    parts = {_part(name) for name in MODULES}
    assert parts <= set(LEVELS), sorted(parts - set(LEVELS))
    assert {"lifelab.lab.stats", "lifelab.life.loop"} <= {
        edge for scan in SCANS.values() for edge, _ in scan.edges
    }


def test_no_module_uses_another_modules_private_names():
    """``from lifelab.x import _name`` and ``module._name`` stay inside the module (or life/)."""
    found = []
    for name, scan in SCANS.items():
        for target, line in scan.private:
            owner = target.rpartition(".")[0]
            if owner == name or (name, target) in PRIVATE_ALLOWED:
                continue
            if _part(name) in PRIVATE_SHARED and _part(owner) == _part(name):
                continue
            found.append(f"{_where(name, line)} uses {target}")
        for target, line in scan.private_modules:
            home = target.rpartition(".")[0]  # the package the private module belongs to
            if name == home or name.startswith(home + "."):
                continue
            found.append(f"{_where(name, line)} imports the private module {target}")
    assert not found, "\n".join(found)


def test_the_allow_lists_hold_no_stale_entry():
    """An exception that the code no longer needs is removed, so it cannot hide a new one."""
    private = {(name, t) for name, scan in SCANS.items() for t, _ in scan.private}
    edges = {(name, t) for name, scan in SCANS.items() for t, _ in scan.edges}
    assert not PRIVATE_ALLOWED - private, sorted(PRIVATE_ALLOWED - private)
    assert not EDGES_ALLOWED - edges, sorted(EDGES_ALLOWED - edges)


def _wrong_way(name: str, target: str) -> bool:
    """Whether module ``name`` importing module ``target`` breaks the layers."""
    if name == "lifelab":  # the public facade: re-exports Life & co. lazily, on first use
        return False
    mine, theirs = _part(name), _part(target)
    if theirs not in LEVELS or (name, target) in EDGES_ALLOWED:
        return False
    return LEVELS[theirs] > LEVELS[mine] or (mine, theirs) in FORBIDDEN_SIDEWAYS


def test_layers_run_one_way():
    """A module imports only its own layer or lower ones; memory never imports store."""
    found = [
        f"{_where(name, line)}: {_part(name)} imports {target}"
        for name, scan in SCANS.items()
        for target, line in scan.edges
        if _wrong_way(name, target)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("name", "source", "wrong"),
    [
        ("lifelab.memory.active", "from lifelab.store.rundir import RunDir", True),
        ("lifelab.store.snapshot", "from lifelab.memory.active import COLUMNS", False),
        ("lifelab.observe.metrics", "if TYPE_CHECKING:\n    from lifelab import Life", True),
        ("lifelab.lab.bench", "def f():\n    from lifelab.studies import soak", True),
        ("lifelab.studies.soak", "import lifelab.cli", True),
        ("lifelab.store.rundir", "from lifelab import __version__", False),
        ("lifelab.cli", "from lifelab.studies.soak import run_soak", False),
    ],
)
def test_the_scan_finds_imports_that_go_the_wrong_way(name, source, wrong):
    """The detector itself: deferred and type-only imports count; lower layers are fine."""
    visitor = _Imports(name)
    visitor.visit(ast.parse(source))
    assert any(_wrong_way(name, target) for target, _ in visitor.edges) is wrong


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from lifelab.lab.bench import _measure", "lifelab.lab.bench._measure"),
        ("from lifelab.lab import plots\nplots._groups", "lifelab.lab.plots._groups"),
        ("import lifelab.lab.plots as p\np._fmt_value(1)", "lifelab.lab.plots._fmt_value"),
        ("import lifelab.lab.plots\nlifelab.lab.plots._x", "lifelab.lab.plots._x"),
        ("from ..lab.bench import _measure", "lifelab.lab.bench._measure"),
    ],
)
def test_the_scan_finds_private_names(source, found):
    """The detector itself: each spelling of a private use is seen (from a studies module)."""
    visitor = _Imports("lifelab.studies.report")
    visitor.visit(ast.parse(source))
    assert [t for t, _ in visitor.private] == [found]


def test_the_scan_leaves_public_names_and_objects_alone():
    """Public names, dunders and private attributes of objects (not modules) are not flagged."""
    visitor = _Imports("lifelab.studies.report")
    source = "from lifelab.lab import plots\nplots.partition\nplots.__name__\nlife._tick\n"
    visitor.visit(ast.parse(source))
    assert visitor.private == []

"""The import directions docs/architecture.md draws: a module imports only its own layer and
the layers below it. Every ``import`` counts, including those inside functions (a lazy import
is still a dependency); only imports under ``if TYPE_CHECKING:`` (annotations) do not."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nnrun"


def _layers() -> dict[str, int]:
    """Module name → layer number, read from the table in docs/architecture.md (layer 0 at the
    bottom), so the page and the test cannot disagree."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    layers: dict[str, int] = {}
    for number, modules in re.findall(r"^\| (\d+) \| [^|]+ \| ([^|]+) \|", text, flags=re.M):
        for name in re.findall(r"`([\w.*]+)`", modules):
            layers[name] = int(number)
    return layers


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer_of(module: str, layers: dict[str, int]) -> int | None:
    """A module's layer: its own entry, else its package's ``pkg.*`` entry."""
    while module:
        if module in layers:
            return layers[module]
        if f"{module}.*" in layers:
            return layers[f"{module}.*"]
        module = module.rpartition(".")[0]
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, imported nnrun module) for every import outside ``if TYPE_CHECKING:``."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "nnrun")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "nnrun":
            # `from nnrun import stats` imports the module nnrun.stats; `from nnrun.x import f` imports nnrun.x
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists() or (PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                found.append((node.lineno, candidate if is_module else node.module))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


MODULES = sorted(_module_name(p) for p in PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    layers = _layers()
    assert layers, "docs/architecture.md has no layer table"
    missing = [m for m in MODULES if m != "nnrun" and _layer_of(m, layers) is None]
    assert not missing, f"modules missing from docs/architecture.md's layer table: {missing}"
    stale = [name for name in layers if not name.endswith(".*") and name not in MODULES]
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


@pytest.mark.parametrize("module", [m for m in MODULES if m != "nnrun"])
def test_imports_point_down(module):
    """``nnrun`` itself (the package root: version constants and the lazy ``run``/``load``
    facade) may be imported for its constants from anywhere and is not checked."""
    layers = _layers()
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    own = _layer_of(module, layers)
    upward = []
    for line, target in _imports(ast.parse(path.read_text()), module):
        if target == "nnrun":
            continue
        theirs = _layer_of(target, layers)
        assert theirs is not None, f"{module}:{line} imports {target}, which has no layer"
        if theirs > own:
            upward.append(f"{path.relative_to(ROOT)}:{line} imports {target} (layer {theirs}) from layer {own}")
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


def test_the_checker_sees_an_upward_import():
    """The rule can fail: a lazy import of the CLI from the engine is caught."""
    tree = ast.parse("def f():\n    from nnrun import cli\n\nif TYPE_CHECKING:\n    from nnrun.api import RunResult\n")
    assert _imports(tree, "nnrun.engine") == [(2, "nnrun.cli")]

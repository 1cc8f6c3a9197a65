"""Each stage's source files (``elicit.tracking``) cover every module of ``elicit`` the stage imports.

Editing a source file re-runs the jobs that list it (Snakemake and DVC both take the lists as inputs), so a module a
stage imports but does not list can change the stage's outputs without re-running it. The test reads the imports
from the source text (``ast``, nothing is imported): every ``import``/``from ... import`` of ``elicit``, also inside
functions, followed transitively; importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too. Not
followed, because they never run or never change an output:

- imports under ``if TYPE_CHECKING:`` and in ``if __name__ == "__main__":`` blocks (not run on import);
- the imports inside the functions named in ``NO_OUTPUT`` — params validation, which accepts or rejects the params
  and never changes a value a stage reads, and the stage CLI's check that the tracked params did not change while a
  job ran. Without this every stage would list the whole package: ``elicit.config`` validates each section with
  the section's own config class;
- the package markers ``elicit`` and ``elicit.stages``: a docstring (and the version), which no output records.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from elicit import tracking
from helpers import REPO

SRC = REPO / "src"
NO_OUTPUT: dict[str, tuple[str, ...]] = {
    "elicit.config": ("check_params", "check_reserved_names", "check_overrides", "_section_checks"),
    "elicit.stages._cli": ("_tracked",),
}
"""Module → functions whose imports are not followed (see the module docstring)."""
MARKERS = {"elicit", "elicit.stages"}


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _skipped_block(node: ast.If) -> bool:
    """``if TYPE_CHECKING:`` or ``if __name__ == "__main__":`` (its ``else:`` still runs)."""
    test = node.test
    if isinstance(test, ast.Name | ast.Attribute):
        return (test.id if isinstance(test, ast.Name) else test.attr) == "TYPE_CHECKING"
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"


@cache
def imports(name: str) -> frozenset[str]:
    """The ``elicit`` modules that importing ``name`` runs directly (with their parent packages)."""
    path = module_file(name)
    assert path is not None, name
    skip = NO_OUTPUT.get(name, ())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _skipped_block(child):
                for stmt in child.orelse:
                    visit_one(stmt)
            else:
                visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in skip:
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)  # `from pkg import module`
        else:
            visit(node)

    visit(ast.parse(path.read_text(), str(path)))
    out: set[str] = set()
    for mod in found:
        parts = mod.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return frozenset(m for m in out if m.split(".")[0] == "elicit" and module_file(m) is not None)


def closure(name: str) -> set[str]:
    """Every ``elicit`` module that importing ``name`` runs, ``name`` included."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        mod = todo.pop()
        if mod not in seen:
            seen.add(mod)
            todo.extend(imports(mod))
    return seen


def as_source(mod: str) -> str:
    path = module_file(mod)
    assert path is not None
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("stage", sorted(tracking.STAGE_SOURCES))
def test_a_stage_lists_every_module_it_imports(stage: str) -> None:
    listed = set(tracking.sources(stage))
    missing = sorted(as_source(m) for m in closure(f"elicit.stages.{stage}") - MARKERS if as_source(m) not in listed)
    assert not missing, f"stage {stage} imports {missing}; add them to its list in elicit.tracking.STAGE_SOURCES"


def test_every_listed_source_exists() -> None:
    for stage in tracking.STAGE_SOURCES:
        for source in tracking.sources(stage):
            assert (REPO / source).is_file(), f"{stage}: {source} does not exist; fix elicit.tracking"


def test_the_skipped_functions_exist() -> None:
    """A renamed validator would make the test follow its imports (and fail on them) without saying why."""
    for mod, functions in NO_OUTPUT.items():
        path = module_file(mod)
        assert path is not None
        defined = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
        assert set(functions) <= defined, f"{mod} no longer defines {sorted(set(functions) - defined)}; fix NO_OUTPUT"


def test_the_walk_sees_lazy_and_package_imports() -> None:
    """The walk itself: a function-level import counts, and importing one module of a package runs its __init__."""
    assert "elicit.datasets" in imports("elicit.pipeline")  # data_file's import, inside a function
    assert {"elicit.datasets.readers", "elicit.datasets.sampling"} <= closure("elicit.stages.evaluate")
    assert "elicit.plan" not in closure("elicit.config")  # validation only

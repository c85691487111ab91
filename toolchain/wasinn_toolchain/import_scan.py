"""Find the imports of a Python module from its AST, and whether each one is guarded.

The bundler must decide, without running the guest, which modules a guest needs. Walking the
AST finds every ``import`` / ``from ... import`` statement; relative imports are resolved against
the importing module. An import inside a ``try`` whose handlers catch ImportError (or a parent
of it) or inside an ``if``/``else`` branch is *guarded*: the program has a plan for its absence
(an optional dependency, a native-mode fallback, ``if TYPE_CHECKING``), so the bundler only
warns when it cannot be satisfied instead of failing the build.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

_IMPORT_ERROR_NAMES = frozenset(
    {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
)


@dataclass(frozen=True)
class ImportRef:
    """One imported name.

    ``module`` is the absolute module imported; ``names`` are the names taken from it by a
    ``from`` import (each may be a submodule or just an attribute), empty for ``import x``.
    """

    module: str
    names: tuple[str, ...]
    guarded: bool
    lineno: int
    in_function: bool = False  # inside a def or lambda: runs on call, not when imported
    main_only: bool = False  # inside `if __name__ == "__main__":` (runs only as a script)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    for kind in kinds:
        name = kind.attr if isinstance(kind, ast.Attribute) else getattr(kind, "id", None)
        if name in _IMPORT_ERROR_NAMES:
            return True
    return False


def _is_main_test(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either order)."""
    if not isinstance(test, ast.Compare) or len(test.ops) != 1 or not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, test.comparators[0]]
    has_name = any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
    has_main = any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides)
    return has_name and has_main


def resolve_relative(module: str | None, level: int, importer: str, is_package: bool) -> str:
    """Absolute name of ``from <level dots><module> import ...`` inside ``importer``.

    Raises ValueError when the dots climb above the top-level package, as CPython would
    ("attempted relative import beyond top-level package").
    """
    if level == 0:
        return module or ""
    parts = importer.split(".") if is_package else importer.split(".")[:-1]
    if level - 1 > len(parts) - 1 or not parts:
        raise ValueError("attempted relative import beyond top-level package")
    base = parts[: len(parts) - (level - 1)]
    if module:
        base = base + module.split(".")
    return ".".join(base)


class _Collector(ast.NodeVisitor):
    def __init__(self, importer: str, is_package: bool) -> None:
        self.importer = importer
        self.is_package = is_package
        self.guard_depth = 0
        self.function_depth = 0
        self.main_depth = 0
        self.refs: list[ImportRef] = []
        self.errors: list[tuple[int, str]] = []

    def _guarded(self) -> bool:
        return self.guard_depth > 0

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.refs.append(
                ImportRef(
                    alias.name, (), self._guarded(), node.lineno, self.function_depth > 0,
                    self.main_depth > 0,
                )
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        try:
            target = resolve_relative(node.module, node.level, self.importer, self.is_package)
        except ValueError as exc:
            self.errors.append((node.lineno, str(exc)))
            return
        names = tuple(a.name for a in node.names if a.name != "*")
        self.refs.append(
            ImportRef(
                target, names, self._guarded(), node.lineno, self.function_depth > 0,
                self.main_depth > 0,
            )
        )

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.function_depth += 1
        self.generic_visit(node)
        self.function_depth -= 1

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function
    visit_Lambda = _visit_function

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        self.guard_depth += 1
        main = _is_main_test(node.test)
        self.main_depth += main
        for stmt in node.body:
            self.visit(stmt)
        self.main_depth -= main
        for stmt in node.orelse:
            self.visit(stmt)
        self.guard_depth -= 1

    def _visit_try(self, node: ast.Try | ast.TryStar) -> None:
        guards = any(_catches_import_error(h) for h in node.handlers)
        self.guard_depth += guards
        for stmt in node.body:
            self.visit(stmt)
        self.guard_depth -= guards
        for handler in node.handlers:
            self.visit(handler)
        for stmt in node.orelse + node.finalbody:
            self.visit(stmt)

    visit_Try = _visit_try
    visit_TryStar = _visit_try


def scan_imports(
    tree: ast.AST, importer: str, is_package: bool
) -> tuple[list[ImportRef], list[tuple[int, str]]]:
    """Imports of a parsed module ``importer``, plus (line, message) for impossible ones."""
    collector = _Collector(importer, is_package)
    collector.visit(tree)
    return collector.refs, collector.errors

"""import_scan: which imports a module makes, resolved and marked guarded or not."""

from __future__ import annotations

import ast
import textwrap

import pytest
from wasinn_toolchain.import_scan import resolve_relative, scan_imports


def scan(source: str, importer: str = "main", is_package: bool = False):
    refs, errors = scan_imports(ast.parse(textwrap.dedent(source)), importer, is_package)
    return {(r.module, r.names, r.guarded) for r in refs}, errors


def test_plain_and_from_imports() -> None:
    refs, errors = scan(
        """
        import os, json.decoder as jd
        from collections import abc, OrderedDict
        from typing import *
        def f():
            import textwrap
        class C:
            from re import compile
        """
    )
    assert errors == []
    assert refs == {
        ("os", (), False),
        ("json.decoder", (), False),
        ("collections", ("abc", "OrderedDict"), False),
        ("typing", (), False),
        ("textwrap", (), False),
        ("re", ("compile",), False),
    }


def test_guards() -> None:
    refs, _ = scan(
        """
        try:
            import a_try
        except ImportError:
            import b_handler
        else:
            import c_else
        finally:
            import d_finally
        try:
            import e_tuple
        except (ValueError, ModuleNotFoundError):
            pass
        try:
            import f_bare
        except:
            pass
        try:
            import g_other
        except KeyError:
            pass
        if x:
            import h_if
        else:
            import i_else
        while True:
            import j_loop
        """
    )
    guarded = {m for m, _, g in refs if g}
    assert guarded == {"a_try", "e_tuple", "f_bare", "h_if", "i_else"}
    assert {m for m, _, g in refs if not g} == {
        "b_handler",
        "c_else",
        "d_finally",
        "g_other",
        "j_loop",
    }


def test_relative_imports_in_a_module_and_a_package() -> None:
    refs, _ = scan("from . import x\nfrom .y import z\nfrom ..top import t\n", "pkg.sub.mod")
    assert {(m, n) for m, n, _ in refs} == {
        ("pkg.sub", ("x",)),
        ("pkg.sub.y", ("z",)),
        ("pkg.top", ("t",)),
    }
    refs, _ = scan("from . import x\nfrom .y import z\n", "pkg.sub", is_package=True)
    assert {(m, n) for m, n, _ in refs} == {("pkg.sub", ("x",)), ("pkg.sub.y", ("z",))}


def test_relative_import_beyond_top_level_is_reported() -> None:
    refs, errors = scan("from .. import nope\n", "pkg.mod")
    assert refs == set() and errors == [(1, "attempted relative import beyond top-level package")]
    assert scan("from . import x\n", "main")[1]  # a top-level script has no package


@pytest.mark.parametrize(
    ("module", "level", "importer", "is_package", "expected"),
    [
        (None, 1, "a.b", False, "a"),
        ("c", 1, "a.b", False, "a.c"),
        ("c", 1, "a.b", True, "a.b.c"),
        ("c.d", 2, "a.b.e", False, "a.c.d"),
        ("x", 0, "anything", False, "x"),
    ],
)
def test_resolve_relative(module, level, importer, is_package, expected) -> None:
    assert resolve_relative(module, level, importer, is_package) == expected

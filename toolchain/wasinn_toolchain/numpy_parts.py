"""Which parts of numpy's Python package a guest gets (tree-shaking numpy like the stdlib).

numpy's Python part is 170 modules (4 MB of code objects), and its optional corners (testing,
f2py, typing, ma, polynomial, ...) pull in a further 2 MB of the stdlib (doctest, unittest,
pydoc, argparse, ...). ``import numpy`` itself runs 80 of them. So a guest gets:

* the import closure of ``numpy`` and of every numpy module the guest names: ``import
  numpy.random``, ``from numpy import linalg``, or an attribute such as ``np.random.rng``
  (numpy loads ``random``, ``fft``, ``ma``, ``polynomial``, ... lazily, through its module
  ``__getattr__``, so an attribute is how guests usually reach them: :func:`attribute_uses`);
* following numpy's module-level imports, and the stdlib modules its functions import, but not
  the numpy modules its functions import (those are the lazy ``__getattr__`` and a few rare
  paths such as ``np.genfromtxt(usemask=True)`` -> ``numpy.ma``);
* the numpy modules numpy's compiled code imports (:data:`C_IMPORTS`).

A guest that reaches a left-out numpy module at run time (a dynamic import, ``getattr(np, x)``)
gets an ImportError naming ``[tool.wasinn] include`` (guest_boot); ``include = ["numpy.ma"]``
adds a numpy package with its submodules. Modules of the flavour's numpy that cannot work in
wasm are :data:`UNAVAILABLE`: naming one fails the build with the reason.
"""

from __future__ import annotations

import ast

C_IMPORTS = (
    "numpy", "numpy._core._internal", "numpy._core._exceptions", "numpy._core._methods",
    "numpy._core._dtype", "numpy._core._dtype_ctypes", "numpy._core.arrayprint",
    "numpy._core.printoptions", "numpy._core.numeric", "numpy._globals", "numpy.exceptions",
    "numpy.dtypes",
)  # fmt: skip
"""numpy modules numpy's C imports by name (``npy_cache_import_runtime`` and
``PyImport_ImportModule`` in numpy 2.4's sources): always bundled with numpy.
tests/toolchain/test_numpy_guest.py checks the list against the sources where they exist."""

LAZY_STDLIB_NOT_FOLLOWED = frozenset({
    "bz2", "gzip", "lzma", "shutil", "tempfile", "urllib.request", "urllib.error",  # np.DataSource
    "zipfile", "mmap", "pathlib", "json", "pprint", "pydoc", "ctypes", "_ctypes", "sysconfig",
})  # fmt: skip
"""Stdlib modules numpy's functions import that are not bundled unless the guest imports them
or includes them: compressed or remote files (``np.lib.npyio.DataSource``), ``.npz`` archives,
``np.memmap``, ``np.show_config``, ``np.info``, ctypes. Followed, they would add 1.4 MB of the
stdlib (and its own lazy imports) to every numpy guest; a guest that takes such a path gets the
ImportError that names ``include``. ``np.load``/``np.save`` of ``.npy`` and ``np.loadtxt`` of a
local file need none of them."""

UNAVAILABLE = {
    "numpy.fft": (
        "numpy.fft is not in the wasm build of numpy: its C++ core (pocketfft) reports errors "
        "with C++ exceptions, which wasm32-wasi cannot compile yet (docs/runtime.md)"
    ),
}
"""numpy packages whose compiled part the numpy flavour lacks, with the reason to show."""


def unavailable_reason(name: str) -> str | None:
    """Why the numpy module ``name`` (or its package) cannot be used in wasm, else None."""
    for package, reason in UNAVAILABLE.items():
        if name == package or name.startswith(package + "."):
            return reason
    return None


def attribute_uses(tree: ast.AST, modules: set[str] | dict) -> dict[str, int]:
    """numpy modules a module reaches as attributes of its numpy names: with ``import numpy
    as np``, ``np.random.default_rng`` names ``numpy.random``, ``np.lib.stride_tricks`` names
    ``numpy.lib.stride_tricks`` (the longest chain that is a module in ``modules``).

    Names bound by ``import numpy`` / ``import numpy as x`` / ``import numpy.sub as x``
    anywhere in the module count; a rebinding of the name elsewhere is not tracked (at worst
    a module more is bundled). Each name maps to the first line that uses it.
    """
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "numpy" or alias.name.startswith("numpy."):
                    # `import numpy.linalg` binds `numpy`; `import numpy.linalg as la` binds la.
                    aliases[alias.asname or "numpy"] = alias.name if alias.asname else "numpy"
    found: dict[str, int] = {}
    if not aliases:
        return found
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain: list[str] = []
        value: ast.expr = node
        while isinstance(value, ast.Attribute):
            chain.append(value.attr)
            value = value.value
        if not isinstance(value, ast.Name) or value.id not in aliases:
            continue
        name = aliases[value.id]
        longest = None
        for attr in reversed(chain):
            name = f"{name}.{attr}"
            if name not in modules and not unavailable_reason(name):
                break
            longest = name
            if name in UNAVAILABLE:
                break
        if longest is not None and node.lineno < found.get(longest, node.lineno + 1):
            found[longest] = node.lineno
    return found


def strip_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` (changed in place) without its docstrings, as ``python -OO`` compiles it.

    numpy's docstrings are a third of its code objects, and they stay on the heap of every
    snapshot that imports numpy; numpy supports ``-OO`` (every ``__doc__`` it edits may be
    None). Unlike ``-OO``, asserts stay: they are behaviour, docstrings are documentation.
    Docstrings with numpy's ``${ARRAY_FUNCTION_LIKE}`` placeholder stay too: numpy fills them
    in at import, and numpy.ma then checks their text (an empty one fails its import).
    """
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str) \
                and "${ARRAY_FUNCTION_LIKE}" not in body[0].value.value:
            node.body = body[1:] or [ast.copy_location(ast.Pass(), body[0])]
    return tree

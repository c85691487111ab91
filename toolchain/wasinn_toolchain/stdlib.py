"""Precompile the guest runtime's stdlib subset into ``stdlib.bundle``.

The guest runtime carries no Python files: every stdlib module a guest may import is served
from the frozen-module table, as a code object marshaled here by the host's CPython 3.11
(marshal data is bound to the minor version, and the runtime is CPython 3.11). Doing this once,
when the runtime is built, keeps ``wasinn build`` down to compiling the guest's own files.

What is left out, and why (docs/guests.md repeats this for guest authors):

* test suites and demos (``test``, ``idlelib``, ``turtledemo``, ``__phello__``, ``*/tests``):
  dead weight in a guest.
* packages whose C half is not in the runtime or that need an OS facility WASI preview 1 does
  not have: ``tkinter``/``turtle`` (Tk), ``curses`` (_curses), ``sqlite3`` (_sqlite3),
  ``ctypes`` (_ctypes, no dlopen), ``multiprocessing`` and ``concurrent`` (no processes or real
  threads), ``asyncio`` (no event loop worth having without sockets), ``ensurepip``, ``venv``,
  ``distutils``, ``lib2to3``, ``pydoc_data`` (700 KB of help topics); ``lzma``, ``bz2``,
  ``ssl``, ``gzip``, ``crypt`` (their C modules or zlib are not built in).
* modules that import, when loaded, a C module the runtime does not link
  (:data:`.inittab.LEFT_OUT`: the CJK codecs, ``stringprep``, ``encodings.idna``), found by
  :func:`unloadable` from their import lists.
* single modules that cannot import there (``pty``/``tty`` need termios, ``unittest.mock``
  needs asyncio, the Windows and bz2/zlib codecs, ``dbm.gnu``/``dbm.ndbm``): EXCLUDED_MODULES.
* the folders of the installation itself (``site-packages``, ``lib-dynload``, ``config-*``).

Everything a normal CLI program uses stays: encodings, json, re, dataclasses, pathlib, argparse,
enum, typing, logging, collections, datetime, decimal, fractions, statistics, csv, base64,
hashlib (on the built-in _md5/_sha*/_blake2), email, xml, urllib.parse, zoneinfo, unittest, ...

Next to the bundle a small JSON manifest records the runtime's built-in C modules (the table
the runtime links, :mod:`.inittab`), so the bundler can tell a guest's ``import math``
(built in) from an import the runtime cannot satisfy, without running the runtime.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import marshal
import sys
from pathlib import Path

from . import inittab
from .bundle_format import BundleModule, write_bundle
from .import_scan import scan_imports

REQUIRED_PYTHON = (3, 11)

EXCLUDED_TOP_LEVEL: frozenset[str] = frozenset(
    {
        # tests, demos, tools
        "test", "idlelib", "turtledemo", "__phello__", "__hello__", "antigravity", "this",
        "lib2to3", "pydoc_data", "ensurepip", "venv", "distutils",
        # no C half or no OS facility in the runtime
        "tkinter", "turtle", "curses", "sqlite3", "ctypes",
        "multiprocessing", "concurrent", "asyncio",
        "lzma", "bz2", "ssl", "gzip", "readline", "rlcompleter",
        "crypt",  # _crypt is not linked (inittab.LEFT_OUT); crypt raises ImportError itself
        # the installation's own folders, not packages
        "site-packages", "lib-dynload",
    }
)  # fmt: skip
"""Top-level stdlib names (modules or packages) not put in the bundle; see the module docstring."""

EXCLUDED_MODULES: frozenset[str] = frozenset(
    {
        "dbm.gnu", "dbm.ndbm",  # _gdbm, _dbm: not built (dbm.dumb stays)
        "encodings.bz2_codec", "encodings.zlib_codec",  # bz2, zlib: not built
        "encodings.mbcs", "encodings.oem",  # Windows only
        "pty", "tty",  # termios: not in WASI
        "unittest.mock", "unittest.async_case",  # need asyncio
        "unittest.__main__",  # `python -m unittest` discovery needs a file system layout
    }
)  # fmt: skip
"""Single modules of kept packages that cannot import in the runtime (found by importing every
bundled module inside it: tests/toolchain/test_build_e2e.py keeps that true)."""

EXCLUDED_SUBPACKAGES = ("tests", "test", "idle_test")
"""Sub-folders dropped wherever they occur (e.g. ``unittest/test``, ``ctypes/test``)."""

RUNTIME_EXTRA_BUILTINS = ("_wasi_nn", "_wasinn_image")
"""C modules the runtime adds with PyImport_AppendInittab (toolchain/runtime/main.c)."""

MANIFEST_SUFFIX = ".manifest.json"

DEEP_FROZEN: frozenset[str] = frozenset(
    {
        "_collections_abc", "_sitebuiltins", "abc", "codecs", "genericpath", "importlib.machinery",
        "importlib.util", "io", "ntpath", "os", "posixpath", "runpy", "site", "stat", "zipimport",
    }
)  # fmt: skip
"""Modules CPython 3.11 carries deep-frozen inside libpython (``_imp._frozen_module_names()``,
minus the test modules): a guest's bundle leaves them out, and CPython serves its own copies,
which need no unmarshalling.  The stdlib bundle keeps them so the bundler can follow their
imports."""


class StdlibBuildError(RuntimeError):
    """The stdlib bundle cannot be built (wrong interpreter, missing folder, bad source)."""


def manifest_path(bundle_path: Path) -> Path:
    """``stdlib.bundle`` -> ``stdlib.manifest.json`` beside it."""
    return bundle_path.with_name(bundle_path.stem + MANIFEST_SUFFIX)


def check_python_version() -> None:
    """Refuse to marshal with anything but CPython 3.11: the runtime could not load the code."""
    if sys.implementation.name != "cpython" or sys.version_info[:2] != REQUIRED_PYTHON:
        raise StdlibBuildError(
            "the guest runtime is CPython 3.11 and marshaled code is bound to the minor version; "
            f"this is {sys.implementation.name} {sys.version.split()[0]}. "
            "Build with a CPython 3.11 interpreter."
        )


def _excluded(rel: Path) -> bool:
    parts = rel.parts
    top = parts[0][:-3] if len(parts) == 1 and parts[0].endswith(".py") else parts[0]
    if top in EXCLUDED_TOP_LEVEL or top.startswith("config-"):
        return True
    if any(p in EXCLUDED_SUBPACKAGES or p == "__pycache__" for p in parts[:-1]):
        return True
    return any(not p.isidentifier() for p in parts[:-1])


def stdlib_sources(stdlib_dir: Path) -> list[tuple[str, Path, bool]]:
    """(module name, source path, is_package) of every .py the bundle keeps, sorted by name."""
    found: list[tuple[str, Path, bool]] = []
    for path in stdlib_dir.rglob("*.py"):
        rel = path.relative_to(stdlib_dir)
        if _excluded(rel):
            continue
        if ".".join(rel.with_suffix("").parts) in EXCLUDED_MODULES:
            continue
        if rel.name == "__init__.py":
            if len(rel.parts) == 1:
                continue
            found.append((".".join(rel.parts[:-1]), path, True))
        else:
            found.append((".".join(rel.with_suffix("").parts), path, False))
    found.sort()
    return found


def compile_source(source: bytes, filename: str) -> bytes:
    """Marshal the code object of ``source`` (raises SyntaxError as compile does)."""
    return marshal.dumps(compile(source, filename, "exec", dont_inherit=True, optimize=0))


def builtin_modules(stdlib_dir: Path) -> list[str]:
    """The runtime's built-in modules: the table it links (:mod:`.inittab`; the link fails on a
    name the libpython lacks).  ``stdlib_dir`` must be a CPython installation's lib folder."""
    if not any(stdlib_dir.glob("config-3.11*/config.c")):
        raise StdlibBuildError(f"no config-3.11*/config.c with an inittab under {stdlib_dir}")
    return inittab.builtin_names()


def module_imports(
    name: str, tree: ast.Module, is_package: bool
) -> tuple[list[str], list[str], list[str]]:
    """What ``name`` imports: (when loaded, inside functions, unconditionally when loaded).

    The first two (guarded imports included) feed the bundler's tree-shaking, which follows
    imports inside functions too, except into a few heavy tools (``bundler.LAZY_NOT_FOLLOWED``).
    The third decides whether the module can load at all in the runtime.  ``from pkg import x``
    lists ``pkg.x`` too, since ``x`` may be a submodule.
    """
    refs, _ = scan_imports(tree, name, is_package)
    loaded: set[str] = set()
    lazy: set[str] = set()
    required: set[str] = set()
    for ref in refs:
        if ref.main_only:  # a stdlib module's self-test or demo, never run in a guest
            continue
        targets = {ref.module, *(f"{ref.module}.{n}" for n in ref.names)}
        (lazy if ref.in_function else loaded).update(targets)
        if not ref.guarded and not ref.in_function:
            required.add(ref.module)
    loaded.discard("")
    lazy -= loaded | {""}
    return sorted(loaded), sorted(lazy), sorted(required)


ALWAYS_PRESENT = frozenset({"__main__", "_frozen_importlib", "_frozen_importlib_external"})


def unloadable(
    at_load: dict[str, list[str]], packages: dict[str, bool], builtins: set[str]
) -> set[str]:
    """Modules whose unconditional load-time imports (transitively) need something missing,
    e.g. ``socket`` once ``_socket`` is not linked: bundling them would only defer the error.

    ``packages`` maps every stdlib module to whether it is a package; ``import os.path`` is
    satisfied by the plain module ``os`` (an attribute), ``import a.b`` is not by package ``a``.
    """
    bad: set[str] = set()

    def satisfied(dep: str) -> bool:
        if dep in builtins or dep in ALWAYS_PRESENT:
            return True
        if dep in packages:
            return dep not in bad
        parts = dep.split(".")
        for depth in range(len(parts) - 1, 0, -1):
            parent = ".".join(parts[:depth])
            if parent in packages:
                return not packages[parent] and parent not in bad
        return False

    changed = True
    while changed:
        changed = False
        for name, deps in at_load.items():
            if name not in bad and not all(satisfied(dep) for dep in deps):
                bad.add(name)
                changed = True
    return bad


def build_stdlib_bundle(stdlib_dir: Path, out: Path) -> None:
    """Compile the stdlib subset under ``stdlib_dir`` (lib/python3.11) into the bundle ``out``.

    Each record is the module's code object, compiled with the filename ``<frozen NAME>`` so
    tracebacks name the module and linecache does not try to open a file that is not there.
    Also writes the manifest (see :func:`manifest_path`). The write is atomic.
    """
    check_python_version()
    stdlib_dir = Path(stdlib_dir)
    if not (stdlib_dir / "os.py").is_file() or not (stdlib_dir / "encodings").is_dir():
        raise StdlibBuildError(f"{stdlib_dir} is not a CPython lib/python3.11 folder")
    builtins = builtin_modules(stdlib_dir)
    compiled: dict[str, BundleModule] = {}
    imports: dict[str, list[str]] = {}
    lazy_imports: dict[str, list[str]] = {}
    at_load: dict[str, list[str]] = {}
    for name, path, is_package in stdlib_sources(stdlib_dir):
        source = path.read_bytes()
        try:
            tree = ast.parse(source, filename=str(path))
            code = marshal.dumps(
                compile(tree, f"<frozen {name}>", "exec", dont_inherit=True, optimize=0)
            )
        except SyntaxError as exc:
            raise StdlibBuildError(f"{path}:{exc.lineno}: {exc.msg}") from None
        compiled[name] = BundleModule(name, code, is_package)
        imports[name], lazy_imports[name], at_load[name] = module_imports(name, tree, is_package)
    # Whatever needs a C module the runtime does not link goes too (the CJK codecs without
    # _multibytecodec, socket without _socket, ...): see inittab.LEFT_OUT.
    dropped = unloadable(
        at_load, {n: m.is_package for n, m in compiled.items()}, set(builtins)
    )
    modules = [m for name, m in compiled.items() if name not in dropped]
    kept = {m.name for m in modules}
    data = write_bundle(modules, "")
    manifest = {
        "python": sys.version.split()[0],
        "magic": importlib.util.MAGIC_NUMBER.hex(),
        "modules": [m.name for m in modules],
        "builtin_modules": builtins,
        "excluded": sorted(EXCLUDED_TOP_LEVEL | EXCLUDED_MODULES | dropped),
        "deep_frozen": sorted(DEEP_FROZEN & kept),
        "imports": {name: [i for i in imports[name] if i in kept] for name in sorted(kept)},
        "lazy_imports": {
            name: [i for i in lazy_imports[name] if i in kept] for name in sorted(kept)
        },
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(out, data)
    _write_atomic(manifest_path(out), json.dumps(manifest, indent=1).encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """``python -m wasinn_toolchain.stdlib LIB_DIR OUT``: build the bundle by hand."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m wasinn_toolchain.stdlib LIB_PYTHON3.11_DIR OUT.bundle")
        return 2
    try:
        build_stdlib_bundle(Path(args[0]), Path(args[1]))
    except StdlibBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

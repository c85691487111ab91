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
  ``ssl``, ``gzip`` (their C modules or zlib are not built in).
* single modules that cannot import there (``pty``/``tty`` need termios, ``unittest.mock``
  needs asyncio, the Windows and bz2/zlib codecs, ``dbm.gnu``/``dbm.ndbm``): EXCLUDED_MODULES.
* the folders of the installation itself (``site-packages``, ``lib-dynload``, ``config-*``).

Everything a normal CLI program uses stays: encodings, json, re, dataclasses, pathlib, argparse,
enum, typing, logging, collections, datetime, decimal, fractions, statistics, csv, base64,
hashlib (on the built-in _md5/_sha*/_blake2), email, xml, urllib.parse, zoneinfo, unittest, ...

Next to the bundle a small JSON manifest records the runtime's built-in C modules (read from
the inittab in the sdist's ``config.c``), so the bundler can tell a guest's ``import math``
(built in) from an import the runtime cannot satisfy, without running the runtime.
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import re
import sys
from pathlib import Path

from .bundle_format import BundleModule, write_bundle

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

_INITTAB_ENTRY = re.compile(r'^\s*\{"([A-Za-z0-9_.]+)",\s*\w+\}', re.MULTILINE)


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
    """Names in the libpython's inittab (``config-3.11-*/config.c``) plus the runtime's own."""
    names: set[str] = set(RUNTIME_EXTRA_BUILTINS)
    for config_c in stdlib_dir.glob("config-3.11*/config.c"):
        names.update(_INITTAB_ENTRY.findall(config_c.read_text(encoding="utf-8")))
    if len(names) == len(RUNTIME_EXTRA_BUILTINS):
        raise StdlibBuildError(f"no config-3.11*/config.c with an inittab under {stdlib_dir}")
    return sorted(names)


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
    modules: list[BundleModule] = []
    for name, path, is_package in stdlib_sources(stdlib_dir):
        try:
            code = compile_source(path.read_bytes(), f"<frozen {name}>")
        except SyntaxError as exc:
            raise StdlibBuildError(f"{path}:{exc.lineno}: {exc.msg}") from None
        modules.append(BundleModule(name, code, is_package))
    data = write_bundle(modules, "")
    manifest = {
        "python": sys.version.split()[0],
        "magic": importlib.util.MAGIC_NUMBER.hex(),
        "modules": [m.name for m in modules],
        "builtin_modules": builtin_modules(stdlib_dir),
        "excluded": sorted(EXCLUDED_TOP_LEVEL | EXCLUDED_MODULES),
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

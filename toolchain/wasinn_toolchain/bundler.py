"""``wasinn build``: turn a guest package into one self-contained wasm module.

A guest is a folder (the import root, as for ``python DIR/main.py``) with ``main.py`` as its
entry, or a ``pyproject.toml`` naming another one in ``[tool.wasinn] entry = "module"``. The
build embeds, as one bundle appended to the prebuilt runtime (see :mod:`.wasm_module`):

* the precompiled stdlib subset (``stdlib.bundle``, made when the runtime was built);
* the ``wasi_nn`` SDK package, found where ``import wasi_nn`` would find it;
* every ``.py`` of the guest folder (minus ``tests/``, hidden folders and ``__pycache__``);
* the pure-Python third-party packages the guest imports, found in this host's environment.

Which third-party packages are needed is decided by walking the AST of every module reachable
from the entry (:mod:`.import_scan`), so no guest code runs at build time. The rules, also in
docs/guests.md: an unconditional import that nothing can satisfy fails the build; so does one
that only a native extension (``.so``/``.pyd``) or a host-only built-in module could satisfy,
because the wasm runtime cannot load native code. An import inside ``try/except ImportError``
or an ``if`` branch is guarded: the program has a plan for its absence (an optional speed-up,
a sub-command), so it is bundled when it can be and only produces a warning (``--verbose``)
when it cannot. The SDK's own guarded imports (its native-mode fallback) are never bundled.

Only the stdlib modules the guest and the SDK can reach are bundled (the import closure, from
the import lists the stdlib manifest records; modules CPython carries deep-frozen are left to
it). Modules imported dynamically (``importlib.import_module(name)``) are added with
``[tool.wasinn] include = [...]`` or ``--include``; a left-out one raises an ImportError naming
both. By default the module is then pre-initialised (:mod:`.snapshot`).

Every problem a user can cause ends in :class:`BuildError`, whose message says what to change.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.machinery
import importlib.util
import json
import marshal
import os
import re
import stat
import sys
import time
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from . import guest_boot, numpy_parts, paths
from .bundle_format import Bundle, BundleModule, read_bundle, write_bundle
from .import_scan import ImportRef, scan_imports
from .stdlib import manifest_path
from .snapshot import SnapshotError, preinitialise_with_output
from .snapshot_trim import drop_imported_code, imported_names
from .wasm_module import WasmFormatError, append_bundle

SDK_PACKAGE = "wasi_nn"
DEFAULT_ENTRY_FILE = "main.py"
SKIPPED_GUEST_DIRS = frozenset({"tests", "__pycache__"})
SKIPPED_PACKAGE_DIRS = frozenset({"tests", "test", "__pycache__"})
NATIVE_SUFFIXES = tuple(sorted(set(importlib.machinery.EXTENSION_SUFFIXES) | {".so", ".pyd"}))
ALWAYS_PRESENT = frozenset({"__main__", "_frozen_importlib", "_frozen_importlib_external"})
"""Modules every CPython has without a record: the running script and the import bootstrap."""
BOOT_MODULE = "_wasinn_boot"
IMPLICIT_IMPORTS: dict[str, tuple[str, ...]] = {
    "zipfile": ("encodings.cp437",),  # member names are decoded with codecs.decode(.., "cp437")
    "datetime": ("_strptime",),  # datetime.strptime imports it from C
}
"""Modules a stdlib module needs without an import statement the scan could see."""
RUNTIME_ROOTS = (
    "encodings", "encodings.utf_8", "encodings.utf_8_sig", "encodings.latin_1",
    "encodings.ascii", "encodings.utf_16", "encodings.utf_32", "encodings.unicode_escape",
    "encodings.raw_unicode_escape", "runpy", "linecache", "warnings",
)  # fmt: skip
"""Stdlib modules imported by the runtime itself (start-up, main.c, tracebacks and warnings)
and the common codecs; other codecs are looked up by name at run time, so they are
``include``d like any dynamic import (as is ``_strptime``, which ``time.strptime`` imports)."""

NUMPY_C_IMPORTS = (
    "copy", "datetime", "gc", "io", "math", "os", "pickle", "sys", "time",
)  # fmt: skip
"""Stdlib modules numpy's C imports (``PyImport_ImportModule``, ``npy_cache_import_runtime``
and ``PyDateTime_IMPORT``): invisible to the scan of Python sources, so the numpy flavour
bundles them; tests/toolchain/test_numpy_build.py checks the list against numpy's sources."""
NUMPY_RANDOM_C_IMPORTS = (
    "abc", "collections", "collections.abc", "itertools", "operator", "re", "secrets", "sys",
    "threading", "warnings",
)  # fmt: skip
"""Stdlib modules numpy.random's Cython modules import (its ``.pyx`` files, the only ones in
numpy): bundled when numpy.random is (``secrets`` alone brings random, hashlib and logging)."""


class BuildError(Exception):
    """A guest cannot be built; ``str()`` is a message the user can act on."""


@dataclass
class BuildReport:
    """What a build produced, for the CLI to print and for tests to check."""

    output: Path
    entry: str
    runtime: Path
    module_count: int
    guest_modules: int
    sdk_modules: int
    stdlib_modules: int
    third_party: tuple[str, ...]
    bundle_size: int
    output_size: int
    seconds: float
    warnings: tuple[str, ...] = ()  # filled only for verbose builds
    #: verbose builds: every bundled module with its origin, e.g. ("six", "vendor: g/vendor/six.py")
    modules: tuple[tuple[str, str], ...] = ()
    snapshot: bool = False
    stdlib_left_out: int = 0

    def summary(self) -> str:
        """One line (plus, for a verbose build, one line per bundled module and its origin)."""
        extra = f", third-party: {', '.join(self.third_party)}" if self.third_party else ""
        listing = "".join(f"\n  {name:<40} {where}" for name, where in self.modules)
        return listing.lstrip("\n") + ("\n" if listing else "") + (
            f"built {self.output} ({self.output_size / 1e6:.1f} MB) from entry '{self.entry}': "
            f"{self.module_count} modules ({self.guest_modules} guest, {self.sdk_modules} SDK, "
            f"{self.stdlib_modules} stdlib{extra}), bundle {self.bundle_size / 1e6:.1f} MB, "
            f"{'pre-initialised, ' if self.snapshot else ''}{self.seconds:.2f} s"
        )


@dataclass
class SourceModule:
    """A module compiled from source at build time (guest, SDK or third-party)."""

    name: str
    path: Path
    is_package: bool
    origin: str  # "guest", "sdk" or the third-party top-level name
    source: bytes | None = None  # None: an implicit package (a folder without __init__.py)
    filename: str = ""  # the code object's co_filename; "" means "<frozen NAME>"
    tree: ast.Module | None = None

    def parse(self, shown_path: Path) -> ast.Module:
        """The module's AST, parsed once; a syntax error becomes a BuildError at file:line:col."""
        if self.tree is None:
            try:
                self.tree = ast.parse(self.source or b"", filename=str(shown_path))
            except SyntaxError as exc:
                line = (exc.text or "").strip()
                where = f"{shown_path}:{exc.lineno or 0}:{exc.offset or 0}"
                hint = f"\n    {line}" if line else ""
                raise BuildError(f"{where}: syntax error: {exc.msg}{hint}") from None
            except ValueError as exc:  # e.g. NUL bytes in the source
                raise BuildError(f"{shown_path}: cannot be compiled: {exc}") from None
        return self.tree


@dataclass
class _Runtime:
    """The stdlib bundle's records and the runtime's built-in module names."""

    stdlib: Bundle
    names: frozenset[str]
    packages: frozenset[str]
    builtins: frozenset[str]
    magic: str  # importlib's bytecode magic of the Python that marshaled the stdlib
    imports: dict[str, list[str]]  # stdlib module -> what it imports when loaded
    lazy_imports: dict[str, list[str]]  # stdlib module -> what it imports inside functions
    deep_frozen: frozenset[str]  # served by CPython itself, never bundled per guest


@dataclass
class _State:
    """Everything one build collects while resolving imports."""

    modules: dict[str, SourceModule] = field(default_factory=dict)
    third_party: dict[str, str] = field(default_factory=dict)  # top-level -> where found
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Set when a package comes with the numpy runtime flavour: its C modules are built in.
    flavour: str | None = None
    flavour_builtins: frozenset[str] = frozenset()
    flavours_allowed: bool = True  # False when the caller chose the runtime file


# --- finding the inputs ----------------------------------------------------------------------


def _require_runtime(
    portable: bool, runtime: Path | None, stdlib: Path | None
) -> tuple[Path, Path]:
    """The runtime and stdlib bundle (the built ones unless overridden), checked to exist."""
    runtime_path = Path(runtime) if runtime else paths.runtime_wasm(portable)
    stdlib_path = Path(stdlib) if stdlib else paths.stdlib_bundle()
    try:
        return paths.require(runtime_path), paths.require(stdlib_path)
    except paths.RuntimeNotBuiltError as exc:
        raise BuildError(str(exc)) from None


@lru_cache(maxsize=4)
def _load_runtime_info(stdlib_path: Path, mtime_ns: int, size: int) -> _Runtime:
    """Parse stdlib.bundle and its manifest (cached per file version: tests build many guests)."""
    del mtime_ns, size  # only part of the cache key
    try:
        bundle = read_bundle(stdlib_path.read_bytes())
        manifest = json.loads(manifest_path(stdlib_path).read_text(encoding="utf-8"))
        builtins = frozenset(manifest["builtin_modules"])
        magic = str(manifest["magic"])
        imports = {str(k): [str(i) for i in v] for k, v in manifest["imports"].items()}
        lazy = {str(k): [str(i) for i in v] for k, v in manifest["lazy_imports"].items()}
        deep_frozen = frozenset(manifest["deep_frozen"])
    except (OSError, ValueError, KeyError) as exc:
        raise BuildError(
            f"the stdlib bundle {stdlib_path} or its manifest is unreadable ({exc}); "
            f"rebuild the runtime with `{paths.BUILD_COMMAND}`"
        ) from None
    return _Runtime(
        bundle,
        frozenset(m.name for m in bundle.modules),
        frozenset(m.name for m in bundle.modules if m.is_package),
        builtins,
        magic,
        imports,
        lazy,
        deep_frozen,
    )


def _runtime_info(stdlib_path: Path) -> _Runtime:
    stat = stdlib_path.stat()
    return _load_runtime_info(stdlib_path.resolve(), stat.st_mtime_ns, stat.st_size)


def _walk_python_files(root: Path, skipped: frozenset[str]) -> list[Path]:
    """Every importable .py under ``root``: folders must be identifiers, not hidden or skipped."""
    found: list[Path] = []

    def on_error(exc: OSError) -> None:
        raise BuildError(f"cannot read {exc.filename}: {exc.strerror}")

    for folder, dirs, files in os.walk(root, onerror=on_error):
        dirs[:] = sorted(
            d for d in dirs if d.isidentifier() and d not in skipped and not d.startswith(".")
        )
        for name in sorted(files):
            if name.endswith(".py") and name[:-3].isidentifier():
                found.append(Path(folder) / name)
    return found


def _read(path: Path) -> bytes:
    """The bytes of a regular file; a FIFO, socket or device (directly or through a symlink)
    is refused rather than read, since reading one hangs or never ends.

    Opened non-blocking (a FIFO without a writer does not block the open) and checked with
    fstat on that descriptor, so a file swapped in between cannot slip through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        try:                                  # a socket cannot be opened at all: say so
            _require_regular(path, os.stat(path).st_mode)
        except OSError:
            pass
        raise BuildError(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        _require_regular(path, os.fstat(fd).st_mode)
        try:
            return handle.read()
        except OSError as exc:
            raise BuildError(f"cannot read {path}: {exc.strerror or exc}") from None


def _require_regular(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise BuildError(f"{path} is not a regular file ({_file_kind(mode)}); "
                         "a guest folder may only hold regular files and folders")


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "a special file"


def _package_modules(
    root: Path, prefix: str, origin: str, skipped: frozenset[str]
) -> dict[str, SourceModule]:
    """Modules of the folder ``root`` named below ``prefix`` ("" for the guest's import root).

    Folders without ``__init__.py`` that hold modules get an empty package record, as CPython
    treats them as namespace packages.
    """
    modules: dict[str, SourceModule] = {}
    for path in _walk_python_files(root, skipped):
        rel = path.relative_to(root).with_suffix("").parts
        is_package = rel[-1] == "__init__"
        parts = ([prefix] if prefix else []) + list(rel[:-1] if is_package else rel)
        if not parts:  # an __init__.py in the guest's import root: not a module
            continue
        name = ".".join(parts)
        # Guest files keep their path relative to the import root, so tracebacks read like
        # `python main.py` and linecache finds the source when the folder is preopened.
        filename = path.relative_to(root).as_posix() if origin == "guest" else ""
        modules[name] = SourceModule(name, path, is_package, origin, _read(path), filename=filename)
    for name in list(modules):
        parts = name.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent not in modules:
                folder = root.joinpath(*parts[len(prefix.split(".")) if prefix else 0 : depth])
                modules[parent] = SourceModule(parent, folder, True, origin, None)
    return modules


def _wasinn_config(src: Path) -> dict:
    """The ``[tool.wasinn]`` table of the guest's pyproject.toml ({} without one)."""
    pyproject = src / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    try:
        config = tomllib.loads(_read(pyproject).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(f"{pyproject}: invalid TOML: {exc}") from None
    table = config.get("tool", {}).get("wasinn", {})
    return table if isinstance(table, dict) else {}


def _configured_includes(src: Path) -> list[str]:
    """``[tool.wasinn] include``: a list of module names, checked."""
    value = _wasinn_config(src).get("include", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BuildError(
            f'{src / "pyproject.toml"}: [tool.wasinn] include must be a list of module names '
            f'like ["json", "encodings.cp1252"], not {value!r}'
        )
    return value


def _entry_module(src: Path, guest: dict[str, SourceModule]) -> str:
    """The entry from pyproject.toml's ``[tool.wasinn] entry``, else ``main`` (main.py)."""
    pyproject = src / "pyproject.toml"
    if pyproject.is_file():
        entry = _wasinn_config(src).get("entry")
        if entry is not None:
            if not isinstance(entry, str) or not all(p.isidentifier() for p in entry.split(".")):
                raise BuildError(
                    f'{pyproject}: [tool.wasinn] entry must be a module name like "app" '
                    f'or "app.cli", not {entry!r}'
                )
            if entry not in guest:
                raise BuildError(
                    f'{pyproject}: [tool.wasinn] entry = "{entry}" but there is no module '
                    f"{entry} in {src} (looked for {entry.replace('.', '/')}.py)"
                )
            if guest[entry].is_package and f"{entry}.__main__" not in guest:
                raise BuildError(
                    f'{pyproject}: [tool.wasinn] entry = "{entry}" is a package without '
                    f"{entry.replace('.', '/')}/__main__.py, so there is nothing to run"
                )
            return entry
    if "main" in guest and not guest["main"].is_package:
        return "main"
    raise BuildError(
        f"no entry point in {src}: expected {src / DEFAULT_ENTRY_FILE}, or a pyproject.toml "
        'with [tool.wasinn] entry = "module_name"'
    )


def _sdk_modules() -> dict[str, SourceModule]:
    """All modules of the wasi_nn SDK, located without importing it."""
    spec = importlib.util.find_spec(SDK_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(
            "the wasi_nn SDK package is not installed in this Python environment "
            "(`pip install -e .` in the wasinn checkout provides it)"
        )
    root = Path(list(spec.submodule_search_locations)[0])
    return _package_modules(root, SDK_PACKAGE, "sdk", SKIPPED_PACKAGE_DIRS)


# --- third-party packages ------------------------------------------------------------------


def _find_native_file(locations: list[Path]) -> Path | None:
    """The first native extension file in the package (shallowest folders first), if any.

    Stops at the first hit: packages such as torch hold tens of thousands of files.
    """
    for root in locations:
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(NATIVE_SUFFIXES):
                    return Path(folder) / name
    return None


def _load_third_party(top: str, state: _State, vendor: Path | None = None) -> str | None:
    """Add the pure-Python package ``top`` from the guest's ``vendor/`` folder, else from the
    host environment; else say why not.

    Returns None on success, or the reason it cannot be bundled (for the error message).
    ``find_spec`` on a top-level name only locates it; nothing of the package runs.
    numpy is the exception: it comes from the numpy runtime flavour's own build, never from
    the host (whose numpy is native code).
    """
    if top == "numpy":
        return _load_numpy_flavour(state)
    spec = None
    if vendor is not None:
        try:
            spec = importlib.machinery.PathFinder.find_spec(top, [str(vendor)])
        except (ImportError, ValueError):
            spec = None
    if spec is None:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
    if spec is None:
        return "not found"
    origin = spec.origin
    if origin == "built-in":
        return (
            f"native: '{top}' is a module built into this host's Python but not into the wasm "
            "runtime, so it cannot be bundled"
        )
    if spec.submodule_search_locations:
        locations = [Path(p) for p in spec.submodule_search_locations]
        native = _find_native_file(locations)
        if native is not None:
            shown = (
                native.relative_to(locations[0].parent)
                if native.is_relative_to(locations[0].parent)
                else native
            )
            return (
                f"native: package '{top}' contains the native extension {shown} "
                f"(in {locations[0].parent}); "
                "wasm cannot load native code, so it cannot be bundled"
            )
        for root in locations:
            for name, module in _package_modules(root, top, top, SKIPPED_PACKAGE_DIRS).items():
                state.modules.setdefault(name, module)
        state.modules.setdefault(top, SourceModule(top, locations[0], True, top, None))
        state.third_party[top] = str(locations[0])
        return None
    if origin and origin.endswith(NATIVE_SUFFIXES):
        return (
            f"native: module '{top}' is the native extension {origin}; "
            "wasm cannot load native code, so it cannot be bundled"
        )
    if origin and origin.endswith(".py"):
        path = Path(origin)
        state.modules[top] = SourceModule(top, path, False, top, _read(path))
        state.third_party[top] = origin
        return None
    return f"found at {origin} but not as Python source, so it cannot be bundled"


def _load_numpy_flavour(state: _State) -> str | None:
    """numpy's Python part for wasm (built with the flavour), its C modules marked built in."""
    from .numpy_build import MODULES, NUMPY_VERSION

    if not state.flavours_allowed:
        return ("native: numpy's C core is only in the numpy runtime flavour of core-module "
                "builds, not with a runtime file of one's own nor in a component")
    root = paths.numpy_python_dir() / "numpy"
    if not (root / "__init__.py").is_file() or not paths.numpy_runtime_wasm().is_file():
        return (
            "native: numpy needs the numpy flavour of the runtime, which is not built; "
            "build it with `python -m wasinn_toolchain.build_runtime --numpy`"
        )
    for name, module in _package_modules(root, "numpy", "numpy", SKIPPED_PACKAGE_DIRS).items():
        if numpy_parts.unavailable_reason(name) is None:   # numpy.fft: its C core is not built
            state.modules.setdefault(name, module)
    state.modules.setdefault("numpy", SourceModule("numpy", root, True, "numpy", None))
    state.third_party["numpy"] = f"numpy {NUMPY_VERSION} for wasm32-wasi ({root})"
    state.flavour = "numpy"
    state.flavour_builtins = frozenset(MODULES.values())
    return None


# --- import resolution ---------------------------------------------------------------------


class _Resolver:
    """Walks imports from the entry, bundling third-party code and collecting problems."""

    def __init__(self, state: _State, runtime: _Runtime, src: Path,
                 vendor: Path | None = None) -> None:
        self.vendor = vendor
        self.state = state
        self.runtime = runtime
        self.src = src
        self.analysed: dict[str, bool] = {}  # name -> analysed as required?
        self.failed_tops: dict[str, str] = {}
        self.current_origin = "guest"
        self.stdlib_refs: set[str] = set()  # stdlib modules named by any analysed import

    def shown_path(self, module: SourceModule) -> Path:
        """Guest files relative to where the user pointed; others absolute."""
        if module.origin == "guest":
            try:
                return self.src / module.path.relative_to(self.src)
            except ValueError:
                pass
        return module.path

    def run(self, entry: str, roots: tuple[str, ...] = (), required: bool = True) -> None:
        """Analyse everything reachable from ``entry`` (and its ``__main__`` for a package)
        and from ``roots`` (the declared dependencies' top-level modules)."""
        queue: list[tuple[str, bool]] = [(root, True) for root in roots] + [(entry, required)]
        if self.state.modules[entry].is_package and f"{entry}.__main__" in self.state.modules:
            queue.append((f"{entry}.__main__", required))
        while queue:
            name, required = queue.pop()
            if self.analysed.get(name) is True or (name in self.analysed and not required):
                continue
            self.analysed[name] = required
            module = self.state.modules[name]
            self.current_origin = module.origin
            if module.source is None:
                continue
            tree = module.parse(self.shown_path(module))
            refs, bad = scan_imports(tree, name, module.is_package)
            where = self.shown_path(module)
            for lineno, message in bad:
                self._problem(required, f"{where}:{lineno}: {message}")
            for ref in refs:
                if module.origin == "numpy" and ref.in_function:
                    self._note_lazy_stdlib(ref)  # numpy's lazy submodules come on use only
                    continue
                queue.extend(self._resolve(ref, required, where))

    def _note_lazy_stdlib(self, ref: ImportRef) -> None:
        """A numpy function's import: its stdlib modules are bundled as the stdlib's own lazy
        imports are (not into LAZY_NOT_FOLLOWED); numpy modules are not followed."""
        for candidate in (ref.module, *(f"{ref.module}.{attr}" for attr in ref.names)):
            if (candidate in self.runtime.names and not _not_followed(candidate)
                    and candidate not in numpy_parts.LAZY_STDLIB_NOT_FOLLOWED):
                self.stdlib_refs.add(candidate)

    def run_numpy_roots(self, names: list[str], required: bool, where: str = "numpy",
                        lines: dict[str, int] | None = None) -> None:
        """Bundle the numpy modules ``names`` with their closure; one the flavour cannot
        provide (numpy.fft) is a problem at ``where``:line, an error if ``required``."""
        for name in sorted(names):
            reason = numpy_parts.unavailable_reason(name)
            if reason is not None:
                self.current_origin = "guest"
                line = f":{lines[name]}" if lines and name in lines else ""
                self._problem(required, f"{where}{line}: cannot use '{name}': {reason}")
            elif name in self.state.modules:
                self.run(name, required=required)

    def _problem(self, required: bool, message: str) -> None:
        # numpy's own imports that the runtime lacks (ctypes, mmap, pytest, ...) sit inside
        # functions of optional features; its start-up path is known to import.
        if required and self.current_origin != "numpy":
            self.state.errors.append(message)
        elif self.current_origin != "sdk":  # the SDK's fallbacks (native mode) are by design
            self.state.warnings.append(message)

    def _exists(self, name: str) -> str | None:
        """'source', 'runtime', 'attribute' (a name inside a plain module, like os.path) or None."""
        if name in self.state.modules:
            return "source"
        if name in ALWAYS_PRESENT or name in self.state.flavour_builtins:
            return "runtime"
        if name in self.runtime.names or name in self.runtime.builtins:
            return "runtime"
        parts = name.split(".")
        for depth in range(len(parts) - 1, 0, -1):
            parent = ".".join(parts[:depth])
            if parent in self.state.modules:
                return None if self.state.modules[parent].is_package else "attribute"
            if parent in self.runtime.names or parent in self.runtime.builtins:
                is_package = parent in self.runtime.packages
                return None if is_package else "attribute"
        return None

    def _resolve(
        self, ref: ImportRef, parent_required: bool, where: Path
    ) -> list[tuple[str, bool]]:
        required = parent_required and not ref.guarded
        name = ref.module
        if self.current_origin != "numpy" and name.split(".")[0] == "numpy":
            for candidate in (name, *(f"{name}.{attr}" for attr in ref.names)):
                reason = numpy_parts.unavailable_reason(candidate)
                if reason is not None:
                    self._problem(required, f"{where}:{ref.lineno}: cannot import "
                                            f"'{candidate}': {reason}")
                    return []
        for candidate in (name, *(f"{name}.{attr}" for attr in ref.names)):
            if candidate in self.runtime.names and candidate not in self.state.modules:
                self.stdlib_refs.add(candidate)
        kind = self._exists(name)
        if kind is None:
            top = name.split(".")[0]
            reason = self._unavailable(top, required)
            if reason is None:
                kind = self._exists(name)
            if kind is None:
                self._report_missing(ref, required, where, reason or "not found")
                return []
        targets: list[tuple[str, bool]] = []
        if kind == "source":
            targets.append((name, required))
            parts = name.split(".")
            for depth in range(1, len(parts)):  # importing a.b.c runs a and a.b first
                targets.append((".".join(parts[:depth]), required))
        for attr in ref.names:  # `from pkg import sub` imports the submodule pkg.sub
            child = f"{name}.{attr}"
            if child in self.state.modules:
                targets.append((child, required))
        return targets

    def _unavailable(self, top: str, required: bool) -> str | None:
        """Why the top-level name is unavailable, or None once it was made available."""
        if top in self.state.modules or top in self.runtime.names or top in self.runtime.builtins:
            return None
        if top in sys.stdlib_module_names:
            return (
                f"'{top}' is part of Python's standard library but not of the wasm runtime "
                "(no C module or OS support for it in WASI; see docs/guests.md)"
            )
        if self.current_origin == "numpy":
            return "numpy's optional dependency, not bundled"
        if not required and self.current_origin == "sdk":
            # The SDK's guarded imports are its native-mode fallbacks (wasinn.native.raw):
            # host-only by design, never worth bundling.
            return "optional, not bundled"
        if top == "numpy" and not required:
            # A guarded numpy import has a plan for numpy's absence; the numpy flavour (a
            # bigger module, slower start) is chosen only by an unconditional import.
            return "optional: numpy comes with the numpy runtime only for unguarded imports"
        if top not in self.failed_tops:
            reason = _load_third_party(top, self.state, self.vendor)
            if reason is None:
                return None
            self.failed_tops[top] = reason
        return self.failed_tops[top]

    def _report_missing(self, ref: ImportRef, required: bool, where: Path, reason: str) -> None:
        location = f"{where}:{ref.lineno}"
        if reason.startswith("native: "):
            message = f"{location}: cannot bundle '{ref.module}': {reason[len('native: ') :]}"
        elif reason == "not found" and ref.module.split(".")[0] in sys.stdlib_module_names:
            message = (
                f"{location}: '{ref.module}' is part of Python's standard library but not of "
                "the wasm runtime (see docs/guests.md for what is left out and why)"
            )
        elif reason == "not found":
            message = (
                f"{location}: no module named '{ref.module}': it is not in the guest folder, "
                "the wasm runtime's stdlib, or this Python environment"
            )
        elif reason == "optional, not bundled":
            message = f"{location}: optional import '{ref.module}' is not bundled"
        else:
            message = f"{location}: cannot import '{ref.module}': {reason}"
        if not required and not message.startswith(f"{location}: optional"):
            message += " (guarded import: the program must cope without it)"
        self._problem(required, message)


# --- the guest's pyproject.toml: dependencies, vendor/, exclude ------------------------------

VENDOR_DIR = "vendor"
"""A guest sub-folder laid out like site-packages: its packages are bundled before the build
environment's (for packages the building Python does not have, or pinned copies)."""


@dataclass
class GuestSettings:
    dependencies: tuple[str, ...] = ()   # distribution names from [project] dependencies
    exclude: tuple[str, ...] = ()        # globs from [tool.wasinn] exclude


def _guest_settings(src: Path) -> GuestSettings:
    pyproject = src / "pyproject.toml"
    if not pyproject.is_file():
        return GuestSettings()
    try:
        config = tomllib.loads(_read(pyproject).decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(f"{pyproject}: invalid TOML: {exc}") from None
    deps = config.get("project", {}).get("dependencies", [])
    exclude = config.get("tool", {}).get("wasinn", {}).get("exclude", [])
    for key, value in (("[project] dependencies", deps), ("[tool.wasinn] exclude", exclude)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BuildError(f"{pyproject}: {key} must be a list of strings")
    names = []
    for requirement in deps:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        if not match:
            raise BuildError(f"{pyproject}: cannot read the dependency {requirement!r}")
        names.append(match.group(1))
    return GuestSettings(tuple(names), tuple(exclude))


def _is_excluded(path: Path, src: Path, patterns: tuple[str, ...]) -> bool:
    """Whether the guest file `path` matches an exclude glob (the file or a folder above it)."""
    rel = path.relative_to(src).as_posix()
    parts = rel.split("/")
    candidates = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(candidate, pattern.strip("/"))
               for pattern in patterns for candidate in candidates)


def _distribution_tops(name: str) -> list[str]:
    """Top-level import names of the installed distribution `name` (metadata only)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return []
    listed = (dist.read_text("top_level.txt") or "").split()
    if listed:
        return listed
    tops = []
    for file in dist.files or ():
        first = file.parts[0] if file.parts else ""
        if first.endswith((".dist-info", ".egg-info", ".data")) or first in ("..", "__pycache__"):
            continue
        top = first[:-3] if first.endswith(".py") else first
        if top.isidentifier() and top not in tops and (len(file.parts) > 1 or first.endswith(".py")):
            tops.append(top)
    return tops


def _dependency_roots(names: tuple[str, ...], resolver: _Resolver, src: Path) -> tuple[str, ...]:
    """The declared dependencies' top-level modules, bundled (or a BuildError saying why not)."""
    roots: list[str] = []
    problems: list[str] = []
    for name in names:
        normal = re.sub(r"[-_.]+", "_", name).lower()
        vendored = resolver.vendor is not None and (
            (resolver.vendor / normal).is_dir() or (resolver.vendor / f"{normal}.py").is_file())
        tops = [normal] if vendored else _distribution_tops(name)
        if not tops:
            problems.append(
                f"dependency '{name}' (pyproject.toml) is neither installed in this Python "
                f"environment nor in {src / VENDOR_DIR}: `pip install {name}` where you run "
                f"`wasinn build`, or copy the package into {src / VENDOR_DIR}")
            continue
        for top in tops:
            reason = resolver._unavailable(top, True)
            if reason is not None:
                problems.append(f"dependency '{name}' (pyproject.toml): cannot bundle '{top}': "
                                f"{reason.removeprefix('native: ')}")
            elif top in resolver.state.modules:
                roots.append(top)
    if problems:
        raise BuildError(f"cannot build {src}:\n  " + "\n  ".join(problems))
    return tuple(roots)


def _listing(state: _State, records: list[BundleModule], src: Path, vendor: Path | None,
             excluded: list[str]) -> tuple[tuple[str, str], ...]:
    """Every bundled module with where it came from, for `wasinn build -v`."""
    rows: list[tuple[str, str]] = []
    for record in records:
        module = state.modules.get(record.name)
        if module is None:
            rows.append((record.name, "stdlib (runtime)"))
        elif module.origin == "guest":
            rows.append((record.name, f"guest: {module.path}"))
        elif module.origin == "sdk":
            rows.append((record.name, f"SDK: {module.path}"))
        elif vendor is not None and module.path.resolve().is_relative_to(vendor.resolve()):
            rows.append((record.name, f"vendor: {module.path}"))
        else:
            rows.append((record.name, f"environment: {module.path}"))
    rows += [(name, "excluded ([tool.wasinn] exclude)") for name in sorted(excluded)]
    return tuple(rows)


# --- compiling and writing ---------------------------------------------------------------------


def _compile(module: SourceModule, shown: Path) -> bytes:
    """Marshaled code object of a source module (an empty one for an implicit package)."""
    filename = module.filename or f"<frozen {module.name}>"
    tree = module.parse(shown) if module.source is not None else ast.Module([], [])
    if module.origin == "numpy":
        tree = numpy_parts.strip_docstrings(tree)
    try:
        code = compile(tree, filename, "exec", dont_inherit=True, optimize=0)
    except SyntaxError as exc:  # checks past the parser, e.g. 'return' outside function
        raise BuildError(
            f"{shown}:{exc.lineno or 0}:{exc.offset or 0}: syntax error: {exc.msg}"
        ) from None
    except ValueError as exc:
        raise BuildError(f"{shown}: cannot be compiled: {exc}") from None
    return marshal.dumps(code)


def _write_atomic(out: Path, data: bytes) -> None:
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"cannot write {out}: {exc.strerror or exc}") from None


def _expand_includes(names: list[str], info: _Runtime, state: _State, src: Path) -> set[str]:
    """Stdlib modules asked for with include (a package brings all its submodules).

    A name that is not in the runtime's stdlib must be the guest's own or a third-party module
    the build can bundle; anything else is a BuildError.
    """
    found: set[str] = set()
    for name in names:
        if name not in info.names and not all(p.isidentifier() for p in name.split(".")):
            raise BuildError(f"include: {name!r} is not a module name")
        if name in info.names:
            prefix = name + "."
            found.add(name)
            found.update(n for n in info.names if n.startswith(prefix))
            continue
        if name in state.modules:
            continue
        top = name.split(".")[0]
        reason = "not found"
        if top not in sys.stdlib_module_names:
            reason = _load_third_party(top, state) or "not found"
            if name in state.modules:
                continue
        if reason.startswith("native: "):
            raise BuildError(f"include: cannot bundle '{name}': {reason[len('native: '):]}")
        raise BuildError(
            f"include: no module named '{name}' in the wasm runtime's stdlib, the guest folder "
            f"{src} or this Python environment"
        )
    return found


LAZY_NOT_FOLLOWED = frozenset(
    {
        # interactive and developer tools
        "pydoc", "doctest", "pdb", "bdb", "unittest", "cProfile", "profile", "pstats", "trace",
        "tracemalloc", "code", "codeop", "cmd", "timeit", "webbrowser", "getpass", "dis",
        "argparse",  # the `main()` of tokenize, json.tool, ...: a guest's own argparse is a root
        # resources and metadata of installed packages (the guest has none on disk)
        "importlib.readers", "importlib.resources", "importlib.metadata", "pkgutil",
        # networking, mail and archives, which an inference guest reaches only on purpose
        "email", "http", "urllib.request", "xmlrpc", "mailbox", "socketserver", "ftplib",
        "smtplib", "tarfile", "zipfile", "shelve", "dbm", "mimetypes", "uuid", "platform",
        "subprocess", "plistlib",
    }
)  # fmt: skip
"""Modules the stdlib imports only inside functions, on paths a guest rarely takes (help(),
debuggers, package metadata, networking): following them would bundle most of the stdlib.
A guest that does take such a path gets an ImportError naming ``include``; a guest that imports
one of them itself gets it, with everything it needs."""


def _not_followed(name: str) -> bool:
    parts = name.split(".")
    return any(".".join(parts[:depth]) in LAZY_NOT_FOLLOWED for depth in range(1, len(parts) + 1))


def _stdlib_closure(roots: set[str], info: _Runtime) -> set[str]:
    """Every stdlib module reachable from ``roots`` through the manifest's import lists,
    parent packages included (importing a.b.c runs a and a.b first); imports inside functions
    are followed except into :data:`LAZY_NOT_FOLLOWED`."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in info.names:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:depth]) for depth in range(1, len(parts)))
        todo.extend(info.imports.get(name, ()))
        todo.extend(n for n in info.lazy_imports.get(name, ()) if not _not_followed(n))
        todo.extend(IMPLICIT_IMPORTS.get(name, ()))
    return seen


def _preload_names(entry: SourceModule, known: set[str]) -> tuple[str, ...]:
    """The entry's own top-level, unconditional imports of stdlib, SDK or numpy modules, for
    the snapshot to import at build time (never guest or other third-party code: it could
    print, read files or the environment, and would then do so at build time instead of at
    run time; numpy's import does none of that, see guest_boot.refresh for its random state)."""
    if entry.tree is None:
        return ()
    refs, _ = scan_imports(entry.tree, entry.name, entry.is_package)
    names: list[str] = []
    for ref in refs:
        if ref.guarded or ref.in_function:
            continue
        for candidate in (ref.module, *(f"{ref.module}.{n}" for n in ref.names)):
            if candidate in known and candidate not in names:
                names.append(candidate)
    return tuple(names)


def _boot_module(preload: tuple[str, ...], omitted: set[str],
                 numpy_left_out: set[str] = frozenset()) -> BundleModule:
    """``_wasinn_boot``: guest_boot.py with this guest's PRELOAD, OMITTED (stdlib) and
    NUMPY_LEFT_OUT (numpy modules not bundled; UNAVAILABLE ones with their reason) appended."""
    source = Path(guest_boot.__file__).read_text(encoding="utf-8")
    source += f"\nPRELOAD = {preload!r}\nOMITTED = frozenset({sorted(omitted)!r})\n"
    if numpy_left_out:
        source += (f"NUMPY_LEFT_OUT = frozenset({sorted(numpy_left_out)!r})\n"
                   f"NUMPY_UNAVAILABLE = {numpy_parts.UNAVAILABLE!r}\n")
    code = compile(source, f"<frozen {BOOT_MODULE}>", "exec", dont_inherit=True, optimize=0)
    return BundleModule(BOOT_MODULE, marshal.dumps(code), False)


def _numpy_includes(names: list[str], state: _State) -> list[str]:
    """numpy modules asked for with include (a package brings its submodules), checked."""
    from .numpy_build import NUMPY_VERSION

    if names and state.flavour != "numpy":
        reason = _load_third_party("numpy", state)
        if reason is not None:
            raise BuildError(f"include: cannot bundle numpy: {reason.removeprefix('native: ')}")
    found: list[str] = []
    for name in names:
        reason = numpy_parts.unavailable_reason(name)
        if reason is not None:
            raise BuildError(f"include: cannot bundle '{name}': {reason}")
        prefix = name + "."
        matches = [n for n, m in state.modules.items() if m.origin == "numpy"
                   and (n == name or n.startswith(prefix))]
        if not matches:
            raise BuildError(f"include: no module named '{name}' in the numpy flavour's "
                             f"numpy {NUMPY_VERSION}")
        found += matches
    return found


def _bundle_numpy_parts(resolver: _Resolver, includes: list[str], uses_sdk: bool) -> None:
    """Analyse the numpy modules the guest reaches: numpy's C imports, includes, and the
    numpy submodules bundled code names as attributes (``np.random``); see numpy_parts."""
    state = resolver.state
    resolver.run_numpy_roots([*numpy_parts.C_IMPORTS, *includes], True)
    for name, module in sorted(state.modules.items()):
        if module.origin == "numpy" or module.source is None or (
                module.origin == "sdk" and not uses_sdk):
            continue
        where = resolver.shown_path(module)
        uses = numpy_parts.attribute_uses(module.parse(where), state.modules)
        resolver.run_numpy_roots(list(uses), resolver.analysed.get(name, False), str(where), uses)
    # numpy's own functions reach its lazy submodules as attributes too: np.unique and
    # np.median call np.ma.is_masked. Until nothing new is bundled.
    scanned: set[str] = set()
    while todo := [n for n in resolver.analysed
                   if state.modules[n].origin == "numpy" and n not in scanned]:
        for name in todo:
            scanned.add(name)
            module = state.modules[name]
            if module.source is not None:
                uses = numpy_parts.attribute_uses(module.parse(module.path), state.modules)
                resolver.run_numpy_roots(list(uses), resolver.analysed[name])


def _check_paths(src: Path, out: Path) -> None:
    if not src.exists():
        raise BuildError(f"guest folder {src} does not exist")
    if not src.is_dir():
        raise BuildError(f"{src} is not a folder: `wasinn build` takes the guest's folder")
    if not os.access(src, os.R_OK | os.X_OK):
        raise BuildError(f"guest folder {src} is not readable")
    if out.is_dir():
        raise BuildError(f"output {out} is a folder; give a file name such as {out / 'guest.wasm'}")
    if out.exists() and not out.is_file():
        # the output is renamed into place: that would replace a device such as /dev/null
        raise BuildError(f"output {out} exists and is not a regular file")
    if not out.parent.is_dir():
        raise BuildError(f"the output's folder {out.parent} does not exist")


def build_guest(
    src: Path,
    out: Path,
    *,
    portable: bool = False,
    verbose: bool = False,
    runtime: Path | None = None,
    stdlib: Path | None = None,
    snapshot: bool = True,
    include: list[str] | tuple[str, ...] = (),
    notice: Callable[[str], None] | None = None,
) -> BuildReport:
    """Build the guest folder ``src`` into the wasm module ``out`` (written atomically).

    ``portable`` picks the runtime flavour that imports only the six wasi_ephemeral_nn
    functions every runtime has. ``runtime``/``stdlib`` override the built runtime files (tests).
    ``snapshot`` pre-initialises the module with Wizer (:mod:`.snapshot`); ``include`` adds
    modules the import scan cannot see (dynamic imports), as ``[tool.wasinn] include`` does.
    ``notice`` is told before the slow step (pre-initialisation), for the CLI to print.
    With ``verbose`` the report carries warnings (guarded imports that could not be bundled,
    guest modules shadowing stdlib ones) for the caller to print; nothing is printed here.
    """
    started = time.perf_counter()
    src, out = Path(src), Path(out)
    _check_paths(src, out)
    runtime_path, stdlib_path = _require_runtime(portable, runtime, stdlib)
    info = _runtime_info(stdlib_path)
    if info.magic != importlib.util.MAGIC_NUMBER.hex():
        raise BuildError(
            f"this Python ({sys.version.split()[0]}) writes code objects the runtime cannot load: "
            f"its stdlib bundle was compiled by another version (magic {info.magic}). "
            "Run `wasinn build` with CPython 3.11, the version of the guest runtime."
        )

    settings = _guest_settings(src)
    vendor = src / VENDOR_DIR if (src / VENDOR_DIR).is_dir() else None
    guest = _package_modules(src, "", "guest", SKIPPED_GUEST_DIRS | {VENDOR_DIR})
    excluded = [name for name, module in guest.items()
                if module.source is not None and _is_excluded(module.path, src, settings.exclude)]
    for name in excluded:
        del guest[name]
    for name in [n for n, m in guest.items() if m.source is None]:   # emptied implicit packages
        if not any(other.startswith(name + ".") for other in guest):
            del guest[name]
    entry = _entry_module(src, guest)
    state = _State(flavours_allowed=runtime is None)
    state.modules.update(_sdk_modules())
    for name, module in guest.items():
        if name in state.modules or name in info.names:
            state.warnings.append(
                f"guest module '{name}' ({module.path}) shadows the "
                f"{'SDK' if name in state.modules else 'stdlib'} module of that name"
            )
        state.modules[name] = module

    resolver = _Resolver(state, info, src, vendor)
    for module in guest.values():  # every guest file is bundled, so every one must compile
        module.parse(resolver.shown_path(module))
    roots = _dependency_roots(settings.dependencies, resolver, src)
    resolver.run(entry, roots)
    includes = [*_configured_includes(src), *include]
    numpy_includes = _numpy_includes([n for n in includes if n.split(".")[0] == "numpy"], state)
    included = _expand_includes([n for n in includes if n.split(".")[0] != "numpy"],
                                info, state, src)
    # Modules the entry does not reach statically are still bundled (guest files, includes,
    # and the whole SDK once the guest uses it: `wasi_nn.image` etc. are imported lazily by
    # name): their imports count too, but only as warnings, like guarded ones. numpy's own
    # modules are the exception: only those reached are bundled (numpy_parts).
    uses_sdk = any(state.modules[n].origin == "sdk" for n in resolver.analysed)
    for name, module in list(state.modules.items()):
        if name not in resolver.analysed and module.origin != "numpy" and (
                module.origin != "sdk" or uses_sdk):
            resolver.run(name, required=False)
    if state.flavour == "numpy":
        _bundle_numpy_parts(resolver, numpy_includes, uses_sdk)
    if state.errors:
        raise BuildError("cannot build " + str(src) + ":\n  " + "\n  ".join(state.errors))
    if state.flavour == "numpy" and runtime is None:
        # The guest imports numpy: the runtime with numpy's C core linked in.
        try:
            runtime_path = paths.require(paths.numpy_runtime_wasm(portable))
        except paths.RuntimeNotBuiltError as exc:
            raise BuildError(str(exc)) from None

    # Guest, third-party and (for a guest that imports it) SDK files all go in.
    bundled = {
        name: module
        for name, module in state.modules.items()
        if (module.origin != "sdk" or uses_sdk)
        and (module.origin != "numpy" or name in resolver.analysed)
    }
    numpy_left_out = {n for n, m in state.modules.items() if m.origin == "numpy"} - set(bundled)
    roots = resolver.stdlib_refs | included | set(RUNTIME_ROOTS)
    if state.flavour == "numpy":
        roots |= set(NUMPY_C_IMPORTS)
        if "numpy.random" in bundled:
            roots |= set(NUMPY_RANDOM_C_IMPORTS)
    stdlib_names = _stdlib_closure(roots, info) - set(bundled)
    omitted = set(info.names) - stdlib_names - set(info.deep_frozen) - set(bundled)
    sdk_names = {name for name, module in bundled.items() if module.origin == "sdk"}
    numpy_names = {name for name, module in bundled.items() if module.origin == "numpy"}
    preload = _preload_names(state.modules[entry], stdlib_names | sdk_names | numpy_names)

    records: list[BundleModule] = [
        BundleModule(name, _compile(module, resolver.shown_path(module)), module.is_package)
        for name, module in sorted(bundled.items())
    ]
    records.append(_boot_module(preload, omitted, numpy_left_out))
    records += [
        m
        for m in info.stdlib.modules
        if m.name in stdlib_names and m.name not in info.deep_frozen
    ]
    bundle = write_bundle(records, entry)
    try:
        module_bytes = append_bundle(_read(runtime_path), bundle)
    except WasmFormatError as exc:
        raise BuildError(f"{runtime_path} cannot take the bundle: {exc}") from None
    shadowing = sorted(n for n in guest if n in info.names or n in info.deep_frozen)
    if snapshot and shadowing:
        # Pre-initialisation imports stdlib modules at build time; one of them could import
        # the guest's module of the same name, and guest code must never run at build time.
        snapshot = False
        state.warnings.append(
            f"not pre-initialised: the guest's module(s) {', '.join(shadowing)} shadow stdlib "
            "modules of those names, which pre-initialisation could import at build time"
        )
    if snapshot:
        if notice is not None:
            notice("pre-initialising the guest (a few seconds; --no-snapshot skips it) ...")
        try:
            module_bytes, output = preinitialise_with_output(module_bytes)
            module_bytes = drop_imported_code(module_bytes, imported_names(output))
        except (SnapshotError, WasmFormatError) as exc:
            raise BuildError(f"cannot pre-initialise {src}: {exc}") from None
    _write_atomic(out, module_bytes)

    origins = [m.origin for m in bundled.values()]
    return BuildReport(
        output=out,
        entry=entry,
        runtime=runtime_path,
        module_count=len(records),
        guest_modules=origins.count("guest"),
        sdk_modules=origins.count("sdk"),
        stdlib_modules=len(records) - len(bundled) - 1,
        third_party=tuple(sorted(state.third_party)),
        bundle_size=len(bundle),
        output_size=len(module_bytes),
        seconds=time.perf_counter() - started,
        warnings=tuple(state.warnings) if verbose else (),
        modules=_listing(state, records, src, vendor, excluded) if verbose else (),
        snapshot=snapshot,
        stdlib_left_out=len(omitted),
    )

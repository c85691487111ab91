"""A compiled-module cache keyed by the module file's identity, not its contents.

wasmtime's own compile cache hashes the whole module on every run: for a 16 MB built guest that
lookup alone costs ~80 ms, most of a warm start. Here the key is the file's path, size,
modification time and inode (the same freshness test Python uses for .pyc files) plus the
identity of wasmtime's native library, and a hit is a `Module.deserialize_file` of the precompiled artifact: ~1 ms.

Safety: artifacts are only ever written by this module, atomically (temp file + rename), into
a per-user folder; a file that wasmtime refuses to deserialize (another engine configuration, a
truncated write) is treated as a miss and rewritten. Set WASINN_CACHE_DIR to move the folder.

Size: an artifact is named `<path hash>-<identity hash>.cwasm`, so rebuilding a guest replaces
its one entry instead of adding another; and the folder is kept under `MAX_CACHE_BYTES`
(WASINN_CACHE_MAX_MB), dropping the least recently used artifacts (a hit refreshes its mtime).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path


def cache_dir() -> Path:
    """Where precompiled modules are kept (WASINN_CACHE_DIR, else the XDG cache folder)."""
    explicit = os.environ.get("WASINN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wasinn" / "modules"


def _engine_identity() -> str:
    """Which wasmtime built an artifact: its native library's path, size and mtime.

    A stat, rather than `importlib.metadata.version`, whose import alone costs ~10 ms of every
    start. (wasmtime also refuses artifacts of another version; this keeps them apart.)
    """
    try:
        from wasmtime import _ffi

        info = os.stat(_ffi.filename)
        return f"{_ffi.filename}:{info.st_size}:{info.st_mtime_ns}"
    except (ImportError, AttributeError, OSError):
        from importlib import metadata

        return metadata.version("wasmtime")


MAX_CACHE_BYTES = 2 << 30
"""Default cap on the cache folder (a built guest's artifact is ~15-30 MB)."""


def _digest(text: str) -> str:
    try:  # CPython's built-in SHA-256: the same digest without loading OpenSSL at every start
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256
    return sha256(text.encode()).hexdigest()[:32]


def _artifact_name(path: Path) -> tuple[str, str]:
    """(prefix shared by every version of this file, full artifact name)."""
    info = path.stat()
    prefix = _digest(str(path.resolve()))
    identity = "\0".join([str(info.st_size), str(info.st_mtime_ns), str(info.st_ino),
                          _engine_identity(), sys.platform])
    return prefix, f"{prefix}-{_digest(identity)}.cwasm"


def _cap_bytes() -> int:
    try:
        return int(float(os.environ["WASINN_CACHE_MAX_MB"]) * (1 << 20))
    except (KeyError, ValueError):
        return MAX_CACHE_BYTES


def _prune(folder: Path, prefix: str, keep: Path) -> None:
    """Drop older versions of this file's artifact, then the least recently used beyond the cap."""
    entries = []
    for artifact in folder.glob("*.cwasm"):
        if artifact == keep:
            continue
        try:
            if artifact.name.startswith(prefix + "-"):
                artifact.unlink()
            else:
                info = artifact.stat()
                entries.append((info.st_mtime_ns, info.st_size, artifact))
        except OSError:
            continue                              # another process got there first
    try:
        total = keep.stat().st_size + sum(size for _, size, _ in entries)
    except OSError:
        return
    for _, size, artifact in sorted(entries):     # oldest first
        if total <= _cap_bytes():
            break
        try:
            artifact.unlink()
        except OSError:
            continue
        total -= size


def load_cached(engine, path: Path, compile_module):  # -> wasmtime.Module
    """The module for `path`: from the cache when its file is unchanged, else compiled and stored.

    `compile_module(engine, path)` does the real compile; any cache failure falls back to it.
    """
    from wasmtime import Module, WasmtimeError

    try:
        prefix, name = _artifact_name(path)
    except OSError:
        return compile_module(engine, path)
    artifact = cache_dir() / name
    if artifact.is_file():
        try:
            module = Module.deserialize_file(engine, str(artifact))
        except WasmtimeError:
            pass                                  # stale or foreign artifact: rebuild it
        else:
            with contextlib.suppress(OSError):
                os.utime(artifact)                # recently used: pruned last
            return module
    module = compile_module(engine, path)
    import tempfile  # only on a cache miss (it pulls in random, shutil, ...)

    try:
        artifact.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=artifact.parent, suffix=".tmp", delete=False) as out:
            out.write(module.serialize())
        os.replace(out.name, artifact)
        _prune(artifact.parent, prefix, artifact)
    except OSError as error:
        print(f"wasinn: warning: cannot write the module cache: {error}", file=sys.stderr)
    return module

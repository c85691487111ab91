"""A compiled-module cache keyed by the module file's identity, checked with one `stat`.

wasmtime's own compile cache hashes the whole module on every run: for a 16 MB built guest that
lookup alone costs ~80 ms, most of a warm start (hashing it ourselves would still cost ~10 ms,
see benchmarks/module_cache.py). Here a hit costs a `stat` and a `Module.deserialize_file` of
the precompiled artifact: ~1–3 ms.

The key: path, size, mtime, **ctime**, inode and device of the file, plus the identity of
wasmtime's native library. mtime alone is not enough — `cp -p`, `tar -x`, `unzip` and `touch -d`
put an old mtime back, and ext4 hands a deleted file's inode to the next one — but nobody can
set ctime: the kernel moves it to "now" on every write, `utime`, rename or re-creation. So a
changed file always has a new key, except in one window: ctime is kept at a coarse clock tick
(a few ms), so a file rewritten within the same tick as the `stat` that keyed its artifact could
look unchanged. Like git's "racily clean" index entries, an artifact compiled from a file whose
ctime is that recent is stored under a name that also holds the SHA-256 of the exact bytes
compiled (`<key>-<content hash>.racy`: one file, so key, hash and artifact cannot be paired
wrongly). Finding it means hashing the file, which a lookup only does when no settled artifact
exists (a miss reads the file anyway); once the file's ctime is safely in the past, the entry
is renamed to the plain `<key>.cwasm` (any later change then gets a later ctime, hence a new
key).

Safety: wasmtime runs an artifact as trusted native code, so the folder must be the user's own
and writable by nobody else (else the cache is skipped with a warning); artifacts are only ever
written by this module, atomically (temp file + rename); a file wasmtime refuses to deserialize
(another engine configuration, a truncated write) is a miss and is rewritten. Set
WASINN_CACHE_DIR to move the folder.

Size: an artifact is named `<path hash>-<identity hash>.cwasm` (or `….racy`), so rebuilding a
guest replaces
its one entry instead of adding another; and the folder is kept under `MAX_CACHE_BYTES`
(WASINN_CACHE_MAX_MB), dropping the least recently used artifacts (a hit refreshes its mtime).
Pruning only ever deletes files with exactly those names (and this module's stale temp
files): a user's own `*.cwasm` in the folder is never touched.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
import sys
import time
from pathlib import Path
from typing import Any, Callable

MAX_CACHE_BYTES = 512 << 20
"""Default cap on the cache folder (a built guest's artifact is ~15-30 MB)."""

RACY_NS = 2_000_000_000
"""A source whose ctime is this close to "now" may still change within the same ctime tick
(coarse kernel clock; FAT's 2 s granularity): its artifact carries a content hash."""

STALE_TEMP_NS = 3600 * 1_000_000_000
"""Temp files of an interrupted write older than this are removed by pruning."""

_ARTIFACT = re.compile(r"^[0-9a-f]{32}-[0-9a-f]{32}(\.cwasm|-[0-9a-f]{32}\.racy)$")
_TEMP_PREFIX = "wasinn-cache-"


def cache_dir() -> Path:
    """Where precompiled modules are kept (WASINN_CACHE_DIR, else the XDG cache folder)."""
    explicit = os.environ.get("WASINN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wasinn" / "modules"


def _warn(message: str) -> None:
    print(f"wasinn: warning: {message}", file=sys.stderr)


def _engine_identity() -> str:
    """Which wasmtime built an artifact: its native library's path, size, mtime and ctime.

    A stat, rather than `importlib.metadata.version`, whose import alone costs ~10 ms of every
    start. (wasmtime also refuses artifacts of another version; this keeps them apart.)
    """
    try:
        from wasmtime import _ffi

        info = os.stat(_ffi.filename)
        return f"{_ffi.filename}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"
    except (ImportError, AttributeError, OSError):
        from importlib import metadata

        return metadata.version("wasmtime")


def sha256(data: bytes = b""):
    """A SHA-256 object: CPython's built-in one when present, so a warm start never loads
    OpenSSL (hashlib's import costs a few ms)."""
    try:
        from _sha256 import sha256 as builtin
    except ImportError:
        from hashlib import sha256 as builtin
    return builtin(data)


def _digest(data: bytes) -> str:
    return sha256(data).hexdigest()[:32]


def _artifact_name(path: Path, info: os.stat_result) -> tuple[str, str]:
    """(prefix shared by every version of this file, full artifact name) for `path` as `info`
    describes it."""
    prefix = _digest(os.fsencode(path.resolve()))
    identity = "\0".join(str(field) for field in (
        info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev,
        _engine_identity(), sys.platform))
    return prefix, f"{prefix}-{_digest(identity.encode('utf-8', 'surrogateescape'))}.cwasm"


def _cap_bytes() -> int:
    """WASINN_CACHE_MAX_MB in bytes; a value that is not a finite number >= 0 is reported
    (one warning line) and the default used: a bad variable must not stop a run."""
    text = os.environ.get("WASINN_CACHE_MAX_MB")
    if text is None:
        return MAX_CACHE_BYTES
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = math.nan
    if not (math.isfinite(megabytes) and 0 <= megabytes <= 1 << 40):
        shown = text.encode("utf-8", "backslashreplace").decode()
        _warn(f"WASINN_CACHE_MAX_MB={shown!r} is not a size in MB (a number from 0 to 2^40); "
              f"using the default {MAX_CACHE_BYTES >> 20}")
        return MAX_CACHE_BYTES
    return int(megabytes * (1 << 20))


def _private_folder(folder: Path, warn: bool = True) -> bool:
    """True when `folder` exists (created 0700 if needed), is ours and no one else may write
    into it — else a planted artifact would run as native code. Warns when it is not (unless
    `warn` is False: a caller whose fallback checks again and warns)."""
    report = _warn if warn else (lambda message: None)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError as error:
        report(f"cannot write the module cache: {error}")
        return False
    if not stat.S_ISDIR(info.st_mode):
        report(f"module cache {str(folder)!r} is not a folder; not caching")
        return False
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        report(f"module cache {str(folder)!r} is writable by others or not owned by you; "
               "not using it (point WASINN_CACHE_DIR at a private folder)")
        return False
    return True


def _is_racy(info: os.stat_result) -> bool:
    return info.st_ctime_ns > time.time_ns() - RACY_NS


def write_file_atomically(target: Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to a temp file next to `target`, then rename it over `target`.

    A process that has the old file open or mapped (a running .cwasm) keeps the old inode and
    never sees a half-written or truncated file. `mode` defaults to 0666 minus the umask, as
    for a plain `open(..., "w")`. Raises OSError.
    """
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    import tempfile   # only when writing: a warm start never imports it

    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=_TEMP_PREFIX, suffix=".tmp",
                                         delete=False)
    try:
        with handle:
            handle.write(data)
            os.fchmod(handle.fileno(), mode)
        os.replace(handle.name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)
        raise


def _prune(folder: Path, prefix: str, keep: Path) -> None:
    """Drop older versions of this file's artifact, then the least recently used beyond the cap.

    Only this module's own files are candidates: names matching `_ARTIFACT` and stale temp
    files.
    """
    entries = []
    now = time.time_ns()
    for entry in folder.iterdir():
        name = entry.name
        try:
            if name.startswith(_TEMP_PREFIX) and name.endswith(".tmp"):
                if entry.stat().st_mtime_ns < now - STALE_TEMP_NS:
                    entry.unlink()
                continue
            if not _ARTIFACT.match(name) or entry == keep:
                continue
            if name.startswith(prefix + "-"):
                entry.unlink()
            else:
                info = entry.stat()
                entries.append((info.st_mtime_ns, info.st_size, entry))
        except OSError:
            continue                              # another process got there first
    try:
        total = keep.stat().st_size + sum(size for _, size, _ in entries)
    except OSError:
        return
    cap = _cap_bytes()
    for _, size, artifact in sorted(entries):     # oldest first
        if total <= cap:
            break
        try:
            artifact.unlink()
        except OSError:
            continue
        total -= size


def _deserialize(engine: Any, artifact: Path) -> Any:
    """The module in `artifact`, or None when it is absent or wasmtime refuses it (another
    engine configuration, a truncated write: rebuilt)."""
    from wasmtime import Module, WasmtimeError

    if not artifact.is_file():
        return None
    try:
        module = Module.deserialize_file(engine, str(artifact))
    except WasmtimeError:
        return None
    with contextlib.suppress(OSError):
        os.utime(artifact)                        # recently used: pruned last
    return module


def load_cached(engine: Any, path: Path, compile_module: Callable[[Any, bytes], Any]) -> Any:
    """The wasmtime.Module for `path`: from the cache when the file is unchanged, else compiled
    and stored.

    `compile_module(engine, data)` compiles the module's bytes; any cache failure falls back to
    it. On anything but a settled hit the bytes are read once, from one open file, so what is
    compiled is exactly what the key and the content hash describe.
    """
    folder = cache_dir()
    try:
        prefix, name = _artifact_name(path, os.stat(path))
    except OSError:
        return compile_module(engine, path.read_bytes())
    if not _private_folder(folder):               # never run what others could have planted
        return compile_module(engine, path.read_bytes())
    module = _deserialize(engine, folder / name)
    if module is not None:
        return module                             # the common warm start: one stat

    with open(path, "rb") as source:
        before = os.fstat(source.fileno())
        data = source.read()
        after = os.fstat(source.fileno())
    stable = (before.st_ctime_ns, before.st_size) == (after.st_ctime_ns, after.st_size)
    prefix, name = _artifact_name(path, before)
    settled = folder / name
    racy = folder / f"{settled.stem}-{sha256(data).hexdigest()[:32]}.racy"
    module = _deserialize(engine, racy)
    if module is not None:
        if stable and not _is_racy(before):
            with contextlib.suppress(OSError):
                os.replace(racy, settled)         # settled now: plain stat-key hits from here
        return module

    module = compile_module(engine, data)
    if not stable:
        return module                             # changed while read: do not store a guess
    kept = racy if _is_racy(before) else settled
    try:
        write_file_atomically(kept, module.serialize(), 0o600)
        _prune(folder, prefix, kept)
    except OSError as error:
        _warn(f"cannot write the module cache: {error}")
    return module

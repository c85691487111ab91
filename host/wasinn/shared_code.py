"""One compiled artifact for every guest built on the same runtime (the fast edit loop).

A module from `wasinn build` is the prebuilt runtime plus data: the bundle is a new data
segment, and the memory minimum grows to hold it (a Wizer snapshot likewise changes only data
segments and mutable globals' initial values). Its code — all the compile time, 8-16 s of
Cranelift on 2 cores — is the runtime's. So instead of compiling each guest, the host derives a
canonical *code module* from it (`wasinn.code_split`: data segments emptied, mutable globals
zeroed and exported, memory minimum 0).

That module is compiled once and cached by its content hash, so every guest on one runtime (and
every rebuild of one guest) shares it. At instantiation the host then does what instantiating
the original would have done before `_start`: grow memory to the original minimum, set the
mutable globals, put the active data segments in place — mapped copy-on-write from a memory
image kept with the module's index entry (`wasinn.memory_image`), or copied in order. Anything
this cannot replay exactly (a start function, passive or global-offset segments, an imported or
64-bit or shared memory, non-constant global initialisers, no wasinn bundle locator) takes the
normal compile path.
"""

from __future__ import annotations

import contextlib
import ctypes
import marshal
import mmap
import os
import stat
import struct
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import memory_image

if TYPE_CHECKING:
    from . import code_split
from .module_cache import _deserialize, _engine_identity, _is_racy, _private_folder, cache_dir, sha256

GLOBAL_EXPORT_PREFIX = "__wasinn_global_"
ARTIFACT_PREFIX = "code-"
MAX_ARTIFACTS = 6
"""Code artifacts kept (LRU): both runtime flavours of a few runtime versions; each ~20 MB."""
COMPILE_BYTES_PER_SECOND = 500_000
MAX_MODULE_BYTES = 1 << 30
"""Rough Cranelift speed on this project's 2-core CI machine, for the one-time notice."""

_I32, _I64, _F32, _F64 = 0x7F, 0x7E, 0x7D, 0x7C


class Initialiser:
    """What instantiating the original module does before `_start`, to replay on the code one:
    the memory minimum, (export name, valtype, value) of each mutable global and (memory
    address, file offset, length) of each active data segment. (A plain class, as the others
    on the warm path: a dataclass costs its import and an exec at start-up.)"""

    __slots__ = ("min_pages", "globals", "segments")

    def __init__(self, min_pages: int, globals_: tuple[tuple[str, int, int | float], ...],
                 segments: tuple[tuple[int, int, int], ...]) -> None:
        self.min_pages = min_pages
        self.globals = globals_
        self.segments = segments

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Initialiser) and (
            (self.min_pages, self.globals, self.segments)
            == (other.min_pages, other.globals, other.segments))

    __hash__ = None  # type: ignore[assignment]


def __getattr__(name: str):
    """`split`, `NotShareable` and `SplitModule` live in code_split, imported on first use."""
    if name in ("split", "NotShareable", "SplitModule"):
        from . import code_split

        return getattr(code_split, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")



# --- the compiled-code cache ------------------------------------------------------------------


def _prune(folder: Path, keep: Path) -> None:
    artifacts = []
    for artifact in folder.glob(f"{ARTIFACT_PREFIX}*.cwasm"):
        with contextlib.suppress(OSError):
            artifacts.append((artifact.stat().st_mtime_ns, artifact))
    for _, artifact in sorted(artifacts, reverse=True)[MAX_ARTIFACTS:]:
        if artifact != keep:
            with contextlib.suppress(OSError):
                artifact.unlink()


def load_code(engine, parts: "code_split.SplitModule", name: str, verbose: bool = False):
    """(compiled code module, its artifact's file name): from the content-keyed cache, or
    compiled (and stored) now."""
    from wasmtime import Module

    digest = sha256(parts.code)
    digest.update(_engine_identity().encode())
    digest.update(sys.platform.encode())
    artifact = cache_dir() / f"{ARTIFACT_PREFIX}{digest.hexdigest()[:40]}.cwasm"
    module = _deserialize(engine, artifact)
    if module is not None:
        return module, artifact.name
    estimate = parts.code_bytes / COMPILE_BYTES_PER_SECOND
    if estimate > 1:
        print(f"wasinn: compiling {name}'s runtime code (one-time, ~{estimate:.0f} s; every "
              "guest built on this runtime reuses it)", file=sys.stderr, flush=True)
    started = time.perf_counter()
    module = Module(engine, parts.code)
    if verbose:
        print(f"wasinn: compiled the runtime code in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
    try:
        artifact.parent.mkdir(parents=True, exist_ok=True)
        import tempfile   # only when compiling: a warm start never imports it

        with tempfile.NamedTemporaryFile(dir=artifact.parent, suffix=".tmp", delete=False) as out:
            out.write(module.serialize())
        os.replace(out.name, artifact)
        _prune(artifact.parent, artifact)
    except OSError as error:
        print(f"wasinn: warning: cannot write the module cache: {error}", file=sys.stderr)
    return module, artifact.name


def announce_compile(path: Path, cached: bool) -> None:
    """The one-line notice for a compile estimated at over a second (any module file)."""
    from wasinn_toolchain.wasm_module import WasmFormatError

    from .code_split import code_section_bytes

    try:
        with open(path, "rb") as handle:
            code = code_section_bytes(handle.read(MAX_MODULE_BYTES))
    except (OSError, WasmFormatError, IndexError, ValueError):
        return
    estimate = code / COMPILE_BYTES_PER_SECOND
    if estimate > 1:
        after = "; one-time, cached for the next run" if cached else ""
        print(f"wasinn: compiling {path.name} (~{estimate:.0f} s{after})", file=sys.stderr,
              flush=True)


# --- instantiation ------------------------------------------------------------------------------


class InitialiseError(Exception):
    """Replaying the original module's initialisation failed (as its instantiation would)."""


def initialise(store, instance, init: Initialiser, module_bytes,
               image: memory_image.Image | None = None) -> None:
    """Bring a fresh instance of the code module to the original module's start state: the
    data segments from `image` (mapped copy-on-write, see memory_image) when there is one, else
    copied from `module_bytes` one by one."""
    from wasmtime import Memory, Val, WasmtimeError

    exports = instance.exports(store)
    memory = exports["memory"]
    if not isinstance(memory, Memory):
        raise InitialiseError("the module's 'memory' export is not a memory")
    try:
        if init.min_pages:
            memory.grow(store, init.min_pages)
    except WasmtimeError as error:
        raise InitialiseError(f"memory of {init.min_pages} pages: {error}") from None
    makers = {_I32: Val.i32, _I64: Val.i64, _F32: Val.f32, _F64: Val.f64}
    for name, valtype, value in init.globals:
        exports[name].set_value(store, makers[valtype](value))
    size = memory.data_len(store)
    base = ctypes.addressof(memory.data_ptr(store).contents)
    if image is not None:
        try:
            memory_image.apply(base, size, image)
        except OSError as error:
            raise InitialiseError(f"{error} (run again: the cache entry is rebuilt)") from None
        return
    source = (ctypes.c_ubyte * len(module_bytes)).from_buffer(module_bytes)
    source_base = ctypes.addressof(source)
    for address, offset, length in init.segments:
        if offset + length > len(module_bytes):
            raise InitialiseError("the module file changed while it was being run")
        if address + length > size:
            raise InitialiseError("out of bounds memory access (a data segment is outside memory)")
        ctypes.memmove(base + address, source_base + offset, length)


class Prepared:
    """A wasinn-built module as its shared compiled code plus what makes it this guest:
    `module` (wasmtime.Module of the canonical code module), `init`, `data` (the original
    module's bytes, a private mmap; None with an image) and `image` (the data segments as a
    memory image, or None)."""

    __slots__ = ("module", "init", "data", "image")

    def __init__(self, module, init: Initialiser, data,
                 image: memory_image.Image | None = None) -> None:
        self.module = module
        self.init = init
        self.data = data
        self.image = image


INDEX_DIR = "code-index"
"""Per module file identity: which code artifact it uses, its Initialiser and the memory image of
its data segments, so a warm start neither rebuilds nor hashes the canonical module (~25 ms for
a 16 MB guest) nor copies the segments (~8 ms)."""
_INDEX_MAGIC = b"WNI2"
NOT_SHAREABLE = ""
"""The artifact name of an index entry for a module that takes the normal compile path."""
MAX_INDEX_ENTRIES = 200
MAX_INDEX_BYTES = 512 << 20
"""Caps on the index folder (entries hold memory images: a few MB each, zero pages are holes);
the least recently used entries go first."""


def _identity(info: os.stat_result, path: Path) -> str:
    """The index entry's name for the file: `<path hash>-<identity hash>`. The identity is the
    module cache's key: a rewrite that keeps the size and puts the mtime back still changes the
    ctime, and a delete-and-recreate the inode or ctime. The path prefix lets a new entry
    replace the entries of the file's older versions (a rebuilt guest leaves no stale image)."""
    resolved = str(path.resolve())
    text = "\0".join([resolved, str(info.st_size), str(info.st_mtime_ns),
                      str(info.st_ctime_ns), str(info.st_ino), str(info.st_dev),
                      _engine_identity(), sys.platform])
    where = sha256(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{where}-{sha256(text.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}"


def _read_index(index: Path) -> tuple[str, Initialiser, memory_image.Image | None] | None:
    """(code artifact name, initialiser, memory image) from an index entry; None when it is
    missing or damaged (a miss: the entry is rebuilt)."""
    try:
        with open(index, "rb") as handle:
            head = handle.read(8)
            if len(head) != 8 or head[:4] != _INDEX_MAGIC:
                return None
            size = struct.unpack("<I", head[4:])[0]
            artifact, min_pages, globals_, segments, where = marshal.loads(handle.read(size))
        init = Initialiser(int(min_pages),
                           tuple((str(n), int(t), v) for n, t, v in globals_),
                           tuple((int(a), int(o), int(n)) for a, o, n in segments))
        image = None
        if where is not None:
            address, length = (int(v) for v in where)
            if address % memory_image.ALIGN or length % memory_image.ALIGN or length <= 0:
                return None                       # never written so: damaged
            image = memory_image.Image(str(index), memory_image.align_up(8 + size), address,
                                       length)
        with contextlib.suppress(OSError):
            os.utime(index)                       # recently used: pruned last
        return str(artifact), init, image
    except (OSError, ValueError, EOFError, TypeError, struct.error):
        return None


def _write_index(index: Path, artifact: str, init: Initialiser, module) -> None:
    """Write the index entry: a small header (marshal: built into the interpreter, so reading
    it imports nothing) and, page-aligned after it, the memory image of the data segments. When
    no image can be made (a segment outside memory) the header keeps the segments to copy."""
    where = memory_image.span(init.segments, init.min_pages * 65536)
    segments = () if where is not None else init.segments
    header = marshal.dumps((artifact, init.min_pages, init.globals, segments, where))
    with contextlib.suppress(OSError):
        index.parent.mkdir(parents=True, exist_ok=True)
        import tempfile   # only when indexing a module, never on a warm start

        out = tempfile.NamedTemporaryFile("wb", dir=index.parent, suffix=".tmp", delete=False)
        try:
            with out:
                out.write(_INDEX_MAGIC + struct.pack("<I", len(header)) + header)
                if where is not None:
                    memory_image.write(out, memory_image.align_up(8 + len(header)), where,
                                       init.segments, module)
            # a new file: a guest that has the old one mapped keeps its inode (never rewritten)
            os.replace(out.name, index)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(out.name)               # a full disk leaves no half-written entry
            raise
        _prune_index(index)


def _prune_index(keep: Path) -> None:
    """Drop the entries of the same file's older versions, then keep at most
    MAX_INDEX_ENTRIES entries and MAX_INDEX_BYTES on disk, newest first."""
    entries = []
    same_file = keep.name.split("-", 1)[0] + "-"
    for entry in keep.parent.glob("*.index"):
        with contextlib.suppress(OSError):
            if entry != keep and entry.name.startswith(same_file):
                entry.unlink()
                continue
            info = entry.stat()
            entries.append((entry != keep, -info.st_mtime_ns, info.st_blocks * 512, entry))
    total = 0
    for count, (_, _, size, entry) in enumerate(sorted(entries)):
        total += size
        if entry != keep and (count >= MAX_INDEX_ENTRIES or total > MAX_INDEX_BYTES):
            with contextlib.suppress(OSError):
                entry.unlink()


def prepare(engine, path: Path, verbose: bool = False) -> Prepared | None:
    """The shared-code form of the `.wasm` at `path`, or None to take the normal path."""
    from wasmtime import WasmtimeError

    folder = cache_dir()
    try:
        # non-blocking open + fstat: a FIFO or device is left to the normal path, which
        # refuses it; a blocking open of a FIFO with no writer would wait forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MODULE_BYTES \
                    or handle.read(4) != b"\0asm":
                return None
            # code and memory images from the cache run in this process: only from a
            # folder that is ours alone (the normal path, module_cache, warns when it is not)
            if not _private_folder(folder, warn=False):
                return None
            # a file changed within the clock's granularity may change again under the same
            # identity: it is split and hashed (its code artifact is still shared), never indexed
            racy = _is_racy(info)
            index = folder / INDEX_DIR / f"{_identity(info, path)}.index"
            known = None if racy else _read_index(index)
            if known is not None:
                artifact, init, image = known
                if not artifact:
                    return None           # indexed as not shareable: no need to read it again
                module = _deserialize(engine, folder / artifact)
                if module is not None and image is not None:
                    return Prepared(module, init, None, image)
            # A private copy-on-write map: the data segments are copied from it straight
            # into guest memory, and nothing (not even a later edit of the file) changes it.
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return None                       # the normal path reports the error
    if known is not None and module is not None:
        return Prepared(module, init, data)
    from .code_split import NotShareable, split

    try:
        parts = split(data)
    except NotShareable:
        if not racy:                      # a warm start of this file skips the split
            _write_index(index, NOT_SHAREABLE, Initialiser(0, (), ()), b"")
        return None                       # (the map is freed with its last view)
    try:
        module, artifact_name = load_code(engine, parts, path.name, verbose)
    except WasmtimeError:
        return None                       # invalid: the normal path reports it precisely
    if not racy:
        _write_index(index, artifact_name, parts.init, data)
        known = _read_index(index)
        if known is not None and known[2] is not None:
            return Prepared(module, parts.init, None, known[2])
    return Prepared(module, parts.init, data)


def precompile(path: Path) -> None:
    """After `wasinn build`: make sure the module's shared code is compiled and indexed, so its
    first `wasinn run` is a warm start. Costs nothing when another guest already compiled
    the same runtime; never fails a build (a problem here shows again at run time)."""
    from .runner import make_engine

    try:
        prepare(make_engine(cache=True), path)
    except Exception as error:  # noqa: BLE001 - only a head start is lost
        print(f"wasinn build: note: could not precompile {path.name}: {error}", file=sys.stderr)

"""One compiled artifact for every guest built on the same runtime (the fast edit loop).

A module from `wasinn build` is the prebuilt runtime plus data: the bundle is a new data
segment, and the memory minimum grows to hold it (a Wizer snapshot likewise changes only data
segments and mutable globals' initial values). Its code — all the compile time, 8-16 s of
Cranelift on 2 cores — is the runtime's. So instead of compiling each guest, the host derives a
canonical *code module* from it:

* every data segment is emptied (same count and mode, offset 0), so nothing guest-specific
  remains and `memory.init`/`data.drop` still validate (active segments are dropped after
  instantiation anyway, so an empty one behaves the same);
* every mutable global's initialiser becomes zero and the global is exported under
  `__wasinn_global_<index>` so its real initial value can be set;
* the memory minimum becomes 0 pages (the maximum is kept);
* custom sections other than `name` are dropped.

That module is compiled once and cached by its content hash, so every guest on one runtime (and
every rebuild of one guest) shares it. At instantiation the host then does what instantiating
the original would have done before `_start`: grow memory to the original minimum, set the
mutable globals, write the active data segments in order. Anything this cannot replay exactly
(a start function, passive or global-offset segments, an imported or 64-bit or shared memory,
non-constant global initialisers, no wasinn bundle locator) takes the normal compile path.
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
from dataclasses import dataclass
from pathlib import Path

from wasinn_toolchain.bundle_format import LOCATOR_MAGIC
from wasinn_toolchain.wasm_module import (
    WasmFormatError, parse_sections, read_sleb, read_uleb, write_uleb)

from .module_cache import _deserialize, _engine_identity, _is_racy, cache_dir, sha256

GLOBAL_EXPORT_PREFIX = "__wasinn_global_"
ARTIFACT_PREFIX = "code-"
MAX_ARTIFACTS = 6
"""Code artifacts kept (LRU): both runtime flavours of a few runtime versions; each ~20 MB."""
COMPILE_BYTES_PER_SECOND = 500_000
MAX_MODULE_BYTES = 1 << 30
"""Rough Cranelift speed on this project's 2-core CI machine, for the one-time notice."""

_SEC_CUSTOM, _SEC_IMPORT, _SEC_GLOBAL, _SEC_MEMORY = 0, 2, 6, 5
_SEC_EXPORT, _SEC_START, _SEC_CODE, _SEC_DATA, _SEC_DATACOUNT = 7, 8, 10, 11, 12
_EMPTY_ACTIVE = b"\x00\x41\x00\x0b\x00"          # an empty active segment at offset 0
_I32, _I64, _F32, _F64 = 0x7F, 0x7E, 0x7D, 0x7C
_ZERO_INIT = {_I32: b"\x41\x00\x0b", _I64: b"\x42\x00\x0b",
              _F32: b"\x43" + bytes(4) + b"\x0b", _F64: b"\x44" + bytes(8) + b"\x0b"}


class NotShareable(Exception):
    """The module cannot be split exactly; use the normal compile path."""


@dataclass(frozen=True)
class Initialiser:
    """What instantiating the original module does before `_start`, to replay on the code one."""

    min_pages: int
    globals: tuple[tuple[str, int, int | float], ...]   # (export name, valtype, value)
    segments: tuple[tuple[int, int, int], ...]          # (memory address, file offset, length)


@dataclass(frozen=True)
class SplitModule:
    code: bytes               # the canonical code module
    init: Initialiser
    code_bytes: int           # size of the code section (for the compile-time estimate)


def _const_value(data: memoryview, pos: int, valtype: int) -> tuple[int | float, int]:
    """The value of a one-instruction constant expression (else NotShareable)."""
    op = data[pos]
    if op == 0x41 and valtype == _I32:
        value, pos = read_sleb(data, pos + 1)
    elif op == 0x42 and valtype == _I64:
        value, pos = read_sleb(data, pos + 1)
    elif op == 0x43 and valtype == _F32:
        raw = bytes(data[pos + 1:pos + 5])
        value, pos = struct.unpack("<f", raw)[0], pos + 5
        if value != value:                      # NaN payloads would not round-trip
            raise NotShareable("NaN global initialiser")
    elif op == 0x44 and valtype == _F64:
        raw = bytes(data[pos + 1:pos + 9])
        value, pos = struct.unpack("<d", raw)[0], pos + 9
        if value != value:
            raise NotShareable("NaN global initialiser")
    else:
        raise NotShareable(f"global initialiser opcode 0x{op:02x}")
    if pos >= len(data) or data[pos] != 0x0B:
        raise NotShareable("multi-instruction global initialiser")
    return value, pos + 1


def _imported_globals(payload: memoryview) -> tuple[int, bool]:
    """(number of imported globals, whether a memory is imported)."""
    count, pos = read_uleb(payload, 0)
    globals_ = 0
    memory = False
    for _ in range(count):
        for _name in range(2):
            length, pos = read_uleb(payload, pos)
            pos += length
        kind = payload[pos]
        pos += 1
        if kind == 0:
            _, pos = read_uleb(payload, pos)
        elif kind in (1, 2):
            if kind == 1:
                pos += 1
            flags = payload[pos]
            _, pos = read_uleb(payload, pos + 1)
            if flags & 1:
                _, pos = read_uleb(payload, pos)
            memory = memory or kind == 2
        elif kind == 3:
            globals_ += 1
            pos += 2
        else:
            raise NotShareable(f"import kind {kind}")
    return globals_, memory


def split(module) -> SplitModule:
    """The canonical code module and the initialiser that recreates `module`'s start state
    (`module`: bytes, bytearray or mmap)."""
    try:
        return _split(memoryview(module))
    except (WasmFormatError, IndexError, struct.error) as error:
        raise NotShareable(str(error)) from None


def _sections(view: memoryview) -> list[tuple[int, int, memoryview]]:
    """(id, file offset of the payload, payload) of every section."""
    parse_sections(view)                        # checks the header and every size
    found = []
    pos = 8
    while pos < len(view):
        size, start = read_uleb(view, pos + 1)
        found.append((view[pos], start, view[start:start + size]))
        pos = start + size
    return found


def _split(view: memoryview) -> SplitModule:
    sections = _sections(view)
    ids = [s[0] for s in sections]
    if _SEC_START in ids:
        raise NotShareable("start function")
    if _SEC_DATA not in ids or _SEC_MEMORY not in ids:
        raise NotShareable("no defined memory or data")
    first_global = 0
    out = [bytes(view[:8])]
    global_exports: list[tuple[str, int, int | float]] = []
    min_pages = 0
    segments: list[tuple[int, int, int]] = []
    code_bytes = 0
    found_locator = False
    new_exports: list[bytes] = []
    has_memory_export = False
    kept_segments = _kept_segment_count(sections)
    for sec_id, payload_offset, payload in sections:
        if sec_id == _SEC_DATACOUNT:
            out.append(_section(sec_id, write_uleb(kept_segments)))
        elif sec_id == _SEC_IMPORT:
            first_global, memory_imported = _imported_globals(payload)
            if memory_imported:
                raise NotShareable("imported memory")
            out.append(_section(sec_id, payload))
        elif sec_id == _SEC_MEMORY:
            count, pos = read_uleb(payload, 0)
            if count != 1:
                raise NotShareable(f"{count} memories")
            flags = payload[pos]
            if flags & ~1:
                raise NotShareable("shared or 64-bit memory")
            min_pages, pos = read_uleb(payload, pos + 1)
            limits = bytes([flags]) + write_uleb(0) + bytes(payload[pos:])
            out.append(_section(sec_id, write_uleb(1) + limits))
        elif sec_id == _SEC_GLOBAL:
            count, pos = read_uleb(payload, 0)
            body = bytearray(write_uleb(count))
            for index in range(first_global, first_global + count):
                valtype, mutable = payload[pos], payload[pos + 1]
                value, end = _const_value(payload, pos + 2, valtype) if mutable else (0, 0)
                if mutable:
                    name = f"{GLOBAL_EXPORT_PREFIX}{index}"
                    global_exports.append((name, valtype, value))
                    new_exports.append(_export(name, 3, index))
                    body += bytes([valtype, 1]) + _ZERO_INIT[valtype]
                    pos = end
                else:
                    end = _skip_expr(payload, pos + 2)
                    body += payload[pos:end]
                    pos = end
            out.append(_section(sec_id, bytes(body)))
        elif sec_id == _SEC_EXPORT:
            count, pos = read_uleb(payload, 0)
            names = _export_names(payload)
            has_memory_export = names.get("memory") == 2
            if any(n.startswith(GLOBAL_EXPORT_PREFIX) for n in names):
                raise NotShareable("export name clash")
            out.append((sec_id, count, bytes(payload[pos:])))      # completed below
        elif sec_id == _SEC_DATA:
            count, pos = read_uleb(payload, 0)
            body = bytearray(write_uleb(kept_segments))
            for index in range(count):
                start = pos
                flags, pos = read_uleb(payload, pos)
                if flags == 1:                   # passive: part of the code, kept verbatim
                    length, pos = read_uleb(payload, pos)
                    pos += length
                    body += payload[start:pos]
                    continue
                if flags == 2:                   # active with an explicit memory index
                    memory, pos = read_uleb(payload, pos)
                    if memory != 0:
                        raise NotShareable("data segment for another memory")
                elif flags != 0:
                    raise NotShareable(f"data segment kind {flags}")
                if payload[pos] != 0x41:
                    raise NotShareable("non-constant data segment offset")
                address, pos = read_sleb(payload, pos + 1)
                if payload[pos] != 0x0B:
                    raise NotShareable("non-constant data segment offset")
                length, pos = read_uleb(payload, pos + 1)
                offset = payload_offset + pos
                segments.append((address & 0xFFFFFFFF, offset, length))
                if not found_locator and LOCATOR_MAGIC in payload[pos:pos + length].tobytes():
                    found_locator = True
                pos += length
                if index < kept_segments:        # keeps the passive segments' indexes
                    body += _EMPTY_ACTIVE
            out.append(_section(sec_id, bytes(body)))
        elif sec_id == _SEC_CUSTOM:
            length, pos = read_uleb(payload, 0)
            if bytes(payload[pos:pos + length]) == b"name":
                out.append(_section(sec_id, payload))
        else:
            if sec_id == _SEC_CODE:
                code_bytes = len(payload)
            out.append(_section(sec_id, payload))
    if not found_locator:
        raise NotShareable("no wasinn bundle locator")
    if not has_memory_export:
        raise NotShareable("no exported memory")
    parts: list[bytes] = []
    for part in out:
        if isinstance(part, tuple):
            sec_id, count, rest = part
            payload = write_uleb(count + len(new_exports)) + rest + b"".join(new_exports)
            parts.append(_section(sec_id, payload))
        else:
            parts.append(part)
    init = Initialiser(min_pages, tuple(global_exports), tuple(segments))
    return SplitModule(b"".join(parts), init, code_bytes)


def _kept_segment_count(sections: list[tuple[int, int, memoryview]]) -> int:
    """How many data segments the code module keeps: up to the last passive one.

    Passive segments are the code's own (`memory.init` names them by index); active ones are
    the state replayed at instantiation. A Wizer snapshot empties the runtime's segments into
    passive ones and appends its memory image as many active segments, whose number differs
    per guest: dropping the trailing active ones keeps one code module for every guest.
    """
    for sec_id, _, payload in sections:
        if sec_id != _SEC_DATA:
            continue
        count, pos = read_uleb(payload, 0)
        kept = 0
        for index in range(count):
            flags, pos = read_uleb(payload, pos)
            if flags == 1:
                kept = index + 1
            elif flags in (0, 2):
                if flags == 2:
                    _, pos = read_uleb(payload, pos)
                pos = _skip_expr(payload, pos)
            else:
                raise NotShareable(f"data segment kind {flags}")
            length, pos = read_uleb(payload, pos)
            pos += length
        return kept
    return 0


def _skip_expr(payload: memoryview, pos: int) -> int:
    while payload[pos] != 0x0B:
        op = payload[pos]
        if op in (0x41, 0x42):
            _, pos = read_sleb(payload, pos + 1)
        elif op == 0x43:
            pos += 5
        elif op == 0x44:
            pos += 9
        elif op in (0x23, 0xD2):
            _, pos = read_uleb(payload, pos + 1)
        elif op == 0xD0:
            pos += 2
        elif op in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):
            pos += 1
        else:
            raise NotShareable(f"constant expression opcode 0x{op:02x}")
    return pos + 1


def _export_names(payload: memoryview) -> dict[str, int]:
    """Export name -> kind (0 function, 1 table, 2 memory, 3 global)."""
    count, pos = read_uleb(payload, 0)
    names: dict[str, int] = {}
    for _ in range(count):
        length, pos = read_uleb(payload, pos)
        name = bytes(payload[pos:pos + length]).decode("utf-8", "replace")
        names[name] = payload[pos + length]
        pos += length + 1
        _, pos = read_uleb(payload, pos)
    return names


def _export(name: str, kind: int, index: int) -> bytes:
    raw = name.encode()
    return write_uleb(len(raw)) + raw + bytes([kind]) + write_uleb(index)


def _section(sec_id: int, payload: bytes | memoryview) -> bytes:
    return bytes([sec_id]) + write_uleb(len(payload)) + bytes(payload)


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


def load_code(engine, parts: SplitModule, name: str, verbose: bool = False):
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
    try:
        with open(path, "rb") as handle:
            sections = _sections(memoryview(handle.read(MAX_MODULE_BYTES)))
    except (OSError, WasmFormatError, IndexError, ValueError):
        return
    code = sum(len(payload) for sec_id, _, payload in sections if sec_id == _SEC_CODE)
    estimate = code / COMPILE_BYTES_PER_SECOND
    if estimate > 1:
        after = "; one-time, cached for the next run" if cached else ""
        print(f"wasinn: compiling {path.name} (~{estimate:.0f} s{after})", file=sys.stderr,
              flush=True)


# --- instantiation ------------------------------------------------------------------------------


class InitialiseError(Exception):
    """Replaying the original module's initialisation failed (as its instantiation would)."""


def initialise(store, instance, init: Initialiser, module_bytes) -> None:
    """Bring a fresh instance of the code module to the original module's start state."""
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
    source = (ctypes.c_ubyte * len(module_bytes)).from_buffer(module_bytes)
    source_base = ctypes.addressof(source)
    for address, offset, length in init.segments:
        if offset + length > len(module_bytes):
            raise InitialiseError("the module file changed while it was being run")
        if address + length > size:
            raise InitialiseError("out of bounds memory access (a data segment is outside memory)")
        ctypes.memmove(base + address, source_base + offset, length)


@dataclass
class Prepared:
    """A wasinn-built module as its shared compiled code plus what makes it this guest."""

    module: object            # wasmtime.Module of the canonical code module
    init: Initialiser
    data: object              # the original module's bytes (a private mmap or a bytearray)


INDEX_DIR = "code-index"
"""Per module file identity: which code artifact it uses and its Initialiser, so a warm start
neither rebuilds nor hashes the canonical module (~25 ms for a 16 MB guest)."""


def _identity(info: os.stat_result, path: Path) -> str:
    """The file's identity, as the module cache keys it: a rewrite that keeps the size and puts
    the mtime back still changes the ctime, and a delete-and-recreate the inode or ctime."""
    text = "\0".join([str(path.resolve()), str(info.st_size), str(info.st_mtime_ns),
                      str(info.st_ctime_ns), str(info.st_ino), str(info.st_dev),
                      _engine_identity(), sys.platform])
    return sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def _read_index(index: Path) -> tuple[str, Initialiser] | None:
    try:
        artifact, min_pages, globals_, segments = marshal.loads(index.read_bytes())
        init = Initialiser(int(min_pages),
                           tuple((str(n), int(t), v) for n, t, v in globals_),
                           tuple((int(a), int(o), int(n)) for a, o, n in segments))
        return str(artifact), init
    except (OSError, ValueError, EOFError, TypeError):
        return None


def _write_index(index: Path, artifact: str, init: Initialiser) -> None:
    # marshal: built into the interpreter (no import at start-up) and fast on the ~10 000
    # segments of a snapshot; the folder is the user's private cache (module_cache checks)
    record = marshal.dumps((artifact, init.min_pages, init.globals, init.segments))
    with contextlib.suppress(OSError):
        index.parent.mkdir(parents=True, exist_ok=True)
        import tempfile   # only when indexing a module, never on a warm start

        with tempfile.NamedTemporaryFile("wb", dir=index.parent, suffix=".tmp",
                                         delete=False) as out:
            out.write(record)
        os.replace(out.name, index)
        entries = sorted(index.parent.glob("*.index"), key=lambda p: p.stat().st_mtime_ns)
        for stale in entries[:-MAX_INDEX_ENTRIES]:
            stale.unlink(missing_ok=True)


MAX_INDEX_ENTRIES = 200


def prepare(engine, path: Path, verbose: bool = False) -> Prepared | None:
    """The shared-code form of the `.wasm` at `path`, or None to take the normal path."""
    from wasmtime import WasmtimeError

    try:
        # non-blocking open + fstat: a FIFO or device is left to the normal path, which
        # refuses it; a blocking open of a FIFO with no writer would wait forever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MODULE_BYTES \
                    or handle.read(4) != b"\0asm":
                return None
            # A private copy-on-write map: the data segments are copied from it straight
            # into guest memory, and nothing (not even a later edit of the file) changes it.
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
    except (OSError, ValueError):
        return None                       # the normal path reports the error
    # a file changed within the clock's granularity may change again under the same identity:
    # it is split and hashed (its code artifact is still shared), never indexed
    racy = _is_racy(info)
    index = cache_dir() / INDEX_DIR / f"{_identity(info, path)}.index"
    known = None if racy else _read_index(index)
    if known is not None:
        module = _deserialize(engine, cache_dir() / known[0])
        if module is not None:
            return Prepared(module, known[1], data)
    try:
        parts = split(data)
    except NotShareable:
        return None                       # (the map is freed with its last view)
    try:
        module, artifact_name = load_code(engine, parts, path.name, verbose)
    except WasmtimeError:
        return None                       # invalid: the normal path reports it precisely
    if not racy:
        _write_index(index, artifact_name, parts.init)
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

"""Splitting a wasinn-built module into its canonical code module and its start state.

See `wasinn.shared_code` for why: this is the part that reads the module's bytes, needed only
when a module is not in the shared-code index yet (a first run, a rebuild), so a warm start
never imports it (nor the toolchain's wasm parser).

The code module: every data segment emptied (same count and mode, offset 0), so nothing
guest-specific remains and `memory.init`/`data.drop` still validate (active segments are dropped
after instantiation anyway, so an empty one behaves the same); every mutable global's
initialiser zeroed and the global exported under `__wasinn_global_<index>` so its real initial
value can be set; the memory minimum 0 pages (the maximum kept); custom sections other than
`name` dropped.
"""

from __future__ import annotations

import struct

from wasinn_toolchain.bundle_format import LOCATOR_MAGIC
from wasinn_toolchain.wasm_module import (
    WasmFormatError, import_section_entries, parse_sections, read_sleb, read_uleb, write_uleb)

from .shared_code import _F32, _F64, _I32, _I64, GLOBAL_EXPORT_PREFIX, Initialiser

_SEC_CUSTOM, _SEC_IMPORT, _SEC_GLOBAL, _SEC_MEMORY = 0, 2, 6, 5
_SEC_EXPORT, _SEC_START, _SEC_CODE, _SEC_DATA, _SEC_DATACOUNT = 7, 8, 10, 11, 12
_EMPTY_ACTIVE = b"\x00\x41\x00\x0b\x00"          # an empty active segment at offset 0
_ZERO_INIT = {_I32: b"\x41\x00\x0b", _I64: b"\x42\x00\x0b",
              _F32: b"\x43" + bytes(4) + b"\x0b", _F64: b"\x44" + bytes(8) + b"\x0b"}


class NotShareable(Exception):
    """The module cannot be split exactly; use the normal compile path."""


class SplitModule:
    """The canonical code module, the Initialiser that recreates the original's start state,
    and the size of the code section (for the compile-time estimate)."""

    __slots__ = ("code", "init", "code_bytes")

    def __init__(self, code: bytes, init: Initialiser, code_bytes: int) -> None:
        self.code = code
        self.init = init
        self.code_bytes = code_bytes


def code_section_bytes(module: bytes | memoryview) -> int:
    """Size of the code section (WasmFormatError, IndexError or ValueError when malformed)."""
    return sum(len(payload) for sec_id, _, payload in _sections(memoryview(module))
               if sec_id == _SEC_CODE)


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
    globals_ = 0
    memory = False
    for _module, _name, kind, _index in import_section_entries(payload):
        if kind == "tag":
            raise NotShareable("import kind 4")
        globals_ += kind == "global"
        memory = memory or kind == "memory"
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


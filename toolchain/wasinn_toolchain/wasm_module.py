"""Read and rewrite core wasm modules just enough to embed a guest bundle in the runtime.

``wasinn build`` must not need a C toolchain, so the bundle goes into the prebuilt runtime
by editing its binary: one new active data segment placed at the old end of initial memory,
a larger memory minimum to cover it, and a patched locator array so the runtime can find it.
Only the sections involved (import, memory, data count, data) are decoded; every other
section is copied through byte for byte, so the rest of the module (code, names, producers)
is untouched. The binary format facts used here come from the WebAssembly core spec
(section ids, LEB128 integers, limits and data segment encodings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .bundle_format import LOCATOR_MAGIC, LOCATOR_SIZE, pack_locator

WASM_MAGIC = b"\x00asm"
WASM_VERSION = b"\x01\x00\x00\x00"
PAGE_SIZE = 65536
MAX_PAGES_32 = 65536

SEC_CUSTOM = 0
SEC_TYPE = 1
SEC_IMPORT = 2
SEC_MEMORY = 5
SEC_EXPORT = 7
SEC_DATA = 11
SEC_DATA_COUNT = 12

_OP_END = 0x0B
_OP_I32_CONST = 0x41
_OP_I64_CONST = 0x42
_OP_GLOBAL_GET = 0x23
_NO_IMMEDIATE_OPS = {0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E}  # i32/i64 add, sub, mul (extended-const)
_SEGMENT_ALIGN = 16


class WasmFormatError(ValueError):
    """The module is not a core wasm module this rewriter understands; the message says why."""


# --- LEB128 -----------------------------------------------------------------------------


def read_uleb(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode an unsigned LEB128 at ``pos``; returns (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WasmFormatError("truncated LEB128 integer")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WasmFormatError("LEB128 integer too long")


def read_sleb(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Decode a signed LEB128 at ``pos``; returns (value, position after it)."""
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WasmFormatError("truncated LEB128 integer")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, pos
        if shift > 63:
            raise WasmFormatError("LEB128 integer too long")


def write_uleb(value: int) -> bytes:
    """Encode ``value`` (>= 0) as unsigned LEB128."""
    if value < 0:
        raise ValueError("unsigned LEB128 of a negative value")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def write_sleb(value: int) -> bytes:
    """Encode ``value`` as signed LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte if done else byte | 0x80)
        if done:
            return bytes(out)


# --- sections -----------------------------------------------------------------------------


@dataclass
class Section:
    """One top-level section: its id and payload (a view into the original bytes)."""

    id: int
    payload: memoryview


def parse_sections(module: bytes | bytearray | memoryview) -> list[Section]:
    """Split a core module into its sections, checking the header and every size."""
    view = memoryview(module).cast("B")
    if bytes(view[:4]) != WASM_MAGIC:
        raise WasmFormatError("not a wasm module (no \\0asm header)")
    if bytes(view[4:8]) != WASM_VERSION:
        raise WasmFormatError(
            f"unsupported wasm version/layer {bytes(view[4:8]).hex()} "
            "(a component, not a core module?)"
        )
    sections: list[Section] = []
    pos = 8
    while pos < len(view):
        sec_id = view[pos]
        size, start = read_uleb(view, pos + 1)
        end = start + size
        if end > len(view):
            raise WasmFormatError(f"section {sec_id} at byte {pos} runs past the end")
        sections.append(Section(sec_id, view[start:end]))
        pos = end
    return sections


def _encode_section(sec_id: int, payload: bytes | memoryview) -> bytes:
    return bytes([sec_id]) + write_uleb(len(payload)) + bytes(payload)


NAME_DATA_SEGMENTS = 9
"""The `name` section's subsection naming data segments (extended name section proposal)."""


def drop_name_subsections(module: bytes | bytearray | memoryview, drop: set[int]) -> bytes:
    """``module`` with the `name` custom section's subsections whose ids are in ``drop`` left
    out (everything else byte for byte); the section goes when nothing is left in it."""
    out = [bytes(memoryview(module)[:8])]
    for section in parse_sections(module):
        payload = section.payload
        if section.id == SEC_CUSTOM:
            name, pos = _read_name(payload, 0)
            if name == "name":
                kept = []
                while pos < len(payload):
                    sub_id = payload[pos]
                    size, start = read_uleb(payload, pos + 1)
                    if start + size > len(payload):
                        raise WasmFormatError("a name subsection runs past its section")
                    if sub_id not in drop:
                        kept.append(bytes(payload[pos:start + size]))
                    pos = start + size
                if kept:
                    head = write_uleb(len(b"name")) + b"name"
                    out.append(_encode_section(SEC_CUSTOM, head + b"".join(kept)))
                continue
        out.append(_encode_section(section.id, payload))
    return b"".join(out)


def _read_name(data: memoryview, pos: int) -> tuple[str, int]:
    length, pos = read_uleb(data, pos)
    if pos + length > len(data):
        raise WasmFormatError("truncated name")
    return bytes(data[pos : pos + length]).decode("utf-8", "replace"), pos + length


@dataclass
class Limits:
    """Memory limits as encoded: flags byte (bit 0 max present, bit 1 shared, bit 2 i64)."""

    flags: int
    minimum: int
    maximum: int | None

    def encode(self) -> bytes:
        out = bytes([self.flags]) + write_uleb(self.minimum)
        if self.maximum is not None:
            out += write_uleb(self.maximum)
        return out


def _read_limits(data: memoryview, pos: int) -> tuple[Limits, int]:
    flags = data[pos]
    if flags & ~0x07:
        raise WasmFormatError(f"unsupported limits flags 0x{flags:02x}")
    minimum, pos = read_uleb(data, pos + 1)
    maximum = None
    if flags & 1:
        maximum, pos = read_uleb(data, pos)
    return Limits(flags, minimum, maximum), pos


def import_section_entries(payload: memoryview) -> Iterator[tuple[str, str, str, int | None]]:
    """The entries of an import section's payload, in order, as (module, name, kind, type
    index); kind is func/table/memory/global/tag, the type index is a func's (else None)."""
    count, pos = read_uleb(payload, 0)
    for _ in range(count):
        mod, pos = _read_name(payload, pos)
        name, pos = _read_name(payload, pos)
        kind = payload[pos]
        pos += 1
        index = None
        if kind == 0:  # function: type index
            index, pos = read_uleb(payload, pos)
        elif kind == 1:  # table: reftype + limits
            _, pos = _read_limits(payload, pos + 1)
        elif kind == 2:
            _, pos = _read_limits(payload, pos)
        elif kind == 3:  # global: valtype + mutability
            pos += 2
        elif kind == 4:  # tag: attribute + type index
            _, pos = read_uleb(payload, pos + 1)
        else:
            raise WasmFormatError(f"unknown import kind {kind}")
        yield mod, name, _EXTERNAL_KINDS[kind], index


#: external kinds (of imports and exports) by their byte in the binary format
_EXTERNAL_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}


def import_entries(module: bytes | bytearray | memoryview) -> list[tuple[str, str, str]]:
    """All imports as (module, name, kind) with kind one of func/table/memory/global/tag."""
    return [(mod, name, kind) for sec in parse_sections(module) if sec.id == SEC_IMPORT
            for mod, name, kind, _ in import_section_entries(sec.payload)]


_VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64"}


def _function_types(sections: list[Section]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """The type section's function types as (params, results) of number types."""
    types: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for sec in sections:
        if sec.id != SEC_TYPE:
            continue
        data = sec.payload
        count, pos = read_uleb(data, 0)
        for _ in range(count):
            if data[pos] != 0x60:
                raise WasmFormatError(f"unsupported type form 0x{data[pos]:02x}")
            pos += 1
            sig: list[tuple[str, ...]] = []
            for _part in range(2):
                n, pos = read_uleb(data, pos)
                kinds = bytes(data[pos : pos + n])
                if any(k not in _VALTYPES for k in kinds):
                    raise WasmFormatError("a function type uses a non-number value type")
                sig.append(tuple(_VALTYPES[k] for k in kinds))
                pos += n
            types.append((sig[0], sig[1]))
    return types


def function_imports(
    module: bytes | bytearray | memoryview,
) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """Imported functions as (module, name, param types, result types)."""
    sections = parse_sections(module)
    types = _function_types(sections)
    result: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]] = []
    for sec in sections:
        if sec.id != SEC_IMPORT:
            continue
        for mod, name, _kind, index in import_section_entries(sec.payload):
            if index is None:
                continue
            if index >= len(types):
                raise WasmFormatError(f"import {mod}.{name} has no type {index}")
            result.append((mod, name, *types[index]))
    return result


def exports(module: bytes | bytearray | memoryview) -> list[tuple[str, str]]:
    """All exports as (name, kind), kind one of func/table/memory/global/tag."""
    result: list[tuple[str, str]] = []
    for sec in parse_sections(module):
        if sec.id != SEC_EXPORT:
            continue
        data = sec.payload
        count, pos = read_uleb(data, 0)
        for _ in range(count):
            name, pos = _read_name(data, pos)
            kind = _EXTERNAL_KINDS.get(data[pos])
            if kind is None:
                raise WasmFormatError(f"unknown export kind {data[pos]}")
            _, pos = read_uleb(data, pos + 1)
            result.append((name, kind))
    return result


def imports(module: bytes | bytearray | memoryview) -> list[tuple[str, str]]:
    """All imports as (module, name) pairs, in order."""
    return [(mod, name) for mod, name, _ in import_entries(module)]


# --- data segments ------------------------------------------------------------------------


@dataclass
class DataSegment:
    """One data segment; ``raw_head`` is its encoded flags/memory/offset, kept verbatim."""

    raw_head: bytes
    init: memoryview
    active: bool

    def encode(self) -> bytes:
        return self.raw_head + write_uleb(len(self.init)) + bytes(self.init)


def _skip_const_expr(data: memoryview, pos: int) -> int:
    while True:
        if pos >= len(data):
            raise WasmFormatError("truncated constant expression in a data segment")
        op = data[pos]
        pos += 1
        if op == _OP_END:
            return pos
        if op in (_OP_I32_CONST, _OP_I64_CONST):
            _, pos = read_sleb(data, pos)
        elif op == _OP_GLOBAL_GET:
            _, pos = read_uleb(data, pos)
        elif op not in _NO_IMMEDIATE_OPS:
            raise WasmFormatError(f"unsupported opcode 0x{op:02x} in a data segment offset")


def _parse_data(payload: memoryview) -> list[DataSegment]:
    count, pos = read_uleb(payload, 0)
    segments: list[DataSegment] = []
    for _ in range(count):
        start = pos
        flags, pos = read_uleb(payload, pos)
        if flags == 0:
            pos = _skip_const_expr(payload, pos)
        elif flags == 2:
            _, pos = read_uleb(payload, pos)
            pos = _skip_const_expr(payload, pos)
        elif flags != 1:
            raise WasmFormatError(f"unknown data segment flags {flags}")
        head = bytes(payload[start:pos])
        size, pos = read_uleb(payload, pos)
        if pos + size > len(payload):
            raise WasmFormatError("data segment runs past its section")
        segments.append(DataSegment(head, payload[pos : pos + size], flags != 1))
        pos += size
    if pos != len(payload):
        raise WasmFormatError("stray bytes after the last data segment")
    return segments


def _memory_section(sections: list[Section]) -> tuple[int, list[Limits]]:
    for index, sec in enumerate(sections):
        if sec.id == SEC_MEMORY:
            count, pos = read_uleb(sec.payload, 0)
            limits = []
            for _ in range(count):
                lim, pos = _read_limits(sec.payload, pos)
                limits.append(lim)
            if limits:
                return index, limits
    raise WasmFormatError(
        "the module defines no memory of its own (an imported memory cannot hold the bundle)"
    )


def find_locator(segments: list[DataSegment]) -> tuple[int, int]:
    """(segment index, offset inside it) of the one locator; a clear error unless exactly one."""
    hits: list[tuple[int, int]] = []
    for index, seg in enumerate(segments):
        data = bytes(seg.init)
        at = data.find(LOCATOR_MAGIC)
        while at != -1:
            hits.append((index, at))
            at = data.find(LOCATOR_MAGIC, at + 1)
    if not hits:
        raise WasmFormatError(
            "the runtime has no bundle locator (magic \\x9fWNBLOC\\x01 not found in its data): "
            "it is not a wasinn runtime, or it was built from an outdated main.c"
        )
    if len(hits) > 1:
        raise WasmFormatError(
            f"the bundle locator magic occurs {len(hits)} times in the runtime's data; "
            "it must occur exactly once"
        )
    index, at = hits[0]
    if at + LOCATOR_SIZE > len(segments[index].init):
        raise WasmFormatError("the bundle locator is cut short by the end of its data segment")
    return hits[0]


@dataclass(frozen=True)
class AppendResult:
    """Where the bundle went: its linear-memory address, length and the new memory minimum."""

    module: bytes
    address: int
    length: int
    min_pages: int


def append_bundle_ex(runtime: bytes | bytearray | memoryview, bundle: bytes) -> AppendResult:
    """Embed ``bundle`` in ``runtime`` and say where; see :func:`append_bundle`."""
    sections = parse_sections(runtime)
    mem_index, limits = _memory_section(sections)
    memory = limits[0]
    if memory.flags & 0x04:
        raise WasmFormatError("64-bit memories are not supported")
    if memory.flags & 0x02:
        raise WasmFormatError("shared memories are not supported (the runtime is single-threaded)")

    data_index = next((i for i, s in enumerate(sections) if s.id == SEC_DATA), None)
    if data_index is None:
        raise WasmFormatError("the module has no data section, so no bundle locator")
    segments = _parse_data(sections[data_index].payload)
    seg_index, at = find_locator(segments)
    seg = segments[seg_index]
    old_address, old_length = (
        int.from_bytes(seg.init[at + 8 : at + 12], "little"),
        int.from_bytes(seg.init[at + 12 : at + 16], "little"),
    )
    if not locator_unset(old_address, old_length):
        raise WasmFormatError(
            "the module already carries a bundle (its locator is set); build from the plain runtime"
        )

    address = memory.minimum * PAGE_SIZE
    address = (address + _SEGMENT_ALIGN - 1) // _SEGMENT_ALIGN * _SEGMENT_ALIGN
    end = address + len(bundle)
    new_min = max(memory.minimum, -(-end // PAGE_SIZE))
    if new_min > MAX_PAGES_32:
        raise WasmFormatError(
            f"the bundle ({len(bundle)} bytes) does not fit in a 4 GiB wasm32 memory"
        )
    new_max = memory.maximum
    if new_max is not None and new_max < new_min:
        new_max = new_min
    limits[0] = Limits(memory.flags, new_min, new_max)

    patched = bytearray(seg.init)
    patched[at : at + LOCATOR_SIZE] = pack_locator(address, len(bundle))
    segments[seg_index] = DataSegment(seg.raw_head, memoryview(bytes(patched)), seg.active)
    new_segment = DataSegment(
        bytes([0, _OP_I32_CONST]) + write_sleb(_as_i32(address)) + bytes([_OP_END]),
        memoryview(bundle),
        True,
    )
    segments.append(new_segment)

    memory_payload = write_uleb(len(limits)) + b"".join(lim.encode() for lim in limits)
    data_payload = write_uleb(len(segments)) + b"".join(s.encode() for s in segments)

    out: list[bytes] = [WASM_MAGIC, WASM_VERSION]
    for index, sec in enumerate(sections):
        if index == mem_index:
            out.append(_encode_section(SEC_MEMORY, memory_payload))
        elif index == data_index:
            out.append(_encode_section(SEC_DATA, data_payload))
        elif sec.id == SEC_DATA_COUNT:
            old_count, _ = read_uleb(sec.payload, 0)
            out.append(_encode_section(SEC_DATA_COUNT, write_uleb(old_count + 1)))
        else:
            out.append(_encode_section(sec.id, sec.payload))
    return AppendResult(b"".join(out), address, len(bundle), new_min)


def append_bundle(runtime: bytes | bytearray | memoryview, bundle: bytes) -> bytes:
    """Return ``runtime`` with ``bundle`` in a new data segment and its locator patched.

    The segment starts at the old end of initial memory (16-byte aligned): nothing in the
    runtime lives there at start-up, and the runtime's libc (zig's wasi-libc, whose malloc
    takes pages only with memory.grow) never hands out the linked initial memory's tail, so
    the heap never overlaps the bundle; main.c probes this at start-up (docs/runtime.md). The memory minimum (and
    maximum, if set and too small) is raised to cover it and the data-count section, if
    present, is bumped so the module still validates.
    """
    return append_bundle_ex(runtime, bundle).module


LOCATOR_UNSET = 0xFFFFFFFF


def locator_unset(address: int, length: int) -> bool:
    """A bare runtime's locator: all-ones (runtimes shrunk by wasm-opt, whose memory packing
    would drop zero bytes) or all-zeros (older runtimes and hand-written test modules)."""
    return (address, length) in ((0, 0), (LOCATOR_UNSET, LOCATOR_UNSET))


def _as_i32(value: int) -> int:
    """i32.const immediates are signed: addresses of 2 GiB and up encode as negatives."""
    return value - (1 << 32) if value >= 1 << 31 else value


def _segment_address(segment: DataSegment) -> int | None:
    """The i32.const offset of an active memory-0 segment, else None (global-based, passive)."""
    head = segment.raw_head
    if not segment.active or head[0] != 0 or head[1] != _OP_I32_CONST:
        return None
    value, pos = read_sleb(head, 2)
    return value & 0xFFFFFFFF if pos < len(head) and head[pos] == _OP_END else None


def read_appended_bundle(module: bytes | bytearray | memoryview) -> bytes | None:
    """The bundle a built guest carries (found through its locator), or None for a bare runtime.

    Lets tests and tools look inside a built ``.wasm`` without running it.
    """
    sections = parse_sections(module)
    data = next((s for s in sections if s.id == SEC_DATA), None)
    if data is None:
        raise WasmFormatError("the module has no data section, so no bundle locator")
    segments = _parse_data(data.payload)
    index, at = find_locator(segments)
    locator = bytes(segments[index].init[at : at + LOCATOR_SIZE])
    address = int.from_bytes(locator[8:12], "little")
    length = int.from_bytes(locator[12:16], "little")
    if locator_unset(address, length):
        return None
    for segment in segments:
        if _segment_address(segment) == address and len(segment.init) == length:
            return bytes(segment.init)
    # A pre-initialised module (Wizer) holds memory as it was after start-up, split into new
    # segments with the zero runs left out: put the bundle's bytes back together from them.
    out = bytearray(length)
    covered = 0
    for segment in segments:
        start = _segment_address(segment)
        if start is None:
            continue
        lo, hi = max(start, address), min(start + len(segment.init), address + length)
        if lo < hi:
            out[lo - address : hi - address] = segment.init[lo - start : hi - start]
            covered += hi - lo
    if covered == 0:
        raise WasmFormatError(
            f"the locator points at {address:#x}+{length}, but no segment is there"
        )
    return bytes(out)

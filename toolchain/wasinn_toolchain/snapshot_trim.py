"""Drop the bundle code of modules a snapshot already imported (smaller pre-initialised guests).

A snapshot (:mod:`.snapshot`) holds linear memory as it was after start-up, and that memory
holds the whole bundle: the marshaled code of every module, including the ones start-up has
already imported, whose code objects now live on the heap too. Such a module is never read from
the bundle again (it is in ``sys.modules``), so its code is dead weight: for a numpy guest,
2-3 MB of a 20 MB module. guest_boot's ``preinitialise`` prints the names it imported; here,
on the Wizer output, each of those records' code is replaced by a short code object that raises
ImportError (if anything deletes the module from ``sys.modules`` and imports it again, it
learns why instead of reading garbage) and zeros, and the bundle's memory is re-emitted as data
segments that leave the zero runs out.

Only the bundle's bytes change: record headers and names stay where the runtime's frozen-module
table (built at start-up, inside the snapshot) points; the code section is untouched, so the
host's shared compiled code still serves the guest.
"""

from __future__ import annotations

import marshal
import re
import struct
from collections.abc import Iterable

from .bundle_format import BUNDLE_MAGIC
from .wasm_module import (
    SEC_DATA, SEC_DATA_COUNT, DataSegment, WasmFormatError, _as_i32, _encode_section,
    _parse_data, _segment_address, find_locator, parse_sections, read_appended_bundle, write_sleb,
    write_uleb)

REPORT_PREFIX = "wasinn-snapshot-imported:"
"""The line guest_boot.preinitialise prints: this prefix, then the imported module names."""
MIN_ZERO_RUN = 64
"""Zero runs at least this long end a data segment (a segment header costs ~10 bytes)."""
_RECORD_HEAD = struct.Struct("<III")
_OP_I32_CONST, _OP_END = 0x41, 0x0B


def imported_names(output: str) -> set[str]:
    """The module names in guest_boot's report line of the initialisation's ``output``."""
    for line in output.splitlines():
        if line.startswith(REPORT_PREFIX):
            return set(line[len(REPORT_PREFIX):].split())
    return set()


def _stub(name: str) -> bytes:
    message = (f"{name} was imported when the guest was pre-initialised and its code was "
               "left out of the snapshot, so it cannot be imported a second time")
    code = compile(f"raise ImportError({message!r}, name={name!r})", f"<frozen {name}>", "exec",
                   dont_inherit=True)
    return marshal.dumps(code)


def _strip_records(bundle: bytearray, imported: set[str]) -> int:
    """Replace the code of ``imported`` records in place; the number of bytes freed."""
    if bytes(bundle[:8]) != BUNDLE_MAGIC:
        raise WasmFormatError("the locator does not point at a bundle")
    count, entry_len = struct.unpack_from("<II", bundle, 8)
    pos = 16 + (entry_len + 1 + 3) // 4 * 4
    freed = 0
    for _ in range(count):
        name_len, code_len, _flags = _RECORD_HEAD.unpack_from(bundle, pos)
        name_at = pos + _RECORD_HEAD.size
        name = bundle[name_at:name_at + name_len].decode("utf-8")
        pos = name_at + (name_len + 1 + 3) // 4 * 4
        if name in imported:
            stub = _stub(name)
            if len(stub) < code_len:
                bundle[pos:pos + code_len] = stub + bytes(code_len - len(stub))
                freed += code_len - len(stub)
        pos += (code_len + 3) // 4 * 4
    return freed


def _segments_of(image: bytes | bytearray, address: int) -> list[DataSegment]:
    """Active segments writing ``image`` at ``address``, its long zero runs left out."""
    out: list[DataSegment] = []
    start = 0
    for run in re.finditer(rb"\x00{%d,}" % MIN_ZERO_RUN, image):
        if run.start() > start:
            out.append(_active(address + start, image[start:run.start()]))
        start = run.end()
    if start < len(image):
        out.append(_active(address + start, image[start:]))
    return out


def _active(address: int, data: bytes | bytearray) -> DataSegment:
    head = bytes([0, _OP_I32_CONST]) + write_sleb(_as_i32(address)) + bytes([_OP_END])
    return DataSegment(head, memoryview(bytes(data)), True)


def drop_imported_code(module: bytes, imported: Iterable[str]) -> bytes:
    """``module`` (a Wizer snapshot of a wasinn guest) with the bundle code of ``imported``
    modules dropped; unchanged if there is nothing to drop or the layout is not the expected
    one (the bundle's segments after every passive one, as Wizer writes them)."""
    imported = set(imported)
    if not imported:
        return module
    sections = parse_sections(module)
    data_index = next((i for i, s in enumerate(sections) if s.id == SEC_DATA), None)
    if data_index is None:
        return module
    segments = _parse_data(sections[data_index].payload)
    seg_index, at = find_locator(segments)
    locator = bytes(segments[seg_index].init[at + 8:at + 16])
    address, length = struct.unpack("<II", locator)
    bundle = bytearray(read_appended_bundle(module) or b"")
    if len(bundle) != length or not _strip_records(bundle, imported):
        return module
    last_passive = max((i for i, s in enumerate(segments) if not s.active), default=-1)
    kept: list[DataSegment] = []
    end = address + length
    for index, segment in enumerate(segments):
        start = _segment_address(segment)
        if start is None or start + len(segment.init) <= address or start >= end:
            kept.append(segment)
            continue
        if index < last_passive:   # the bundle's bytes must be replayable in any order
            return module
        if start < address:        # a segment that runs into the bundle keeps its outside
            kept.append(_active(start, segment.init[:address - start]))
        if start + len(segment.init) > end:
            kept.append(_active(end, segment.init[end - start:]))
    kept += _segments_of(bundle, address)
    payload = write_uleb(len(kept)) + b"".join(s.encode() for s in kept)
    out = [module[:8]]
    for index, section in enumerate(sections):
        if index == data_index:
            out.append(_encode_section(SEC_DATA, payload))
        elif section.id == SEC_DATA_COUNT:
            out.append(_encode_section(SEC_DATA_COUNT, write_uleb(len(kept))))
        else:
            out.append(_encode_section(section.id, section.payload))
    return b"".join(out)

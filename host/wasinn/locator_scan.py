"""Does a module file carry wasinn's bundle locator? Without reading 20-45 MB for it.

`wasinn run` asks this of every module it runs without the shared-code path (a `.cwasm`, or
--no-cache) to decide whether the guest gets its channel folder. Reading the whole file took
50-100 ms for a numpy guest's 45 MB `.cwasm`, longer than the guest's own start. The file is
mapped instead and only the part that can hold the locator is searched: in a `.cwasm` (an ELF
file written by wasmtime) that is the `.rodata.wasm` section, the module's data segments, where
the runtime's locator sits in its first few MB; in a `.wasm`, the whole file.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from wasinn_toolchain.bundle_format import LOCATOR_MAGIC

_ELF64_LE = b"\x7fELF\x02\x01"
_DATA_SECTION = b".rodata.wasm"
_SECTION_HEADER = struct.Struct("<IIQQQQIIQQ")   # Elf64_Shdr


def _elf_section(view: mmap.mmap, wanted: bytes) -> tuple[int, int] | None:
    """(offset, size) of the ELF64 section named ``wanted``, or None (a malformed header too)."""
    try:
        shoff, = struct.unpack_from("<Q", view, 0x28)
        entsize, count, names_index = struct.unpack_from("<HHH", view, 0x3A)
        if entsize != _SECTION_HEADER.size or names_index >= count:
            return None
        headers = [_SECTION_HEADER.unpack_from(view, shoff + i * entsize) for i in range(count)]
        names_offset = headers[names_index][4]
        for name, _type, _flags, _addr, offset, size, *_ in headers:
            start = names_offset + name
            if view[start:start + len(wanted) + 1] == wanted + b"\0":
                end = min(offset + size, len(view))
                return (offset, end) if offset < end else None
    except struct.error:
        return None
    return None


def has_bundle_locator(path: Path) -> bool:
    """Whether the module file at ``path`` carries the bundle locator (False if unreadable)."""
    try:
        with open(path, "rb") as file:
            if file.seek(0, 2) == 0:
                return False
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
                span = _elf_section(view, _DATA_SECTION) if view[:6] == _ELF64_LE else None
                start, end = span if span else (0, len(view))
                return view.find(LOCATOR_MAGIC, start, end) >= 0
    except (OSError, ValueError):
        return False

"""The bundle format: the marshaled modules a guest runtime serves as frozen modules.

The runtime's C reader (``toolchain/runtime/main.c``) walks this layout in place, pointing
``PyImport_FrozenModules`` entries straight into the bundle, so the layout is fixed by
``docs/contracts.md``; this module is its one Python writer and reader. Everything is
little-endian u32 and 4-byte aligned so the C side can read fields without unaligned loads::

    header:  b"WASINNB1" | u32 module_count | u32 entry_len | entry (utf-8) + NUL, padded to 4
    record:  u32 name_len | u32 code_len | u32 flags (bit 0: is_package)
             | name (utf-8) + NUL, padded to 4 | code (marshal of a 3.11 code object), padded to 4

``entry_len`` and ``name_len`` count the utf-8 bytes without the NUL; ``code_len`` counts the
marshal bytes without padding.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

BUNDLE_MAGIC = b"WASINNB1"
"""First 8 bytes of every bundle."""

LOCATOR_MAGIC = b"\x9fWNBLOC\x01"
"""The 8 bytes that open the runtime's 16-byte locator array (then u32 address, u32 length)."""

LOCATOR_SIZE = 16
FLAG_PACKAGE = 1

_U32 = struct.Struct("<I")
_RECORD_HEAD = struct.Struct("<III")


class BundleFormatError(ValueError):
    """The bytes are not a well-formed bundle (truncated, bad magic, bad utf-8, ...)."""


@dataclass(frozen=True)
class BundleModule:
    """One frozen module: its dotted name, marshaled code object, and whether it is a package."""

    name: str
    code: bytes
    is_package: bool = False


@dataclass(frozen=True)
class Bundle:
    """A parsed bundle: the entry module name ("" for a library-only bundle) and its modules."""

    entry: str
    modules: list[BundleModule]


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _name_field(name: str) -> bytes:
    raw = name.encode("utf-8")
    if b"\x00" in raw:
        raise BundleFormatError(f"module name {name!r} contains a NUL byte")
    field = raw + b"\x00"
    return field + b"\x00" * _pad4(len(field))


def write_bundle(modules: Iterable[tuple[str, bytes, bool] | BundleModule], entry: str) -> bytes:
    """Serialize ``modules`` ((name, code_bytes, is_package) triples) with ``entry`` as __main__.

    Names must be unique: the runtime builds a lookup table from them and a duplicate would
    silently shadow a module, so it is refused here instead.
    """
    parts: list[bytes] = []
    seen: set[str] = set()
    count = 0
    for item in modules:
        if isinstance(item, BundleModule):
            name, code, is_package = item.name, item.code, item.is_package
        else:
            name, code, is_package = item
        if not name:
            raise BundleFormatError("empty module name")
        if name in seen:
            raise BundleFormatError(f"module {name!r} appears twice in the bundle")
        seen.add(name)
        code = bytes(code)
        parts.append(
            _RECORD_HEAD.pack(
                len(name.encode("utf-8")), len(code), FLAG_PACKAGE if is_package else 0
            )
        )
        parts.append(_name_field(name))
        parts.append(code)
        parts.append(b"\x00" * _pad4(len(code)))
        count += 1
    header = (
        BUNDLE_MAGIC + _U32.pack(count) + _U32.pack(len(entry.encode("utf-8"))) + _name_field(entry)
    )
    return header + b"".join(parts)


def _read_u32(data: memoryview, pos: int) -> int:
    if pos + 4 > len(data):
        raise BundleFormatError(f"bundle truncated at byte {pos}")
    return _U32.unpack_from(data, pos)[0]


def _read_name(data: memoryview, pos: int, length: int) -> tuple[str, int]:
    end = pos + length
    if end + 1 > len(data):
        raise BundleFormatError(f"bundle truncated in a name at byte {pos}")
    if data[end] != 0:
        raise BundleFormatError(f"name at byte {pos} is not NUL-terminated")
    try:
        name = bytes(data[pos:end]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleFormatError(f"name at byte {pos} is not utf-8: {exc}") from None
    field = length + 1
    return name, pos + field + _pad4(field)


def read_bundle(data: bytes | bytearray | memoryview) -> Bundle:
    """Parse a bundle, checking every length against the data (used by tests and the bundler)."""
    view = memoryview(data).cast("B")
    if bytes(view[:8]) != BUNDLE_MAGIC:
        raise BundleFormatError("not a wasinn bundle (magic WASINNB1 missing)")
    count = _read_u32(view, 8)
    entry_len = _read_u32(view, 12)
    entry, pos = _read_name(view, 16, entry_len)
    modules: list[BundleModule] = []
    for _ in range(count):
        if pos + _RECORD_HEAD.size > len(view):
            raise BundleFormatError(f"bundle truncated at record header, byte {pos}")
        name_len, code_len, flags = _RECORD_HEAD.unpack_from(view, pos)
        name, pos = _read_name(view, pos + _RECORD_HEAD.size, name_len)
        if pos + code_len > len(view):
            raise BundleFormatError(f"bundle truncated in the code of {name!r}")
        code = bytes(view[pos : pos + code_len])
        pos += code_len + _pad4(code_len)
        modules.append(BundleModule(name, code, bool(flags & FLAG_PACKAGE)))
    if pos != len(view):
        raise BundleFormatError(f"{len(view) - pos} stray bytes after the last record")
    return Bundle(entry, modules)


def pack_locator(address: int, length: int) -> bytes:
    """The 16 bytes the bundler writes over the runtime's locator array."""
    return LOCATOR_MAGIC + _U32.pack(address) + _U32.pack(length)

"""locator_scan: finding the bundle locator without reading a whole module file."""

from __future__ import annotations

import struct
from pathlib import Path

from wasinn.locator_scan import has_bundle_locator
from wasinn_toolchain.bundle_format import LOCATOR_MAGIC


def _elf(sections: dict[bytes, bytes], tail: bytes = b"") -> bytes:
    """A minimal ELF64 little-endian file holding ``sections`` (and ``tail`` after them)."""
    names = b"\0" + b"".join(name + b"\0" for name in sections) + b".shstrtab\0"
    body, headers, offset = b"", [bytes(64)], 64
    name_at = 1
    for name, data in sections.items():
        headers.append(struct.pack("<IIQQQQIIQQ", name_at, 1, 0, 0, offset, len(data), 0, 0, 1, 0))
        body += data
        offset += len(data)
        name_at += len(name) + 1
    headers.append(struct.pack("<IIQQQQIIQQ", name_at, 3, 0, 0, offset, len(names), 0, 0, 1, 0))
    body += names + tail
    shoff = 64 + len(body)
    head = bytearray(64)
    head[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", head, 0x28, shoff)
    struct.pack_into("<HHH", head, 0x3A, 64, len(headers), len(headers) - 1)
    return bytes(head) + body + b"".join(headers)


def test_a_cwasm_is_searched_in_its_data_section_only(tmp_path: Path) -> None:
    path = tmp_path / "m.cwasm"
    path.write_bytes(_elf({b".text": bytes(100), b".rodata.wasm": b"x" * 50 + LOCATOR_MAGIC}))
    assert has_bundle_locator(path)
    path.write_bytes(_elf({b".text": LOCATOR_MAGIC, b".rodata.wasm": bytes(100)}))
    assert not has_bundle_locator(path)   # the magic outside the data is not a locator


def test_a_wasm_or_an_unreadable_elf_is_searched_whole(tmp_path: Path) -> None:
    path = tmp_path / "m.wasm"
    path.write_bytes(b"\0asm\x01\0\0\0" + bytes(1000) + LOCATOR_MAGIC)
    assert has_bundle_locator(path)
    path.write_bytes(b"\0asm\x01\0\0\0" + bytes(1000))
    assert not has_bundle_locator(path)
    path.write_bytes(b"\x7fELF\x02\x01" + bytes(20) + LOCATOR_MAGIC)   # headers cut short
    assert has_bundle_locator(path)


def test_missing_empty_and_folder_paths_are_no_guests(tmp_path: Path) -> None:
    (tmp_path / "empty.wasm").write_bytes(b"")
    for path in (tmp_path / "missing.wasm", tmp_path / "empty.wasm", tmp_path):
        assert not has_bundle_locator(path)

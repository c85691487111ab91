"""The bundle layout of docs/contracts.md: byte-exact header/records and a checked reader."""

from __future__ import annotations

import marshal
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wasinn_toolchain.bundle_format import (
    LOCATOR_MAGIC,
    BundleFormatError,
    BundleModule,
    pack_locator,
    read_bundle,
    write_bundle,
)


def test_layout_is_byte_exact() -> None:
    data = write_bundle([("ab", b"\x01\x02\x03", True)], "main")
    expected = (
        b"WASINNB1"
        + struct.pack("<II", 1, 4)
        + b"main\x00\x00\x00\x00"  # 4 bytes + NUL, padded to 8
        + struct.pack("<III", 2, 3, 1)
        + b"ab\x00\x00"  # 2 bytes + NUL, padded to 4
        + b"\x01\x02\x03\x00"  # code padded to 4
    )
    assert data == expected
    assert len(data) % 4 == 0


def test_round_trip_real_code_objects() -> None:
    code = marshal.dumps(compile("x = 41 + 1", "<frozen demo>", "exec"))
    mods = [("demo", code, False), ("pkg", b"", True), ("pkg.sub", code * 3, False)]
    bundle = read_bundle(write_bundle(mods, "demo"))
    assert bundle.entry == "demo"
    assert bundle.modules == [BundleModule(*m) for m in mods]
    ns: dict = {}
    exec(marshal.loads(bundle.modules[0].code), ns)
    assert ns["x"] == 42


def test_unicode_names_and_empty_entry() -> None:
    bundle = read_bundle(write_bundle([("caf\u00e9", b"x", False)], ""))
    assert bundle.entry == "" and bundle.modules[0].name == "caf\u00e9"


def test_duplicate_names_refused() -> None:
    with pytest.raises(BundleFormatError, match="twice"):
        write_bundle([("a", b"", False), ("a", b"", False)], "a")


@pytest.mark.parametrize("cut", [3, 10, 17, 30, 41])
def test_truncated_bundle_is_an_error(cut: int) -> None:
    data = write_bundle([("module", b"12345678", False)], "module")
    with pytest.raises(BundleFormatError):
        read_bundle(data[:cut])


def test_bad_magic_and_trailing_bytes() -> None:
    data = write_bundle([("m", b"", False)], "m")
    with pytest.raises(BundleFormatError, match="magic"):
        read_bundle(b"XXXXXXXX" + data[8:])
    with pytest.raises(BundleFormatError, match="stray"):
        read_bundle(data + b"\0\0\0\0")


def test_locator() -> None:
    assert LOCATOR_MAGIC == b"\x9fWNBLOC\x01"
    assert pack_locator(0x10000, 0x20) == LOCATOR_MAGIC + struct.pack("<II", 0x10000, 0x20)


names = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(names, st.binary(max_size=64), st.booleans()), max_size=12),
    names,
)
def test_round_trip_property(mods: list[tuple[str, bytes, bool]], entry: str) -> None:
    unique = list({name: (name, code, pkg) for name, code, pkg in mods}.values())
    data = write_bundle(unique, entry)
    assert len(data) % 4 == 0
    bundle = read_bundle(data)
    assert bundle.entry == entry
    assert [(m.name, m.code, m.is_package) for m in bundle.modules] == unique

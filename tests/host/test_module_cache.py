"""The file-identity module cache: hits skip compilation, any change to the file recompiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import wasmtime

from wasinn import module_cache
from wasinn.runner import make_engine


def _wat(answer: int) -> bytes:
    return wasmtime.wat2wasm(f'(module (func (export "answer") (result i32) i32.const {answer}))')


def _answer(engine, module) -> int:
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1)                   # wasinn's engine always has epoch interruption
    return wasmtime.Instance(store, module, []).exports(store)["answer"](store)


@pytest.fixture()
def counted(tmp_path, monkeypatch):
    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    compiled: list[Path] = []

    def compile_module(engine, path):
        compiled.append(path)
        return wasmtime.Module.from_file(engine, str(path))

    return compiled, compile_module


def test_second_load_is_served_from_the_cache(tmp_path, counted):
    compiled, compile_module = counted
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(41))
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 41
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 41
    assert compiled == [wasm]
    assert len(list((tmp_path / "cache").glob("*.cwasm"))) == 1


def test_a_changed_file_is_recompiled_never_stale(tmp_path, counted):
    compiled, compile_module = counted
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(1))
    module_cache.load_cached(engine, wasm, compile_module)
    stat = wasm.stat()
    wasm.write_bytes(_wat(2))                      # same size: only content and mtime differ
    os.utime(wasm, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 2
    assert len(compiled) == 2
    assert len(list((tmp_path / "cache").glob("*.cwasm"))) == 1   # replaced, not added


def test_a_corrupt_artifact_is_a_miss_and_is_rewritten(tmp_path, counted):
    compiled, compile_module = counted
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(7))
    module_cache.load_cached(engine, wasm, compile_module)
    (artifact,) = (tmp_path / "cache").glob("*.cwasm")
    artifact.write_bytes(b"\x7fELF not really")
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 7
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 7
    assert len(compiled) == 2


def test_an_unwritable_cache_still_runs(tmp_path, counted, monkeypatch, capfd):
    compiled, compile_module = counted
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("WASINN_CACHE_DIR", str(blocker / "cache"))
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(3))
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 3
    assert "cannot write the module cache" in capfd.readouterr().err


def test_the_cache_stays_under_its_cap_dropping_least_recently_used(tmp_path, counted,
                                                                     monkeypatch):
    compiled, compile_module = counted
    engine = make_engine(cache=False)
    modules = []
    for answer in range(3):
        wasm = tmp_path / f"m{answer}.wasm"
        wasm.write_bytes(_wat(answer))
        modules.append(wasm)
    module_cache.load_cached(engine, modules[0], compile_module)
    (artifact,) = (tmp_path / "cache").glob("*.cwasm")
    # Room for two artifacts of this size, not three.
    monkeypatch.setenv("WASINN_CACHE_MAX_MB", str(2.5 * artifact.stat().st_size / (1 << 20)))
    module_cache.load_cached(engine, modules[1], compile_module)
    os.utime(artifact, ns=(1, 1))                 # m0 looks old...
    module_cache.load_cached(engine, modules[0], compile_module)   # ...but a hit refreshes it
    module_cache.load_cached(engine, modules[2], compile_module)   # evicts m1, the LRU
    assert len(list((tmp_path / "cache").glob("*.cwasm"))) == 2
    assert compiled == modules
    module_cache.load_cached(engine, modules[0], compile_module)   # still cached
    module_cache.load_cached(engine, modules[1], compile_module)   # was evicted: recompiled
    assert compiled == [*modules, modules[1]]

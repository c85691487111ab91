"""The file-identity module cache: hits skip compilation, any change to the file recompiles."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import wasmtime

from wasinn import module_cache
from wasinn.runner import make_engine


def _wat(answer: int) -> bytes:
    return wasmtime.wat2wasm(f'(module (func (export "answer") (result i32) i32.const {answer}))')


def _entries(folder: Path) -> list[Path]:
    """The cache's artifacts: plain (`.cwasm`) and racy ones (`.racy`, just-written sources)."""
    return sorted([*folder.glob("*.cwasm"), *folder.glob("*.racy")])


def _answer(engine, module) -> int:
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1)                   # wasinn's engine always has epoch interruption
    return wasmtime.Instance(store, module, []).exports(store)["answer"](store)


@pytest.fixture()
def counted(tmp_path, monkeypatch):
    monkeypatch.setenv("WASINN_CACHE_DIR", str(tmp_path / "cache"))
    compiled: list[Path] = []

    def compile_module(engine, data):
        compiled.append(data)
        return wasmtime.Module(engine, data)

    return compiled, compile_module


def test_second_load_is_served_from_the_cache(tmp_path, counted):
    compiled, compile_module = counted
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(41))
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 41
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 41
    assert compiled == [wasm.read_bytes()]
    assert len(_entries(tmp_path / "cache")) == 1


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
    assert len(_entries(tmp_path / "cache")) == 1   # replaced, not added


def test_a_corrupt_artifact_is_a_miss_and_is_rewritten(tmp_path, counted):
    compiled, compile_module = counted
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(7))
    module_cache.load_cached(engine, wasm, compile_module)
    (artifact,) = _entries(tmp_path / "cache")
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
    (artifact,) = _entries(tmp_path / "cache")
    # Room for two artifacts of this size, not three.
    monkeypatch.setenv("WASINN_CACHE_MAX_MB", str(2.5 * artifact.stat().st_size / (1 << 20)))
    module_cache.load_cached(engine, modules[1], compile_module)
    os.utime(artifact, ns=(1, 1))                 # m0 looks old...
    module_cache.load_cached(engine, modules[0], compile_module)   # ...but a hit refreshes it
    module_cache.load_cached(engine, modules[2], compile_module)   # evicts m1, the LRU
    assert len(_entries(tmp_path / "cache")) == 2
    assert compiled == [m.read_bytes() for m in modules]
    module_cache.load_cached(engine, modules[0], compile_module)   # still cached
    module_cache.load_cached(engine, modules[1], compile_module)   # was evicted: recompiled
    assert compiled == [m.read_bytes() for m in (*modules, modules[1])]


# -- content identity: old code never runs -----------------------------------------------------
def _rewrite_keeping_times(wasm: Path, data: bytes) -> None:
    """What `cp -p` / `tar -x` do to a file in place: new bytes, the old atime/mtime put back."""
    before = wasm.stat()
    wasm.write_bytes(data)
    os.utime(wasm, ns=(before.st_atime_ns, before.st_mtime_ns))


def _pass_a_ctime_tick() -> None:
    time.sleep(0.05)     # ctime is kept at a coarse clock tick (a few ms): step past it


@pytest.fixture()
def never_racy(monkeypatch):
    """Files count as settled at once: only the stat key (ctime included) protects."""
    monkeypatch.setattr(module_cache, "RACY_NS", 0)


def test_same_size_rewrite_with_mtime_put_back_recompiles(tmp_path, counted, never_racy):
    compiled, compile_module = counted
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(1))
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 1
    assert [p.suffix for p in _entries(tmp_path / "cache")] == [".cwasm"]
    _pass_a_ctime_tick()
    before = wasm.stat()
    _rewrite_keeping_times(wasm, _wat(2))
    after = wasm.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)     # what the old key looked at
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 2
    assert len(compiled) == 2


def test_delete_and_recreate_with_same_mtime_recompiles(tmp_path, counted, never_racy):
    compiled, compile_module = counted
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(5))
    module_cache.load_cached(engine, wasm, compile_module)
    _pass_a_ctime_tick()
    before = wasm.stat()
    wasm.unlink()                                  # unzip / tar -x: a new file, same metadata
    wasm.write_bytes(_wat(6))
    os.utime(wasm, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 6
    assert len(compiled) == 2


def test_a_racy_entry_is_checked_by_content(tmp_path, counted, monkeypatch):
    """A file changed within the same ctime tick has the same stat key: the content hash of a
    racy entry is what tells. Simulated by making the key blind to the change."""
    compiled, compile_module = counted
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(1))
    real_name = module_cache._artifact_name
    fixed = os.stat(tmp_path)
    monkeypatch.setattr(module_cache, "_artifact_name",
                        lambda path, info: real_name(path, fixed))   # a key blind to changes
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 1
    (entry,) = _entries(tmp_path / "cache")
    assert entry.suffix == ".racy"                 # written right after the file: racy
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 1
    assert len(compiled) == 1                      # same bytes: a hit
    _rewrite_keeping_times(wasm, _wat(2))
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 2
    assert len(compiled) == 2


def test_a_racy_entry_is_promoted_once_the_file_settles(tmp_path, counted, monkeypatch):
    compiled, compile_module = counted
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(4))
    module_cache.load_cached(engine, wasm, compile_module)
    assert [p.suffix for p in _entries(tmp_path / "cache")] == [".racy"]
    monkeypatch.setattr(module_cache, "RACY_NS", 0)          # time passes
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 4
    assert [p.suffix for p in _entries(tmp_path / "cache")] == [".cwasm"]
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 4
    assert len(compiled) == 1


def test_pruning_never_deletes_a_users_own_files(tmp_path, counted, monkeypatch):
    compiled, compile_module = counted
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    mine = [folder / "model.cwasm", folder / "0123-4567.cwasm", folder / "notes.txt"]
    for path in mine:
        path.write_bytes(b"user data" * 1000)
        os.utime(path, ns=(1, 1))                  # older than anything the cache writes
    monkeypatch.setenv("WASINN_CACHE_MAX_MB", "0")  # prune as hard as possible
    engine = make_engine(cache=False)
    for answer in range(3):
        wasm = tmp_path / f"m{answer}.wasm"
        wasm.write_bytes(_wat(answer))
        module_cache.load_cached(engine, wasm, compile_module)
    assert all(path.read_bytes() == b"user data" * 1000 for path in mine)
    assert len(_entries(folder)) == 1 + 2          # the newest artifact and the user's two


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-5", "lots", "1e400"])
def test_a_bad_cache_cap_warns_and_uses_the_default(tmp_path, counted, monkeypatch, capfd,
                                                    value):
    compiled, compile_module = counted
    monkeypatch.setenv("WASINN_CACHE_MAX_MB", value)
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(9))
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 9
    err = capfd.readouterr().err
    assert f"WASINN_CACHE_MAX_MB={value!r} is not a size" in err and len(err.splitlines()) == 1
    assert len(_entries(tmp_path / "cache")) == 1  # still cached


def test_a_folder_others_can_write_is_not_used(tmp_path, counted, monkeypatch, capfd):
    """A planted artifact would run as native code: a shared folder is skipped, with a warning."""
    compiled, compile_module = counted
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("WASINN_CACHE_DIR", str(shared))
    engine = make_engine(cache=False)
    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(8))
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 8
    assert "writable by others" in capfd.readouterr().err
    assert _entries(shared) == []
    # an artifact planted there (here: another module's, under this file's key) never runs
    shared.chmod(0o700)
    module_cache.load_cached(engine, wasm, compile_module)
    (artifact,) = _entries(shared)
    other = tmp_path / "other.wasm"
    other.write_bytes(_wat(666))
    artifact.write_bytes(wasmtime.Module(engine, other.read_bytes()).serialize())
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 666
    shared.chmod(0o777)
    assert _answer(engine, module_cache.load_cached(engine, wasm, compile_module)) == 8


# -- wasinn compile ------------------------------------------------------------------------------
def test_compile_replaces_the_output_atomically(tmp_path):
    """A running .cwasm maps its file: `wasinn compile` must give the path a new inode, never
    rewrite the old one (which would change or truncate the running code: SIGBUS)."""
    import mmap

    from wasinn.runner import compile_module

    small, big = tmp_path / "small.wasm", tmp_path / "big.wasm"
    small.write_bytes(_wat(1))
    big.write_bytes(wasmtime.wat2wasm(
        "(module " + " ".join(f'(func (export "f{i}") (result i32) i32.const {i})'
                              for i in range(300)) + ")"))
    out = tmp_path / "out.cwasm"
    compile_module(small, out, cache=False)
    with open(out, "rb") as handle, mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        old = bytes(mapped)
        compile_module(big, out, cache=False)
        assert bytes(mapped) == old                # the running copy is untouched
    assert out.read_bytes() != old and out.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert not list(tmp_path.glob("*.tmp"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_compile_refuses_a_special_file_as_output(tmp_path):
    from host_harness import run_wasinn

    wasm = tmp_path / "a.wasm"
    wasm.write_bytes(_wat(1))
    fifo = tmp_path / "out.cwasm"
    os.mkfifo(fifo)
    result = run_wasinn("compile", str(wasm), str(fifo), timeout=60)
    assert result.returncode == 2 and b"not a regular file" in result.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)

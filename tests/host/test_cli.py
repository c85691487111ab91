"""`wasinn run` / `wasinn compile` as a user runs them: subprocesses, real wasm modules."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import wasmtime

from host_harness import run_wasinn

WAT = Path(__file__).parent / "wat"


@pytest.fixture(scope="module")
def modules(tmp_path_factory) -> dict[str, Path]:
    """Every hand-written WAT guest compiled to a .wasm binary."""
    folder = tmp_path_factory.mktemp("wasm")
    built = {}
    for source in WAT.glob("*.wat"):
        target = folder / f"{source.stem}.wasm"
        target.write_bytes(wasmtime.wat2wasm(source.read_text()))
        built[source.stem] = target
    return built


def test_args_env_and_exit_code(modules):
    result = run_wasinn("run", "--env", "ANSWER=42", "--env", "EMPTY=", str(modules["echo_args_env"]),
                        "first", "--second", "x y")
    assert result.returncode == 7
    argv, env = result.stdout.split(b"\n", 1)
    assert argv.split(b"\0")[:-1] == [b"echo_args_env.wasm", b"first", b"--second", b"x y"]
    assert env.split(b"\0")[:-1] == [b"ANSWER=42", b"EMPTY="]


def test_dir_guest_host_and_plain(modules, tmp_path):
    (tmp_path / "data.txt").write_text("hello from the host\n")
    for spec in (f".:{tmp_path}", f"/data:{tmp_path}", str(tmp_path)):
        result = run_wasinn("run", "--dir", spec, str(modules["read_file"]))
        assert (result.returncode, result.stdout) == (0, b"hello from the host\n"), spec
    result = run_wasinn("run", str(modules["read_file"]))      # nothing preopened
    assert result.returncode == 8                               # WASI errno badf


def test_dir_missing_host_folder_is_exit_2(modules, tmp_path):
    result = run_wasinn("run", "--dir", f".:{tmp_path / 'nope'}", str(modules["read_file"]))
    assert result.returncode == 2
    assert b"wasinn run: error: --dir" in result.stderr and b"Traceback" not in result.stderr


def test_timeout_stops_an_infinite_loop(modules):
    start = time.monotonic()
    result = run_wasinn("run", "--timeout", "0.5", str(modules["spin"]), timeout=60)
    assert result.returncode == 124
    assert b"timed out after 0.5 s" in result.stderr
    assert time.monotonic() - start < 30


def test_max_memory_caps_growth_and_instantiation(modules):
    assert run_wasinn("run", str(modules["grow"])).returncode == 0
    assert run_wasinn("run", "--max-memory", "4M", str(modules["grow"])).returncode == 1
    assert run_wasinn("run", "--max-memory", "64M", str(modules["grow"])).returncode == 0
    result = run_wasinn("run", "--max-memory", "1M", str(modules["big_initial"]))
    assert result.returncode == 2 and b"--max-memory" in result.stderr
    assert run_wasinn("run", "--max-memory", "lots", str(modules["grow"])).returncode == 2


def test_trap_is_exit_134(modules):
    result = run_wasinn("run", str(modules["trap"]))
    assert result.returncode == 134 and b"trapped" in result.stderr


@pytest.mark.parametrize("content,needle", [
    (b"", b"not a WebAssembly module"),
    (b"this is text", b"not a WebAssembly module"),
    (b"\0asm\x01\0\0\0\xff\xff", b"cannot load module"),
    (b"\x7fELF garbage", b"cannot load precompiled module"),
])
def test_malformed_module_is_one_line_exit_2(tmp_path, content, needle):
    path = tmp_path / "bad.wasm"
    path.write_bytes(content)
    result = run_wasinn("run", str(path))
    assert result.returncode == 2
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_missing_module_and_unknown_import(tmp_path):
    result = run_wasinn("run", str(tmp_path / "absent.wasm"))
    assert result.returncode == 2 and b"cannot read module" in result.stderr
    odd = tmp_path / "odd.wasm"
    odd.write_bytes(wasmtime.wat2wasm('(module (import "nowhere" "f" (func)) (func (export "_start")))'))
    result = run_wasinn("run", str(odd))
    assert result.returncode == 2 and b"cannot instantiate" in result.stderr
    reactor = tmp_path / "reactor.wasm"
    reactor.write_bytes(wasmtime.wat2wasm('(module (memory (export "memory") 1))'))
    result = run_wasinn("run", str(reactor))
    assert result.returncode == 2 and b"no _start export" in result.stderr


def test_compile_to_cwasm_and_run_it(modules, tmp_path):
    cwasm = tmp_path / "echo.cwasm"
    result = run_wasinn("compile", str(modules["echo_args_env"]), str(cwasm))
    assert result.returncode == 0, result.stderr
    assert cwasm.read_bytes()[:4] == b"\x7fELF"
    result = run_wasinn("run", "--no-cache", str(cwasm), "a")
    assert result.returncode == 7
    assert result.stdout.split(b"\n")[0].split(b"\0")[1] == b"a"
    assert run_wasinn("compile", str(tmp_path / "nope.wasm"), str(cwasm)).returncode == 2


def test_nn_preload_and_load_by_name(modules, torch_linear_path, tmp_path):
    import torch

    module = torch.jit.load(str(torch_linear_path))
    with torch.inference_mode():
        expected = module(torch.tensor([[1.0, 2.0, 3.0]])).numpy()
    result = run_wasinn("run", "--verbose", "--nn-preload", f"demo:PyTorch:CPU:{torch_linear_path}",
                        str(modules["named_model"]))
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.frombuffer(result.stdout, np.float32), expected.ravel())
    err = result.stderr.decode()
    assert "wasi-nn: load_by_name name='demo' -> graph 0 (" in err
    assert "wasi-nn: set_input context=0 index=0 dims=[1, 3] type=f32 data=0x100+12 -> ok" in err
    assert "wasi-nn: get_output context=0 index=0 out=0x400+4096 -> 8 bytes" in err
    assert "wasinn: instantiate" in err and "wasinn: load module" in err
    # encoding spelled in other cases, as WasmEdge users do
    result = run_wasinn("run", "--nn-preload", f"demo:pytorch:cpu:{torch_linear_path}",
                        str(modules["named_model"]))
    assert result.returncode == 0


def test_nn_preload_unknown_name_reaches_the_guest(modules, torch_linear_path):
    result = run_wasinn("run", "--nn-preload", f"other:PyTorch:CPU:{torch_linear_path}",
                        str(modules["named_model"]))
    assert result.returncode == 18          # step 1 (load_by_name) failed with not_found (8)


@pytest.mark.parametrize("spec,needle", [
    ("demo:PyTorch:CPU", b"expected NAME:ENCODING:TARGET:PATH"),
    ("demo:Caffe:CPU:{path}", b"unknown encoding 'Caffe'"),
    ("demo:TensorFlow:CPU:{path}", b"convert to TFLite or ONNX"),
    ("demo:GGML:AUTO:/no/such/model.gguf", b"no such file"),
    ("demo:PyTorch:FPGA:{path}", b"unknown target 'FPGA'"),
    ("demo:PyTorch:CPU:/no/such/model.pt", b"no such file"),
])
def test_bad_nn_preload_is_exit_2(modules, torch_linear_path, spec, needle):
    result = run_wasinn("run", "--nn-preload", spec.format(path=torch_linear_path),
                        str(modules["named_model"]))
    assert result.returncode == 2 and needle in result.stderr
    assert b"Traceback" not in result.stderr


def test_help_mentions_every_option():
    result = run_wasinn("run", "--help")
    assert result.returncode == 0
    for option in (b"--dir", b"--env", b"--nn-preload", b"--max-memory", b"--timeout",
                   b"--max-graphs", b"--max-contexts", b"--verbose", b"--no-cache", b"--native"):
        assert option in result.stdout


def test_build_reports_bundler_errors_on_one_line(tmp_path):
    result = run_wasinn("build", str(tmp_path / "no_such_guest"), "-o", str(tmp_path / "x.wasm"))
    assert result.returncode == 2
    assert result.stderr.startswith(b"wasinn build: error: ")
    assert b"Traceback" not in result.stderr


@pytest.mark.runtime
def test_build_without_output_writes_dir_name_wasm_here(tmp_path):
    from wasinn_toolchain import paths

    if not paths.runtime_wasm().is_file():
        pytest.skip("the guest runtime is not built")
    guest = tmp_path / "hello_guest"
    guest.mkdir()
    (guest / "main.py").write_text("print('hi')\n")
    result = run_wasinn("build", str(guest), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    built = tmp_path / "hello_guest.wasm"
    assert built.read_bytes()[:4] == b"\0asm"
    assert run_wasinn("run", str(built)).stdout == b"hi\n"


def test_ctrl_c_stops_a_guest_inside_wasm(modules):
    import os
    import signal
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "wasinn", "run", "--verbose",
                                str(modules["spin"])], stderr=subprocess.PIPE)
    first_lines = b""
    while b"instantiate" not in first_lines:          # the guest is about to run
        line = process.stderr.readline()
        assert line, first_lines
        first_lines += line
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
    assert process.returncode == 130 and b"interrupted" in err


def test_option_parsers():
    import argparse

    from wasinn.cli import parse_dir, parse_env, parse_size

    assert parse_size("65536") == 65536
    assert parse_size("64K") == 64 << 10
    assert parse_size("512M") == 512 << 20
    assert parse_size("2GiB") == 2 << 30
    assert parse_size("1g") == 1 << 30
    assert parse_dir(".:.") == (".", ".")
    assert parse_dir("/models:./m") == ("/models", "./m")
    assert parse_dir("data") == ("data", "data")
    assert parse_env("A=b=c") == ("A", "b=c")
    assert parse_env("WASINN_SURELY_UNSET_VARIABLE") is None      # KEY alone: inherit, if set
    for parser, text in ((parse_size, "12X"), (parse_size, ""), (parse_dir, ":x"),
                         (parse_env, "=v")):
        with pytest.raises(argparse.ArgumentTypeError):
            parser(text)

"""A tiny wasmtime-py harness for the runtime tests (no tests here; imported by test_runtime_*).

Why its own harness and not `wasinn run`: these tests pin down the runtime's side of the ABI
(what pointers and bytes reach the host), so the host functions here record every call with
its raw guest addresses and answer with the errno a test asks for.

Guests are built the way `wasinn build` does it -- the stdlib bundle's records plus the guest's
modules, written with `bundle_format` and appended with `wasm_module.append_bundle` -- so the
runtime under test is the shipped one.  Most tests share one "runner" guest whose entry module
executes the code in the environment variable WASINN_TEST_CODE: one module compile per session
instead of one per test.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import wasmtime

from wasinn_toolchain import bundle_format, paths, wasm_module

RUNNER_SOURCE = """\
import os
code = os.environ["WASINN_TEST_CODE"]
exec(compile(code, "<test>", "exec"), {"__name__": "__main__"})
"""

NN_SIGNATURES: dict[str, int] = {
    # name -> number of i32 parameters (every function returns an i32 errno)
    "load": 5,
    "load_by_name": 3,
    "load_by_name_with_config": 5,
    "init_execution_context": 2,
    "set_input": 3,
    "compute": 1,
    "compute_single": 1,
    "fini_single": 1,
    "get_output": 5,
    "get_output_single": 5,
    "unload": 1,
    "finalize_execution_context": 1,
}
PORTABLE_FUNCTIONS = ("load", "load_by_name", "init_execution_context", "set_input", "compute",
                      "get_output")


def require_runtime(portable: bool = False) -> Path:
    """The built runtime, or a clean skip naming the command that builds it."""
    wasm = paths.runtime_wasm(portable)
    if not wasm.is_file() or not paths.stdlib_bundle().is_file():
        pytest.skip(f"guest runtime not built ({wasm} or its stdlib.bundle missing); "
                    f"run `{paths.BUILD_COMMAND}`")
    return wasm


@functools.lru_cache(maxsize=1)
def stdlib_modules() -> tuple[bundle_format.BundleModule, ...]:
    return tuple(bundle_format.read_bundle(paths.stdlib_bundle().read_bytes()).modules)


def build_guest(sources: dict[str, str], entry: str, portable: bool = False) -> bytes:
    """A guest module: the runtime + stdlib bundle + `sources` (module name -> Python source)."""
    runtime = require_runtime(portable)
    modules = list(stdlib_modules())
    for name, source in sources.items():
        code = marshal.dumps(compile(source, f"{name}.py", "exec", dont_inherit=True))
        modules.append(bundle_format.BundleModule(name, code, False))
    bundle = bundle_format.write_bundle(modules, entry)
    return wasm_module.append_bundle(runtime.read_bytes(), bundle)


_ENGINE: wasmtime.Engine | None = None
_MODULES: dict[str, wasmtime.Module] = {}


def engine() -> wasmtime.Engine:
    global _ENGINE
    if _ENGINE is None:
        config = wasmtime.Config()
        config.cache = True
        _ENGINE = wasmtime.Engine(config)
    return _ENGINE


def compiled(wasm: bytes) -> wasmtime.Module:
    """Compile once per session per distinct module."""
    key = hashlib.sha256(wasm).hexdigest()
    if key not in _MODULES:
        _MODULES[key] = wasmtime.Module(engine(), wasm)
    return _MODULES[key]


@functools.lru_cache(maxsize=2)
def runner(portable: bool = False) -> bytes:
    return build_guest({"wasinn_test_runner": RUNNER_SOURCE}, "wasinn_test_runner", portable)


@dataclass
class NnCall:
    """One wasi_ephemeral_nn call as the host saw it."""

    name: str
    args: tuple[int, ...]
    data: dict[str, object] = field(default_factory=dict)


@dataclass
class RecordingNn:
    """Host functions that record each call and its decoded arguments.

    `errnos[name]` is what a function returns (default 0); `outputs` is what get_output* copy
    out; `needed` is written to written_out when a function returns too_large (7).
    """

    errnos: dict[str, int] = field(default_factory=dict)
    outputs: bytes = b""
    needed: int = 0
    calls: list[NnCall] = field(default_factory=list)
    keep_bytes: bool = False

    def define(self, linker: wasmtime.Linker, names: tuple[str, ...] | None = None) -> None:
        i32 = wasmtime.ValType.i32()
        for name, nparams in NN_SIGNATURES.items():
            if names is not None and name not in names:
                continue
            ty = wasmtime.FuncType([i32] * nparams, [i32])
            linker.define_func("wasi_ephemeral_nn", name, ty, self._handler(name),
                               access_caller=True)

    def _handler(self, name: str) -> Callable[..., int]:
        def handle(caller: wasmtime.Caller, *args: int) -> int:
            memory = caller.get("memory")
            assert isinstance(memory, wasmtime.Memory)
            call = NnCall(name, tuple(a & 0xFFFFFFFF for a in args))
            self._decode(caller, memory, call)
            self.calls.append(call)
            errno = self.errnos.get(name, 0)
            if name.startswith("get_output"):
                written_ptr = call.args[4]
                if errno == 7:
                    memory.write(caller, self.needed.to_bytes(4, "little"), written_ptr)
                elif errno == 0:
                    out = self.outputs[: call.args[3]]
                    memory.write(caller, out, call.args[2])
                    memory.write(caller, len(out).to_bytes(4, "little"), written_ptr)
            elif errno == 0 and name in ("load", "load_by_name", "load_by_name_with_config",
                                         "init_execution_context"):
                memory.write(caller, (40 + len(self.calls)).to_bytes(4, "little"), call.args[-1])
            return errno

        return handle

    def _decode(self, caller: wasmtime.Caller, memory: wasmtime.Memory, call: NnCall) -> None:
        def u32(addr: int) -> int:
            return int.from_bytes(memory.read(caller, addr, addr + 4), "little")

        a = call.args
        if call.name == "load":
            builders = [(u32(a[0] + 8 * i), u32(a[0] + 8 * i + 4)) for i in range(a[1])]
            call.data["builders"] = builders
            if self.keep_bytes:
                call.data["bytes"] = [memory.read(caller, p, p + n) for p, n in builders]
            else:  # a short fingerprint: first and last 8 bytes of each part
                call.data["edges"] = [(memory.read(caller, p, p + 8),
                                       memory.read(caller, p + n - 8, p + n)) for p, n in builders]
        elif call.name in ("load_by_name", "load_by_name_with_config"):
            call.data["name"] = memory.read(caller, a[0], a[0] + a[1])
            if call.name == "load_by_name_with_config":
                call.data["config"] = memory.read(caller, a[2], a[2] + a[3])
        elif call.name == "set_input":
            raw = memory.read(caller, a[2], a[2] + 20)
            dims_ptr, dims_len, type_word, data_ptr, data_len = (
                int.from_bytes(raw[i:i + 4], "little") for i in range(0, 20, 4))
            call.data.update(dims_ptr=dims_ptr, dims=[u32(dims_ptr + 4 * i) for i in range(dims_len)],
                             type=type_word, data_ptr=data_ptr, data_len=data_len,
                             bytes=memory.read(caller, data_ptr, data_ptr + data_len))


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run(wasm: bytes, argv: list[str] | None = None, env: dict[str, str] | None = None,
        nn: RecordingNn | None = None, dirs: list[tuple[str, str]] | None = None,
        nn_names: tuple[str, ...] | None = None) -> Result:
    """Instantiate and run `_start`; stdout/stderr captured; the exit code as the guest set it."""
    module = compiled(wasm)
    linker = wasmtime.Linker(engine())
    linker.define_wasi()
    (nn or RecordingNn()).define(linker, nn_names)
    store = wasmtime.Store(engine())
    with tempfile.TemporaryDirectory() as tmp:
        out, err = Path(tmp, "out"), Path(tmp, "err")
        wasi = wasmtime.WasiConfig()
        wasi.argv = argv or ["guest.wasm"]
        wasi.env = list((env or {}).items())
        wasi.stdout_file = str(out)
        wasi.stderr_file = str(err)
        for host, guest in dirs or []:
            wasi.preopen_dir(host, guest)
        store.set_wasi(wasi)
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        try:
            start(store)
            code = 0
        except wasmtime.ExitTrap as exit_trap:
            code = exit_trap.code
        return Result(code, out.read_text(), err.read_text())


def run_code(code: str, portable: bool = False, **kwargs: object) -> Result:
    """Run Python `code` inside the shared runner guest."""
    env = dict(kwargs.pop("env", None) or {})  # type: ignore[arg-type]
    env["WASINN_TEST_CODE"] = code
    return run(runner(portable), env=env, **kwargs)  # type: ignore[arg-type]

"""In-process harness for the ABI tests: a real wasm module whose exports forward to the
`wasi_ephemeral_nn` imports, so a test can call every import with any i32 arguments through
wasmtime exactly as a guest would, and read/write the guest's memory around the calls."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import wasmtime

from wasinn.abi import EphemeralNn
from wasinn.abi.ephemeral_nn import MODULE_NAME
from wasinn.nn import WasiNn
from wasinn.runner import make_engine
from wasinn.trace import QUIET, Tracer

FUNCTIONS = EphemeralNn.FUNCTIONS
PAGE = 65536


def run_wasinn(*args: str, timeout: float = 120, env: dict | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`wasinn ARGS…` as a subprocess (python -m wasinn, so the test needs no PATH entry)."""
    return subprocess.run([sys.executable, "-m", "wasinn", *args], capture_output=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd)


def forwarder_wat(pages: int = 2, export_memory: bool = True) -> str:
    """WAT: import every wasi_ephemeral_nn function and export `call_<name>` forwarding to it."""
    lines = ["(module"]
    for name, arity in FUNCTIONS:
        params = " ".join(["i32"] * arity)
        lines.append(f'  (import "{MODULE_NAME}" "{name}" (func ${name} (param {params}) (result i32)))')
    export = '(export "memory") ' if export_memory else ""
    lines.append(f"  (memory {export}{pages})")
    for name, arity in FUNCTIONS:
        params = " ".join(["i32"] * arity)
        gets = " ".join(f"(local.get {i})" for i in range(arity))
        lines.append(f'  (func (export "call_{name}") (param {params}) (result i32) (call ${name} {gets}))')
    lines.append(")")
    return "\n".join(lines)


_ENGINE: Any = None
_MODULES: dict[tuple[int, bool], Any] = {}


def engine() -> Any:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = make_engine(cache=False)
    return _ENGINE


class Guest:
    """One instantiated forwarder with a bump allocator over its memory."""

    def __init__(self, nn: WasiNn | None = None, *, pages: int = 2, export_memory: bool = True,
                 tracer: Tracer = QUIET, fast: bool = True,
                 native: bool = True) -> None:
        key = (pages, export_memory)
        if key not in _MODULES:
            _MODULES[key] = wasmtime.Module(engine(), forwarder_wat(pages, export_memory))
        self.nn = nn if nn is not None else WasiNn()
        linker = wasmtime.Linker(engine())
        EphemeralNn(self.nn, tracer).define(linker, fast=fast, native=native)
        self.store = wasmtime.Store(engine())
        self.store.set_epoch_deadline(1)
        self.instance = linker.instantiate(self.store, _MODULES[key])
        exports = self.instance.exports(self.store)
        self.memory = exports.get("memory")
        self.funcs = {name: exports[f"call_{name}"] for name, _ in FUNCTIONS}
        self._top = 1024

    # -- raw calls ------------------------------------------------------------------------
    def call(self, name: str, *args: int) -> int:
        wrapped = [((a + 2**31) % 2**32) - 2**31 for a in args]   # any int -> i32 range
        return self.funcs[name](self.store, *wrapped)

    # -- memory ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self.memory.data_len(self.store)

    def alloc(self, size: int, align: int = 8) -> int:
        ptr = (self._top + align - 1) // align * align
        end = ptr + size
        if end > self.size:
            self.memory.grow(self.store, (end - self.size + PAGE - 1) // PAGE)
        self._top = end
        return ptr

    def put(self, data: bytes, align: int = 8) -> int:
        ptr = self.alloc(len(data), align)
        self.memory.write(self.store, data, ptr)
        return ptr

    def read(self, ptr: int, length: int) -> bytes:
        return bytes(self.memory.read(self.store, ptr, ptr + length))

    def u32(self, ptr: int) -> int:
        return struct.unpack("<I", self.read(ptr, 4))[0]

    # -- ABI helpers ----------------------------------------------------------------------
    def builders(self, parts: Sequence[bytes]) -> tuple[int, int]:
        ptrs = [self.put(p) for p in parts]
        table = b"".join(struct.pack("<II", p, len(d)) for p, d in zip(ptrs, parts))
        return self.put(table or b"\0" * 8, 4), len(parts)

    def load(self, parts: Sequence[bytes], encoding: int, target: int = 0) -> tuple[int, int]:
        ptr, count = self.builders(parts)
        out = self.alloc(4, 4)
        errno = self.call("load", ptr, count, encoding, target, out)
        return errno, self.u32(out)

    def load_by_name(self, name: str) -> tuple[int, int]:
        data = name.encode()
        ptr = self.put(data or b"\0")
        out = self.alloc(4, 4)
        errno = self.call("load_by_name", ptr, len(data), out)
        return errno, self.u32(out)

    def init(self, graph: int) -> tuple[int, int]:
        out = self.alloc(4, 4)
        errno = self.call("init_execution_context", graph, out)
        return errno, self.u32(out)

    def tensor(self, dims: Sequence[int], type_code: int, data: bytes, *,
               type_width: int = 4) -> int:
        """Write a tensor struct (+ dims + data); type_width 4 mimics the crate's enum."""
        dims_ptr = self.put(struct.pack(f"<{len(dims)}I", *dims) or b"\0" * 4, 4)
        data_ptr = self.put(data or b"\0")
        type_field = struct.pack("<I", type_code) if type_width == 4 else bytes([type_code, 0xAB, 0xCD, 0xEF])
        return self.put(struct.pack("<II", dims_ptr, len(dims)) + type_field
                        + struct.pack("<II", data_ptr, len(data)), 4)

    def set_input(self, ctx: int, index: int, dims: Sequence[int], type_code: int,
                  data: bytes) -> int:
        return self.call("set_input", ctx, index, self.tensor(dims, type_code, data))

    def get_output(self, ctx: int, index: int, max_len: int,
                   function: str = "get_output") -> tuple[int, bytes, int]:
        out = self.alloc(max(max_len, 1))
        written = self.alloc(4, 4)
        errno = self.call(function, ctx, index, out, max_len, written)
        n = self.u32(written)
        return errno, (self.read(out, n) if errno == 0 else b""), n

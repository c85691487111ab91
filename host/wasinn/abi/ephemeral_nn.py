"""The `wasi_ephemeral_nn` import module on a wasmtime `Linker` (ARCHITECTURE §2).

Each import reads its arguments out of guest memory through `GuestMemory` (bounds-checked,
zero-copy views), calls the host core `WasiNn`, and writes results through out-pointers.
Nothing raised inside ever reaches wasmtime: `NnError` becomes its errno, and any other
exception — a bug or a surprise — becomes runtime_error with the message logged to stderr.
Only KeyboardInterrupt/SystemExit pass through, so Ctrl-C still stops the guest.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from ..nn import WasiNn
from ..nn.errors import Errno, NnError, errno_name
from ..nn.types import ExecutionTarget, GraphEncoding, resolve_tensor_type
from ..trace import QUIET, Tracer
from .memory import GuestMemory

MODULE_NAME = "wasi_ephemeral_nn"
MAX_BUILDERS = 64
MAX_DIMS = 32

def _u(value: int) -> int:
    """An i32 argument as the u32 the ABI means."""
    return value & 0xFFFFFFFF


def _encoding_name(code: int) -> str:
    try:
        return GraphEncoding(code).name.lower()
    except ValueError:
        return str(code)


def _target_name(code: int) -> str:
    try:
        return ExecutionTarget(code).name.lower()
    except ValueError:
        return str(code)


class EphemeralNn:
    """`wasi_ephemeral_nn` for one guest, backed by one `WasiNn`."""

    #: (name, number of i32 parameters) of every import this module defines
    FUNCTIONS: tuple[tuple[str, int], ...] = (
        ("load", 5), ("load_by_name", 3), ("load_by_name_with_config", 5),
        ("init_execution_context", 2), ("set_input", 3), ("compute", 1),
        ("get_output", 5), ("get_output_single", 5), ("compute_single", 1),
        ("fini_single", 1), ("unload", 1), ("finalize_execution_context", 1),
    )

    def __init__(self, nn: WasiNn | None = None, tracer: Tracer = QUIET) -> None:
        self.nn = nn if nn is not None else WasiNn()
        self.tracer = tracer

    def define(self, linker: Any, *, fast: bool = True) -> None:
        """Define every import on `linker` (store-independent, so one linker can serve many).

        `fast` uses wasmtime's unchecked callbacks (see `fastcall`), which cut the per-call
        cost of wasmtime-py's generic trampoline; it falls back to `Linker.define_func`.
        """
        from . import fastcall

        if fast and fastcall.available():
            for name, arity in self.FUNCTIONS:
                fastcall.define(linker, MODULE_NAME, name, arity, self._entry(name))
            return
        from wasmtime import FuncType, ValType

        i32 = ValType.i32()
        for name, arity in self.FUNCTIONS:
            entry = self._entry(name)

            def host_function(caller: Any, *args: int, _entry: Any = entry) -> int:
                try:
                    memory = GuestMemory.of_caller(caller)
                except NnError:
                    memory = None
                return _entry(memory, args)

            linker.define_func(MODULE_NAME, name, FuncType([i32] * arity, [i32]), host_function,
                               access_caller=True)

    def _entry(self, name: str) -> Callable[[GuestMemory | None, tuple[int, ...]], int]:
        """The errno-returning entry for one import: body + catch-all + trace."""
        tracer = self.tracer
        body = getattr(self, f"_{name}")

        def entry(memory: GuestMemory | None, args: tuple[int, ...]) -> int:
            start = time.perf_counter_ns()
            try:
                if memory is None:
                    raise NnError(Errno.MISSING_MEMORY,
                                  "the guest exports no memory named 'memory'")
                trace = body(memory, *(_u(a) for a in args))
                errno = 0
            except NnError as error:
                errno = int(error.errno)
                trace = f"{errno_name(errno)}: {error.message}"
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as error:  # noqa: BLE001 - nothing may escape into wasmtime
                errno = int(Errno.RUNTIME_ERROR)
                trace = f"runtime_error: internal error: {type(error).__name__}: {error}"
                print(f"wasinn: wasi-nn {name}: internal error: {type(error).__name__}: {error}",
                      file=sys.stderr)
            if tracer.enabled:
                try:
                    args_text = " ".join(f"{_u(a):#x}" for a in args)
                    if errno == 0:
                        args_text, _, trace = trace.partition(" -> ")
                    tracer.call(name, args_text, trace, time.perf_counter_ns() - start)
                except Exception:  # noqa: BLE001 - a closed stderr must not break the guest
                    pass
            return errno

        entry.__name__ = name
        return entry

    # Each body returns "<args> -> <outcome>" for the trace; errors are raised as NnError.

    def read_builders(self, memory: GuestMemory, ptr: int, count: int) -> list[Any]:
        """The model parts: `count` {u32 ptr, u32 len} pairs at `ptr`, as zero-copy views."""
        if count > MAX_BUILDERS:
            raise NnError(Errno.INVALID_ARGUMENT, f"{count} model parts (at most {MAX_BUILDERS})")
        pairs = memory.u32s(ptr, 2 * count, "builders array")
        return [memory.view(pairs[2 * i], pairs[2 * i + 1], f"builder {i}") for i in range(count)]

    def _load(self, memory: GuestMemory, builders_ptr: int, builders_len: int, encoding: int,
              target: int, graph_out: int) -> str:
        memory.check_out_u32(graph_out, "graph_out")
        builders = self.read_builders(memory, builders_ptr, builders_len)
        graph = self.nn.load(builders, encoding, target)
        memory.write_u32(graph_out, graph, "graph_out")
        parts = ", ".join(f"{b.ctypes.data - memory.base:#x}+{b.size}" for b in builders)
        target_text = "" if target == 0 else f" target={_target_name(target)}"
        return f"builders=[{parts}] encoding={_encoding_name(encoding)}{target_text} -> graph {graph}"

    def _read_text(self, memory: GuestMemory, ptr: int, length: int, what: str) -> str:
        return bytes(memory.view(ptr, length, what)).decode("utf-8", errors="replace")

    def _load_by_name(self, memory: GuestMemory, name_ptr: int, name_len: int,
                      graph_out: int) -> str:
        memory.check_out_u32(graph_out, "graph_out")
        name = self._read_text(memory, name_ptr, name_len, "name")
        graph = self.nn.load_by_name(name)
        memory.write_u32(graph_out, graph, "graph_out")
        return f"name={name!r} -> graph {graph}"

    def _load_by_name_with_config(self, memory: GuestMemory, name_ptr: int, name_len: int,
                                  config_ptr: int, config_len: int, graph_out: int) -> str:
        memory.check_out_u32(graph_out, "graph_out")
        name = self._read_text(memory, name_ptr, name_len, "name")
        config = self._read_text(memory, config_ptr, config_len, "config")
        graph = self.nn.load_by_name_with_config(name, config)
        memory.write_u32(graph_out, graph, "graph_out")
        return f"name={name!r} config={config_len} bytes -> graph {graph}"

    def _init_execution_context(self, memory: GuestMemory, graph: int, ctx_out: int) -> str:
        memory.check_out_u32(ctx_out, "context_out")
        ctx = self.nn.init_execution_context(graph)
        memory.write_u32(ctx_out, ctx, "context_out")
        return f"graph={graph} -> context {ctx}"

    def _set_input(self, memory: GuestMemory, ctx: int, index: int, tensor_ptr: int) -> str:
        dims_ptr, dims_len = memory.u32s(tensor_ptr, 2, "tensor")
        # +8 is the type: a u8 in the witx, a 4-byte enum from the crate; read only the byte.
        type_code = memory.read_u8(tensor_ptr + 8, "tensor type")
        data_ptr, data_len = memory.u32s(tensor_ptr + 12, 2, "tensor")
        if dims_len > MAX_DIMS:
            raise NnError(Errno.INVALID_ARGUMENT, f"tensor has {dims_len} dims (at most {MAX_DIMS})")
        dims = memory.u32s(dims_ptr, dims_len, "tensor dims")
        data = memory.view(data_ptr, data_len, "tensor data")
        self.nn.set_input(ctx, index, dims, type_code, data)
        if not self.tracer.enabled:
            return ""
        # the type as resolved from the (code, data_len) pair, so crate-0.4 guests are visible
        type_name = resolve_tensor_type(type_code, dims, data_len).name.lower()
        return (f"context={ctx} index={index} dims={dims} type={type_name} "
                f"data={data_ptr:#x}+{data_len} -> ok")

    def _compute(self, memory: GuestMemory, ctx: int) -> str:
        self.nn.compute(ctx)
        return f"context={ctx} -> ok"

    def _compute_single(self, memory: GuestMemory, ctx: int) -> str:
        self.nn.compute_single(ctx)
        return f"context={ctx} -> ok"

    def _fini_single(self, memory: GuestMemory, ctx: int) -> str:
        self.nn.fini_single(ctx)
        return f"context={ctx} -> ok"

    def _copy_output(self, memory: GuestMemory, output: memoryview, ctx: int, index: int,
                     out_ptr: int, out_max: int, written_out: int) -> str:
        needed = len(output)
        if needed > out_max:
            memory.write_u32(written_out, needed, "written_out")
            raise NnError(Errno.TOO_LARGE, f"output {index} is {needed} bytes, the buffer "
                                           f"{out_max}; written_out set to {needed}",
                          needed=needed)
        target = memory.view(out_ptr, needed, "output buffer")
        target[:] = memoryview(output)
        memory.write_u32(written_out, needed, "written_out")
        return f"context={ctx} index={index} out={out_ptr:#x}+{out_max} -> {needed} bytes"

    def _get_output(self, memory: GuestMemory, ctx: int, index: int, out_ptr: int,
                    out_max: int, written_out: int) -> str:
        memory.check_out_u32(written_out, "written_out")
        memory.check(out_ptr, out_max, "output buffer")
        output = self.nn.get_output(ctx, index)
        return self._copy_output(memory, output, ctx, index, out_ptr, out_max, written_out)

    def _get_output_single(self, memory: GuestMemory, ctx: int, index: int, out_ptr: int,
                           out_max: int, written_out: int) -> str:
        memory.check_out_u32(written_out, "written_out")
        memory.check(out_ptr, out_max, "output buffer")
        output = self.nn.get_output_single(ctx, index)
        return self._copy_output(memory, output, ctx, index, out_ptr, out_max, written_out)

    def _unload(self, memory: GuestMemory, graph: int) -> str:
        self.nn.unload(graph)
        return f"graph={graph} -> ok"

    def _finalize_execution_context(self, memory: GuestMemory, ctx: int) -> str:
        self.nn.finalize_execution_context(ctx)
        return f"context={ctx} -> ok"

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
from ..nn.core import MAX_DIMS
from ..nn.errors import Errno, NnError, errno_name
from ..nn.types import resolve_tensor_type
from ..trace import QUIET, Tracer, describe_model_kind, nn_logger
from .memory import GuestMemory

MODULE_NAME = "wasi_ephemeral_nn"
MAX_BUILDERS = 64


class EphemeralNn:
    """`wasi_ephemeral_nn` for one guest, backed by one `WasiNn`."""

    #: (name, number of i32 parameters) of every import this module defines
    FUNCTIONS: tuple[tuple[str, int], ...] = (
        ("load", 5), ("load_by_name", 3), ("load_by_name_with_config", 5),
        ("init_execution_context", 2), ("set_input", 3), ("compute", 1),
        ("get_output", 5), ("get_output_single", 5), ("compute_single", 1),
        ("fini_single", 1), ("unload", 1), ("finalize_execution_context", 1),
    )

    def __init__(self, nn: WasiNn | None = None, tracer: Tracer = QUIET,
                 on_error: Callable[[str, int, str], None] | None = None) -> None:
        self.nn = nn if nn is not None else WasiNn()
        self.tracer = tracer
        #: called as on_error(function, errno, reason) for every failed call (guest_channel)
        self.on_error = on_error

    def define(self, linker: Any, *, fast: bool = True, native: bool = True) -> None:
        """Define every import on `linker` (store-independent, so one linker can serve many).

        `fast` uses wasmtime's unchecked callbacks (see `fastcall`), which cut the per-call
        cost of wasmtime-py's generic trampoline, through the C trampoline where it is built
        (`native`), else through ctypes; it falls back to `Linker.define_func`.
        """
        from . import fastcall

        if fast and fastcall.available():
            for name, arity in self.FUNCTIONS:
                fastcall.define(linker, MODULE_NAME, name, arity, self._entry(name),
                                native=native)
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
        on_error = self.on_error
        body = getattr(self, f"_{name}")
        describe = getattr(self, f"_describe_{name}")

        def entry(memory: GuestMemory | None, args: tuple[int, ...]) -> int:
            values = [a & 0xFFFFFFFF for a in args]    # the i32s as the u32s the ABI means
            # Described before the call: a failed call is logged in the same readable form as
            # a successful one, and an out-pointer the call writes cannot change the picture.
            args_text = _describe(describe, memory, values) if tracer.enabled else ""
            start = time.perf_counter_ns()
            try:
                if memory is None:
                    raise NnError(Errno.MISSING_MEMORY,
                                  "the guest exports no memory named 'memory'")
                outcome = body(memory, *values)
                errno = 0
            except NnError as error:
                errno = int(error.errno)
                outcome = f"{errno_name(errno)}: {' '.join(error.message.split())}"   # one line
                if on_error is not None:
                    on_error(name, errno, error.message)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as error:  # noqa: BLE001 - nothing may escape into wasmtime
                errno = int(Errno.RUNTIME_ERROR)
                outcome = f"runtime_error: internal error: {type(error).__name__}: {error}"
                print(f"wasinn: wasi-nn {name}: internal error: {type(error).__name__}: {error}",
                      file=sys.stderr)
            if tracer.enabled:
                try:
                    tracer.call(name, args_text, outcome, time.perf_counter_ns() - start)
                except Exception:  # noqa: BLE001 - a closed stderr must not break the guest
                    pass
            return errno

        entry.__name__ = name
        return entry

    # Each body returns the outcome for the trace ("graph 0", "ok", "8 bytes"); errors are
    # raised as NnError. Each `_describe_<name>` renders the arguments for the trace; it runs
    # only under --verbose, and may raise NnError when it cannot read them (raw values then).

    def read_builders(self, memory: GuestMemory, ptr: int, count: int) -> list[Any]:
        """The model parts: `count` {u32 ptr, u32 len} pairs at `ptr`, as zero-copy views."""
        pairs = _builder_pairs(memory, ptr, count)
        return [memory.view(pairs[2 * i], pairs[2 * i + 1], f"builder {i}") for i in range(count)]

    def _load(self, memory: GuestMemory, builders_ptr: int, builders_len: int, encoding: int,
              target: int, graph_out: int) -> str:
        memory.check_out_u32(graph_out, "graph_out")
        builders = self.read_builders(memory, builders_ptr, builders_len)
        graph = self.nn.load(builders, encoding, target)
        memory.write_u32(graph_out, graph, "graph_out")
        return f"graph {graph}"

    @staticmethod
    def _describe_load(memory: GuestMemory, builders_ptr: int, builders_len: int,
                       encoding: int, target: int, graph_out: int) -> str:
        pairs = _builder_pairs(memory, builders_ptr, builders_len)
        parts = ", ".join(f"{pairs[i]:#x}+{pairs[i + 1]}" for i in range(0, len(pairs), 2))
        return f"builders=[{parts}] {describe_model_kind(encoding, target)}"

    def _load_by_name(self, memory: GuestMemory, name_ptr: int, name_len: int,
                      graph_out: int) -> str:
        memory.check_out_u32(graph_out, "graph_out")
        name = _read_text(memory, name_ptr, name_len, "name")
        graph = self.nn.load_by_name(name)
        memory.write_u32(graph_out, graph, "graph_out")
        return f"graph {graph}"

    @staticmethod
    def _describe_load_by_name(memory: GuestMemory, name_ptr: int, name_len: int,
                               graph_out: int) -> str:
        return f"name={_read_text(memory, name_ptr, name_len, 'name')!r}"

    def _load_by_name_with_config(self, memory: GuestMemory, name_ptr: int, name_len: int,
                                  config_ptr: int, config_len: int, graph_out: int) -> str:
        memory.check_out_u32(graph_out, "graph_out")
        name = _read_text(memory, name_ptr, name_len, "name")
        config = _read_text(memory, config_ptr, config_len, "config")
        graph = self.nn.load_by_name_with_config(name, config)
        memory.write_u32(graph_out, graph, "graph_out")
        return f"graph {graph}"

    @staticmethod
    def _describe_load_by_name_with_config(memory: GuestMemory, name_ptr: int, name_len: int,
                                           config_ptr: int, config_len: int,
                                           graph_out: int) -> str:
        return (f"name={_read_text(memory, name_ptr, name_len, 'name')!r} "
                f"config={config_len} bytes")

    def _init_execution_context(self, memory: GuestMemory, graph: int, ctx_out: int) -> str:
        memory.check_out_u32(ctx_out, "context_out")
        ctx = self.nn.init_execution_context(graph)
        memory.write_u32(ctx_out, ctx, "context_out")
        return f"context {ctx}"

    @staticmethod
    def _describe_init_execution_context(memory: GuestMemory, graph: int, ctx_out: int) -> str:
        return f"graph={graph}"

    def _set_input(self, memory: GuestMemory, ctx: int, index: int, tensor_ptr: int) -> str:
        dims, type_code, data_ptr, data_len = _read_tensor(memory, tensor_ptr)
        self.nn.set_input(ctx, index, dims, type_code, memory.view(data_ptr, data_len,
                                                                    "tensor data"))
        return "ok"

    @staticmethod
    def _describe_set_input(memory: GuestMemory, ctx: int, index: int, tensor_ptr: int) -> str:
        dims, type_code, data_ptr, data_len = _read_tensor(memory, tensor_ptr)
        # the type as resolved from the (code, data_len) pair, so crate-0.4 guests are
        # visible; the bare code when it resolves to nothing (the call then fails on it)
        try:
            type_name = resolve_tensor_type(type_code, dims, data_len).name.lower()
        except NnError:
            type_name = str(type_code)
        return (f"context={ctx} index={index} dims={dims} type={type_name} "
                f"data={data_ptr:#x}+{data_len}")

    def _compute(self, memory: GuestMemory, ctx: int) -> str:
        self.nn.compute(ctx)
        return "ok"

    def _compute_single(self, memory: GuestMemory, ctx: int) -> str:
        self.nn.compute_single(ctx)
        return "ok"

    def _fini_single(self, memory: GuestMemory, ctx: int) -> str:
        self.nn.fini_single(ctx)
        return "ok"

    @staticmethod
    def _describe_context(memory: GuestMemory, ctx: int) -> str:
        return f"context={ctx}"

    _describe_compute = _describe_compute_single = _describe_fini_single = _describe_context
    _describe_finalize_execution_context = _describe_context

    def _get_output(self, memory: GuestMemory, ctx: int, index: int, out_ptr: int,
                    out_max: int, written_out: int) -> str:
        return self._copy_output(memory, self.nn.get_output, ctx, index, out_ptr, out_max,
                                 written_out)

    def _get_output_single(self, memory: GuestMemory, ctx: int, index: int, out_ptr: int,
                           out_max: int, written_out: int) -> str:
        return self._copy_output(memory, self.nn.get_output_single, ctx, index, out_ptr,
                                 out_max, written_out)

    def _copy_output(self, memory: GuestMemory, fetch: Callable[[int, int], memoryview], ctx: int,
                     index: int, out_ptr: int, out_max: int, written_out: int) -> str:
        """Both get_output flavours: check the pointers, fetch the output, copy it out."""
        memory.check_out_u32(written_out, "written_out")
        memory.check(out_ptr, out_max, "output buffer")
        output = fetch(ctx, index)
        needed = len(output)
        if needed > out_max and out_max == 0 and out_ptr and self.nn.llm_context(ctx) \
                and _fits(memory, out_ptr, needed):
            # LlamaEdge passes an empty Vec's capacity (out_max_len 0) and relies on WasmEdge
            # releases writing the whole output anyway (GGML_PROTOCOL.md §8). Only that exact
            # pattern is honoured: any real, too-short length is too_large as for every backend.
            nn_logger().warning("get_output: context %d passed a 0-byte buffer; writing the %d-byte "
                        "output anyway, as WasmEdge does for LlamaEdge", ctx, needed)
            memory.view(out_ptr, needed, "output buffer")[:] = output
            memory.write_u32(written_out, needed, "written_out")
            return f"{needed} bytes (past a 0-byte buffer, LlamaEdge style)"
        if needed > out_max:
            memory.write_u32(written_out, needed, "written_out")
            raise NnError(Errno.TOO_LARGE, f"output {index} is {needed} bytes, the buffer "
                                           f"{out_max}; written_out set to {needed}",
                          needed=needed)
        memory.view(out_ptr, needed, "output buffer")[:] = output
        memory.write_u32(written_out, needed, "written_out")
        return f"{needed} bytes"

    @staticmethod
    def _describe_get_output(memory: GuestMemory, ctx: int, index: int, out_ptr: int,
                             out_max: int, written_out: int) -> str:
        return f"context={ctx} index={index} out={out_ptr:#x}+{out_max}"

    _describe_get_output_single = _describe_get_output

    def _unload(self, memory: GuestMemory, graph: int) -> str:
        self.nn.unload(graph)
        return "ok"

    @staticmethod
    def _describe_unload(memory: GuestMemory, graph: int) -> str:
        return f"graph={graph}"

    def _finalize_execution_context(self, memory: GuestMemory, ctx: int) -> str:
        self.nn.finalize_execution_context(ctx)
        return "ok"


def _describe(describe: Callable[..., str], memory: GuestMemory | None,
              args: list[int]) -> str:
    """The trace's argument text: readable, or the raw values where they cannot be read."""
    if memory is not None:
        try:
            return describe(memory, *args)
        except Exception:  # noqa: BLE001 - NnError, or a surprise: it must not reach wasmtime
            pass
    return " ".join(f"{a:#x}" for a in args)


def _fits(memory: GuestMemory, ptr: int, length: int) -> bool:
    try:
        memory.check(ptr, length, "output buffer")
    except NnError:
        return False
    return True


def _builder_pairs(memory: GuestMemory, ptr: int, count: int) -> list[int]:
    """The flat [ptr0, len0, ptr1, len1, …] of load's builder array (bounded count)."""
    if count > MAX_BUILDERS:
        raise NnError(Errno.INVALID_ARGUMENT, f"{count} model parts (at most {MAX_BUILDERS})")
    return memory.u32s(ptr, 2 * count, "builders array")


def _read_text(memory: GuestMemory, ptr: int, length: int, what: str) -> str:
    return bytes(memory.view(ptr, length, what)).decode("utf-8", errors="replace")


def _read_tensor(memory: GuestMemory, tensor_ptr: int) -> tuple[list[int], int, int, int]:
    """set_input's tensor struct: (dims, type code, data ptr, data len); data not viewed."""
    dims_ptr, dims_len = memory.u32s(tensor_ptr, 2, "tensor")
    # +8 is the type: a u8 in the witx, a 4-byte enum from the crate; read only the byte.
    type_code = memory.read_u8(tensor_ptr + 8, "tensor type")
    data_ptr, data_len = memory.u32s(tensor_ptr + 12, 2, "tensor")
    if dims_len > MAX_DIMS:
        raise NnError(Errno.INVALID_ARGUMENT, f"tensor has {dims_len} dims (at most {MAX_DIMS})")
    return memory.u32s(dims_ptr, dims_len, "tensor dims"), type_code, data_ptr, data_len

"""A faster way to define host functions: wasmtime's "unchecked" callbacks, via ctypes.

wasmtime-py's `Linker.define_func` converts every argument and result through `Val` objects
and wraps the caller; on this machine that is ~20 µs per call, paid three times per inference
(set_input, compute, get_output). The C API's `wasmtime_linker_define_func_unchecked` hands the
callback a flat array of raw values instead, and the guest's memory can be found with two C
calls. This module uses wasmtime-py's own ctypes bindings for that (pinned wasmtime==50.0.1);
if they are missing, `available()` is False and the glue falls back to `define_func`.

The callback must never let an exception reach ctypes (ctypes would print it and return 0,
i.e. "no trap" with garbage results): the body passed in is the glue's catch-all wrapper; a
KeyboardInterrupt/SystemExit is turned into a trap and re-raised by wasmtime-py, as its own
trampoline does.
"""

from __future__ import annotations

import ctypes
from typing import Any, Callable, Optional

from .memory import GuestMemory

_MEMORY_NAME = b"memory"
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()     # a NULL function pointer
_KEEP_ALIVE: list[Any] = []     # ctypes callbacks must outlive every linker that uses them


def _ffi() -> Optional[Any]:
    try:
        from wasmtime import _ffi as ffi

        for name in ("wasmtime_linker_define_func_unchecked", "wasmtime_func_unchecked_callback_t",
                     "wasmtime_caller_export_get", "wasmtime_caller_context",
                     "wasmtime_memory_data", "wasmtime_memory_data_size", "wasmtime_extern_t"):
            getattr(ffi, name)
        return ffi
    except (ImportError, AttributeError):
        return None


def available() -> bool:
    return _ffi() is not None


_last_view: list[Optional[GuestMemory]] = [None]


def memory_of(ffi: Any, caller: Any) -> Optional[GuestMemory]:
    """The caller's exported `memory`, or None when it has none.

    The view of the previous call is reused when the memory's address and size are unchanged
    (the common case: a guest calling set_input/compute/get_output in a loop), which saves
    building a ctypes array and a numpy array per call.
    """
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_caller_export_get(caller, _MEMORY_NAME, len(_MEMORY_NAME),
                                          ctypes.byref(item)):
        return None
    if item.kind != ffi.WASMTIME_EXTERN_MEMORY.value:
        return None
    context = ffi.wasmtime_caller_context(caller)
    memory = ctypes.byref(item.of.memory)
    base = ctypes.cast(ffi.wasmtime_memory_data(context, memory), ctypes.c_void_p).value or 0
    size = ffi.wasmtime_memory_data_size(context, memory)
    last = _last_view[0]
    if last is not None and last.base == base and last.size == size:
        return last
    view = GuestMemory.at(base, size)
    _last_view[0] = view
    return view


def define(linker: Any, module: str, name: str, arity: int,
           body: Callable[[Optional[GuestMemory], tuple[int, ...]], int]) -> None:
    """Define `module.name` (arity i32 params -> one i32) calling body(memory, args) -> errno."""
    from wasmtime import FuncType, Trap, ValType, WasmtimeError
    from wasmtime import _func

    ffi = _ffi()
    assert ffi is not None
    i32 = ValType.i32()
    functype = FuncType([i32] * arity, [i32])

    @ffi.wasmtime_func_unchecked_callback_t
    def callback(env: Any, caller: Any, values: Any, count: int) -> int:
        try:
            memory = memory_of(ffi, caller)
            args = tuple(values[i].i32 for i in range(arity))
            values[0].i32 = body(memory, args)
            return 0
        except BaseException as error:  # noqa: BLE001 - only Ctrl-C/exit get here: trap
            _func.LAST_EXCEPTION = error
            trap = Trap("python exception")._consume()
            return ctypes.cast(trap, ctypes.c_void_p).value or 0

    _KEEP_ALIVE.append(callback)
    module_bytes, name_bytes = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(), ctypes.create_string_buffer(module_bytes), len(module_bytes),
        ctypes.create_string_buffer(name_bytes), len(name_bytes), functype.ptr(), callback,
        None, _NO_FINALIZER)
    if error:
        raise WasmtimeError._from_ptr(error)

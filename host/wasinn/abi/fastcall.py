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

Where the C extension `wasinn.abi._fastcall` is built (setup.py), the callback itself is C:
it finds the caller's memory and reads the arguments without ctypes, and calls Python once
per call. The ctypes callback below is the fallback, with the same behaviour.
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
        from wasmtime import _bindings
        from wasmtime import _ffi as ffi

        for name in ("wasmtime_linker_define_func_unchecked", "wasmtime_func_unchecked_callback_t",
                     "WASMTIME_EXTERN_MEMORY", "wasmtime_extern_t", "dll"):
            getattr(ffi, name)
        for name in ("_wasmtime_caller_export_get", "_wasmtime_caller_context",
                     "_wasmtime_memory_data", "_wasmtime_memory_data_size"):
            getattr(_bindings, name)
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
    building a ctypes array and a numpy array per call. The C functions are called through
    `_raw` (no Python wrapper frame, the data pointer as a plain int): this runs on every call.
    """
    raw = _raw(ffi)
    item = ffi.wasmtime_extern_t()
    if not raw.export_get(caller, _MEMORY_NAME, len(_MEMORY_NAME), ctypes.byref(item)):
        return None
    if item.kind != ffi.WASMTIME_EXTERN_MEMORY.value:
        return None
    context = raw.context(caller)
    memory = ctypes.byref(item.of.memory)
    return memory_at(raw.data(context, memory) or 0, raw.data_size(context, memory))


class _RawCalls:
    """wasmtime's C functions for `memory_of`, bound once.

    wasmtime-py's own prototypes are used as they are, except `wasmtime_memory_data`: a
    separate function object (so wasmtime-py's is untouched) returning the address as an int.
    """

    def __init__(self, ffi: Any) -> None:
        from wasmtime import _bindings

        self.export_get = _bindings._wasmtime_caller_export_get
        self.context = _bindings._wasmtime_caller_context
        self.data_size = _bindings._wasmtime_memory_data_size
        data = ffi.dll["wasmtime_memory_data"]       # [] makes a new object; getattr is shared
        data.argtypes = _bindings._wasmtime_memory_data.argtypes
        data.restype = ctypes.c_void_p
        self.data = data


_RAW: list[_RawCalls] = []


def _raw(ffi: Any) -> _RawCalls:
    if not _RAW:
        _RAW.append(_RawCalls(ffi))
    return _RAW[0]


def memory_at(base: Optional[int], size: int) -> Optional[GuestMemory]:
    """The guest memory at `base` (None: the caller exports none), the last view reused
    while its address and size stay the same (see `memory_of`)."""
    if base is None:
        return None
    last = _last_view[0]
    if last is not None and last.base == base and last.size == size:
        return last
    view = GuestMemory.at(base, size)
    _last_view[0] = view
    return view


def _native(ffi: Any) -> Optional[Any]:
    """The C trampoline module, configured with wasmtime's functions; None without it."""
    if _NATIVE:
        return _NATIVE[0]
    try:
        from . import _fastcall
    except ImportError:
        _NATIVE.append(None)
        return None

    def address(name: str) -> int:
        return ctypes.cast(ffi.dll[name], ctypes.c_void_p).value or 0

    try:
        _fastcall.configure(
            address("wasmtime_caller_export_get"), address("wasmtime_caller_context"),
            address("wasmtime_memory_data"), address("wasmtime_memory_data_size"),
            address("wasmtime_trap_new"), ctypes.sizeof(ffi.wasmtime_extern_t),
            ffi.wasmtime_extern_t.of.offset, ctypes.sizeof(ffi.wasmtime_val_raw_t),
            ffi.WASMTIME_EXTERN_MEMORY.value)
    except (AttributeError, ValueError):   # a wasmtime whose C API or layout it does not know
        _NATIVE.append(None)
        return None
    _NATIVE.append(_fastcall)
    return _fastcall


_NATIVE: list[Optional[Any]] = []


def define(linker: Any, module: str, name: str, arity: int,
           body: Callable[[Optional[GuestMemory], tuple[int, ...]], int], *,
           native: bool = True) -> None:
    """Define `module.name` (arity i32 params -> one i32) calling body(memory, args) -> errno
    (through the C trampoline unless it is missing or `native` is False)."""
    from wasmtime import FuncType, Trap, ValType, WasmtimeError
    from wasmtime import _func

    ffi = _ffi()
    assert ffi is not None
    i32 = ValType.i32()
    functype = FuncType([i32] * arity, [i32])
    c_module = _native(ffi) if native else None
    if c_module is not None:
        def entry(base: Optional[int], size: int, args: tuple[int, ...]) -> int:
            try:
                return body(memory_at(base, size), args)
            except BaseException as error:  # noqa: BLE001 - only Ctrl-C/exit get here: trap
                _func.LAST_EXCEPTION = error
                return -1

        owner, env = c_module.entry(entry, arity)
        callback = ctypes.cast(c_module.trampoline_address(), ffi.wasmtime_func_unchecked_callback_t)
        _KEEP_ALIVE.append(owner)
    else:
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

        env = None
    _KEEP_ALIVE.append(callback)
    module_bytes, name_bytes = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(), ctypes.create_string_buffer(module_bytes), len(module_bytes),
        ctypes.create_string_buffer(name_bytes), len(name_bytes), functype.ptr(), callback,
        env, _NO_FINALIZER)
    if error:
        raise WasmtimeError._from_ptr(error)

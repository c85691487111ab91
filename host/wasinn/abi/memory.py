"""Zero-copy, bounds-checked access to a guest's linear memory.

A `GuestMemory` is made at the start of every host call from the guest's exported `memory`:
memory can grow (and, in general, move) between calls, so a view must never outlive the call
that made it — except the tensor views the backends hold from set_input to compute, which is
why the engine is configured with `memory_may_move(False)` (see `wasinn.runner`).

Every pointer and length is a u32 from the guest; checks are done on Python ints (no
overflow possible), so `ptr=0xFFFFFFF0, len=0x20` is simply out of bounds.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from ..nn.errors import Errno, NnError

_U32 = struct.Struct("<I")

# numpy is bound when the first view is made (the guest's first wasi-nn call), not imported with
# this module: it costs ~85 ms, half the start-up of a guest, and a guest that never calls
# wasi-nn must not pay for it. Afterwards `np` is an ordinary module global.
np: Any = None


def _import_numpy() -> None:
    global np
    import numpy

    np = numpy


class GuestMemory:
    """The guest's memory as one numpy uint8 array over wasmtime's buffer (no copy)."""

    __slots__ = ("array", "size", "base")

    def __init__(self, memory: Any, store: Any) -> None:
        self._attach(ctypes.addressof(memory.data_ptr(store).contents), memory.data_len(store))

    def _attach(self, base: int, size: int) -> None:
        if np is None:
            _import_numpy()
        self.size = size
        self.base = base
        raw = (ctypes.c_ubyte * size).from_address(base) if size else bytearray()
        self.array = np.frombuffer(raw, dtype=np.uint8)

    @classmethod
    def at(cls, base: int, size: int) -> "GuestMemory":
        """A view of `size` bytes at host address `base` (from wasmtime's raw memory API)."""
        memory = cls.__new__(cls)
        memory._attach(base, size)
        return memory

    @classmethod
    def of_caller(cls, caller: Any) -> "GuestMemory":
        """The calling instance's exported `memory`, or missing_memory."""
        from wasmtime import Memory

        memory = caller.get("memory")
        if not isinstance(memory, Memory):
            raise NnError(Errno.MISSING_MEMORY, "the guest exports no memory named 'memory'")
        return cls(memory, caller)

    def check(self, ptr: int, length: int, what: str, align: int = 1) -> None:
        """invalid_argument unless [ptr, ptr+length) lies in memory and ptr is aligned."""
        if ptr < 0 or length < 0 or ptr + length > self.size:
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"{what} {ptr:#x}+{length} is outside guest memory ({self.size} bytes)")
        if ptr % align:
            raise NnError(Errno.INVALID_ARGUMENT, f"{what} {ptr:#x} is not {align}-byte aligned")

    def view(self, ptr: int, length: int, what: str) -> "np.ndarray":
        """Bytes [ptr, ptr+length) as a writable zero-copy uint8 view."""
        self.check(ptr, length, what)
        return self.array[ptr:ptr + length]

    def u32s(self, ptr: int, count: int, what: str) -> list[int]:
        """`count` little-endian u32s at a 4-aligned `ptr` (copied: they are metadata)."""
        self.check(ptr, 4 * count, what, align=4)
        return self.array[ptr:ptr + 4 * count].view("<u4").tolist()

    def read_u32(self, ptr: int, what: str) -> int:
        self.check(ptr, 4, what, align=4)
        return _U32.unpack_from(self.array, ptr)[0]

    def read_u8(self, ptr: int, what: str) -> int:
        self.check(ptr, 1, what)
        return int(self.array[ptr])

    def check_out_u32(self, ptr: int, what: str) -> None:
        """Validate an out-pointer before doing the work it will report."""
        self.check(ptr, 4, what, align=4)

    def write_u32(self, ptr: int, value: int, what: str) -> None:
        self.check(ptr, 4, what, align=4)
        _U32.pack_into(self.array, ptr, value & 0xFFFFFFFF)

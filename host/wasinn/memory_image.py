"""A wasinn-built guest's start-state memory as a file, mapped copy-on-write at instantiation.

Instantiating the shared code module (`shared_code`) leaves the guest's memory empty; its data
segments (a snapshot has ~10 000 of them) must then be put in place. Copying them costs ~8 ms
for the hello guest and makes every page of them resident; wasmtime avoids both for a module it
compiled on its own by mapping a memory image copy-on-write. This does the same for shared code:
the active segments are laid out once, as the memory they produce, in a sparse file in the
private module cache (written when the module is indexed), and every instantiation maps that
file over the guest's memory with `mmap(MAP_PRIVATE | MAP_FIXED)`: nothing is copied, a page is
read when the guest first touches it, and a write gives the guest its own copy of that page.

The file is only ever replaced (temp file + rename), never written in place, so a mapping never
sees it change or shrink (no SIGBUS). Where the mapping is not available (not Linux) the file is
read into memory instead: the same bytes, the old cost.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import BinaryIO, Sequence

ALIGN = 1 << 16
"""Image addresses, lengths and file offsets are multiples of a wasm page (64 KiB), itself a
multiple of every host page size, so the image can be mapped on any of them."""

_PROT_READ, _PROT_WRITE = 1, 2
_MAP_PRIVATE, _MAP_FIXED = 0x02, 0x10          # Linux (every architecture wasmtime runs on)


class Image:
    """Guest memory [address, address + length) is the file `path` from `offset` on."""

    __slots__ = ("path", "offset", "address", "length")

    def __init__(self, path: str, offset: int, address: int, length: int) -> None:
        self.path = path
        self.offset = offset
        self.address = address
        self.length = length


def align_up(value: int) -> int:
    return -(-value // ALIGN) * ALIGN


def span(segments: Sequence[tuple[int, int, int]], memory_bytes: int) -> tuple[int, int] | None:
    """(address, length) of the memory the active `segments` (address, file offset, length)
    write; None when there are none, or one lies outside the start memory (instantiation fails
    then, and the segment-by-segment replay reports it as wasmtime would)."""
    written = [(address, length) for address, _, length in segments if length]
    if not written:
        return None
    low = min(address for address, _ in written) // ALIGN * ALIGN
    high = align_up(max(address + length for address, length in written))
    if any(address + length > memory_bytes for address, length in written) \
            or high > memory_bytes:
        return None
    return low, high - low


def write(out: BinaryIO, offset: int, where: tuple[int, int],
          segments: Sequence[tuple[int, int, int]], module: bytes | memoryview) -> None:
    """Lay `segments` out in `out` from `offset` as the memory `where` = (address, length):
    in order, so a later segment overwrites an earlier one, as instantiation does; bytes no
    segment writes stay holes (zeros, no disk)."""
    address, length = where
    view = memoryview(module)
    for at, source, size in segments:
        if size:
            out.seek(offset + at - address)
            out.write(view[source:source + size])
    out.truncate(offset + length)


def apply(memory_base: int, memory_bytes: int, image: Image) -> None:
    """Put `image` in place in the guest memory at `memory_base` (its current size:
    `memory_bytes`); OSError when the file is missing or shorter than the image."""
    if image.address + image.length > memory_bytes:
        raise OSError(f"the memory image {image.path} does not fit the guest's memory")
    fd = os.open(image.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if os.fstat(fd).st_size < image.offset + image.length:
            raise OSError(f"the memory image {image.path} is truncated")
        target = memory_base + image.address
        if _can_map(target):
            _map_over(target, image.length, fd, image.offset)
        else:
            view = memoryview((ctypes.c_ubyte * image.length).from_address(target)).cast("B")
            done = 0
            while done < image.length:          # a read may stop short of a large request
                got = os.preadv(fd, [view[done:]], image.offset + done)
                if got <= 0:
                    raise OSError(f"the memory image {image.path} is truncated")
                done += got
    finally:
        os.close(fd)


def _can_map(target: int) -> bool:
    return sys.platform == "linux" and target % os.sysconf("SC_PAGE_SIZE") == 0


_mmap = None


def _map_over(target: int, length: int, fd: int, offset: int) -> None:
    """mmap(target, length, RW, MAP_PRIVATE | MAP_FIXED, fd, offset): replaces the guest's
    (still zero) pages there with a private mapping of the file."""
    global _mmap
    if _mmap is None:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.mmap
        function.restype = ctypes.c_void_p
        function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                             ctypes.c_int, ctypes.c_long]
        _mmap = function
    got = _mmap(target, length, _PROT_READ | _PROT_WRITE, _MAP_PRIVATE | _MAP_FIXED, fd, offset)
    if got != target:
        error = ctypes.get_errno()
        raise OSError(error, f"mapping the memory image: {os.strerror(error)}")

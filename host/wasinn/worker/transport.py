"""What crosses between the host and the backend worker: small JSON messages on a
SOCK_SEQPACKET socket pair (file descriptors ride along with SCM_RIGHTS) and the bytes
themselves in shared memory (memfd segments mapped by both sides).

Trust runs one way. The host never unpickles, evaluates or trusts anything the worker sends:
replies are JSON with a bounded size, and a memory segment the worker hands over is mapped
only after checking that it is a sealed memfd that cannot shrink (so reading it can never
raise SIGBUS in the host) and is as large as claimed.
"""

from __future__ import annotations

import array
import fcntl
import mmap
import os
import select
import stat
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket

#: how long a side that expects a message soon polls for it before it sleeps (see Cadence)
POLL_WINDOW = 0.0005
#: a reply or request larger than this is a protocol violation (error messages are clipped)
MAX_MESSAGE = 1 << 20
MAX_FDS = 64
PAGE = mmap.PAGESIZE

SIZE_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
IMMUTABLE_SEALS = SIZE_SEALS | fcntl.F_SEAL_WRITE


class ChannelClosed(ConnectionError):
    """The other side is gone (or sent something that is not a message)."""


class Channel:
    """Messages (a JSON object + optional fds) over one SOCK_SEQPACKET socket."""

    def __init__(self, sock: socket.socket) -> None:
        # socket (and selectors, enum) imported here: every `wasinn run` imports this module,
        # only a run whose guest uses wasi-nn makes a channel (~3 ms of start-up otherwise)
        import socket

        self._socket = socket
        self.sock = sock
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        # one receive buffer for the channel's life: socket.recv_fds would allocate (and the
        # kernel map, then unmap) MAX_MESSAGE bytes for every message, ~12 us each. Anonymous
        # memory: only the pages a message reaches are ever touched
        self._buffer = mmap.mmap(-1, MAX_MESSAGE)
        self._fd_space = socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)

    def send(self, message: dict[str, Any], fds: list[int] | tuple[int, ...] = ()) -> None:
        # json is imported on first use: a run whose guest never loads a model never needs it
        import json

        data = json.dumps(message, separators=(",", ":")).encode()
        try:
            if fds:
                self._socket.send_fds(self.sock, [data], list(fds))
            else:
                self.sock.sendall(data)
        except OSError as error:
            raise ChannelClosed(str(error)) from None

    def receive(self, poll_for: float = 0.0) -> tuple[dict[str, Any], list[int]]:
        """The next message; with `poll_for`, keep the CPU awake polling for that long first
        (see Cadence) before sleeping in recvmsg."""
        if poll_for > 0:
            deadline = time.perf_counter() + poll_for
            # sched_yield: a runnable thread on this CPU (the other side, on a busy machine)
            # goes first, so polling never delays the very message it waits for
            while not self._poller.poll(0) and time.perf_counter() < deadline:
                os.sched_yield()
        try:
            size, ancillary, flags, _ = self.sock.recvmsg_into([self._buffer], self._fd_space)
        except OSError as error:
            raise ChannelClosed(str(error)) from None
        fds = _received_fds(ancillary, self._socket)
        data = self._buffer[:size]
        if not data:
            for fd in fds:
                os.close(fd)
            raise ChannelClosed("end of stream")
        if flags & (self._socket.MSG_TRUNC | self._socket.MSG_CTRUNC):
            for fd in fds:
                os.close(fd)
            raise ChannelClosed("oversized message")
        import json

        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            for fd in fds:
                os.close(fd)
            raise ChannelClosed("malformed message")
        return message, fds


def _received_fds(ancillary: list, socket: Any) -> list[int]:
    """The descriptors an SCM_RIGHTS message carried (whole ints only)."""
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    return list(fds)


class Cadence:
    """Whether to poll for the next message before sleeping, judged by the previous waits.

    A process that sleeps in recvmsg and is woken by the other side pays the wake-up of an
    idle CPU. On this 2-vCPU KVM machine (guest halt-polling off) that is ~50-100 us per
    message, against ~15 us for one still running: a ping after 0.1 ms of quiet takes ~120 us
    sleeping and ~75 us polling. So when messages come in a tight loop (a guest's
    set_input/compute/get_output, one after the other) the waiting side polls for up to
    POLL_WINDOW first. As soon as a wait is longer than that (an idle worker, a long compute)
    it sleeps at once again, so neither side burns CPU while nothing is coming. Polling that
    ran out of time means the other side could not get a CPU (a busy machine: there, polling
    made a ping ~7x slower): then it stops for the next BACKOFF messages.
    """

    BACKOFF = 64

    def __init__(self) -> None:
        self.quick = False
        self._skip = 0

    def window(self) -> float:
        if self._skip:
            self._skip -= 1
            return 0.0
        return POLL_WINDOW if self.quick else 0.0

    def waited(self, seconds: float, polled: bool) -> None:
        self.quick = seconds < POLL_WINDOW
        if polled and not self.quick:
            self._skip = self.BACKOFF


def round_up(size: int) -> int:
    return max(PAGE, -(-size // PAGE) * PAGE)


def new_memfd(name: str, size: int) -> int:
    """A sealable memfd of `size` bytes (not yet sealed)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, size)
    except OSError:
        os.close(fd)
        raise
    return fd


def seal(fd: int, seals: int) -> None:
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)


class Segment:
    """A writable shared-memory segment whose size is sealed: neither side can shrink it, so
    both may map it without risking SIGBUS. Made by whoever writes into it."""

    def __init__(self, fd: int, capacity: int, mapping: mmap.mmap) -> None:
        self.fd = fd
        self.capacity = capacity
        self.map = mapping

    @classmethod
    def create(cls, name: str, size: int) -> "Segment":
        capacity = round_up(size)
        fd = new_memfd(name, capacity)
        seal(fd, SIZE_SEALS)
        return cls(fd, capacity, mmap.mmap(fd, capacity))

    @classmethod
    def adopt(cls, fd: int, capacity: int, *, writable: bool) -> "Segment":
        """Map a segment the other side made, after checking it is what it claims to be."""
        try:
            info = os.fstat(fd)
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError as error:
            os.close(fd)
            raise ChannelClosed(f"bad shared segment: {error}") from None
        if (not stat.S_ISREG(info.st_mode) or seals & SIZE_SEALS != SIZE_SEALS
                or info.st_size < capacity or capacity <= 0):
            os.close(fd)
            raise ChannelClosed("bad shared segment: not a size-sealed memfd of the claimed size")
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        return cls(fd, capacity, mmap.mmap(fd, capacity, access=access))

    def close(self) -> None:
        """Drop the descriptor; the mapping goes when its last user (a numpy view) does."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def immutable_copy(name: str, data: memoryview) -> tuple[int, int]:
    """A memfd holding a copy of `data` (one copy, done by the kernel), sealed against any
    change: the bytes a model was loaded from can never change under it. Returns (fd, size)."""
    size = len(data)
    fd = new_memfd(name, 0)
    try:
        written = 0
        while written < size:
            written += os.write(fd, data[written:written + (64 << 20)])
        seal(fd, IMMUTABLE_SEALS)
    except OSError:
        os.close(fd)
        raise
    return fd, size


def immutable_file_copy(name: str, path: str) -> tuple[int, int]:
    """`immutable_copy` of a file's current contents (kernel to kernel, no Python bytes).

    The copy is taken once: truncating or rewriting the file afterwards changes nothing.
    """
    fd = new_memfd(name, 0)
    try:
        with open(path, "rb") as source:
            size = 0
            while True:
                sent = os.sendfile(fd, source.fileno(), None, 64 << 20)
                if sent == 0:
                    break
                size += sent
        seal(fd, IMMUTABLE_SEALS)
    except OSError:
        os.close(fd)
        raise
    return fd, size


def map_readonly(fd: int, size: int) -> memoryview:
    """A read-only view of a whole memfd (b'' for an empty one)."""
    if size == 0:
        return memoryview(b"")
    return memoryview(mmap.mmap(fd, size, access=mmap.ACCESS_READ))


def single_key(index: int) -> int:
    """Where get_output_single's output `index` lives among a context's output segments, on
    both sides: apart from get_output's (negative keys), so a streamed piece never overwrites
    an output the host holds as ready from the last compute."""
    return -1 - index

"""What crosses between the host and the backend worker: small JSON messages on a
SOCK_SEQPACKET socket pair (file descriptors ride along with SCM_RIGHTS) and the bytes
themselves in shared memory (memfd segments mapped by both sides). The one message of an
inference loop's steady state, `compute`, and its reply also have a fixed binary form
(`FastCompute`): no JSON and no dicts on either side of the round trip.

Trust runs one way. The host never unpickles, evaluates or trusts anything the worker sends:
replies are JSON with a bounded size, and a memory segment the worker hands over is mapped
only after checking that it is a sealed memfd that cannot shrink (so reading it can never
raise SIGBUS in the host) and is as large as claimed.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import select
import stat
import struct
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket

#: how long a side that expects a message soon polls for it before it sleeps (see Cadence)
POLL_WINDOW = 0.0005
#: the worker's window for the next request. Between two calls a guest runs its own code:
#: a GGML guest's set_input -> compute is ~0.6 ms of wasm Python, which a 0.5 ms window
#: missed (the worker asleep: +60-100 us on the request); 2 ms cost the pool (serving.py,
#: where guests decode images between calls) a little of its throughput
REQUEST_POLL_WINDOW = 0.001
#: a sched_yield while polling that gives the CPU away for longer than this means another
#: thread wanted it: the machine is busy (see Cadence)
CONTENDED_YIELD = 0.00005
#: a reply or request larger than this is a protocol violation (error messages are clipped)
MAX_MESSAGE = 1 << 20
MAX_FDS = 64
PAGE = mmap.PAGESIZE

SIZE_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
IMMUTABLE_SEALS = SIZE_SEALS | fcntl.F_SEAL_WRITE


class Encoded:
    """A message encoded ahead of time: a reply known before the work it answers (a compute
    with no outputs to send along) is encoded while the caches are warm; after a compute
    that evicted them, encoding a small dict costs ~30 us of cache misses."""

    __slots__ = ("data",)

    def __init__(self, message: dict[str, Any]) -> None:
        # json is imported on first use: a run whose guest never loads a model never needs it
        import json

        self.data = json.dumps(message, separators=(",", ":")).encode()


class ChannelClosed(ConnectionError):
    """The other side is gone (or sent something that is not a message)."""


class Channel:
    """Messages (a JSON object + optional fds) over one SOCK_SEQPACKET socket."""

    def __init__(self, sock: socket.socket) -> None:
        # socket (and selectors, enum) and array imported here: every `wasinn run` imports
        # this module, only a run whose guest uses wasi-nn makes a channel (~3 ms of start-up
        # otherwise; array alone is a shared library, ~0.3 ms)
        import array
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
        # a plain int: OR-ing socket's enum flags runs Python code on every message (~1 us
        # warm, several times that on the caches a compute has just evicted)
        self._truncated = int(socket.MSG_TRUNC | socket.MSG_CTRUNC)
        #: whether the last receive's polling gave the CPU to another thread (Cadence)
        self.contended = False

    def send(self, message: dict[str, Any] | Encoded | bytes,
             fds: list[int] | tuple[int, ...] = ()) -> None:
        """Send a message: a dict (as JSON), one encoded ahead, or a binary one (`FastCompute`)."""
        if type(message) is bytes:                   # the binary form: the hot path first
            data = message
        elif isinstance(message, dict):
            data = Encoded(message).data
        else:
            data = message.data
        try:
            if fds:
                self._socket.send_fds(self.sock, [data], list(fds))
            elif data is message:                # a binary message: a few bytes
                self.sock.send(data)
            else:
                self.sock.sendall(data)
        except OSError as error:
            raise ChannelClosed(str(error)) from None

    def receive(self, poll_for: float = 0.0,
                sleep_first: float = 0.0) -> tuple[dict[str, Any], list[int]]:
        """The next message, which must be a JSON object (see `receive_any`)."""
        data, fds = self.receive_any(poll_for, sleep_first)
        return decode(data, fds), fds

    def receive_any(self, poll_for: float = 0.0,
                    sleep_first: float = 0.0) -> tuple[bytes, list[int]]:
        """The next message's bytes, JSON or binary (`decode` or `FastCompute`); with
        `poll_for`, keep the CPU awake polling for that long first (see Cadence) before
        sleeping in recvmsg; with `sleep_first`, sleep that long first (or until the
        message comes) and poll after (see Forecast)."""
        if sleep_first > 0:
            select.select([self.sock], [], [], sleep_first)
        self.contended = False
        if poll_for > 0:
            now = time.perf_counter()
            deadline = now + poll_for
            # sched_yield: a runnable thread on this CPU (the other side, on a busy machine)
            # goes first, so polling never delays the very message it waits for
            while not self._poller.poll(0) and now < deadline:
                os.sched_yield()
                before, now = now, time.perf_counter()
                if now - before > CONTENDED_YIELD:
                    self.contended = True
        try:
            size, ancillary, flags, _ = self.sock.recvmsg_into([self._buffer], self._fd_space)
        except OSError as error:
            raise ChannelClosed(str(error)) from None
        fds = _received_fds(ancillary, self._socket) if ancillary else []
        data = self._buffer[:size]
        if not data:
            for fd in fds:
                os.close(fd)
            raise ChannelClosed("end of stream")
        if flags & self._truncated:
            for fd in fds:
                os.close(fd)
            raise ChannelClosed("oversized message")
        return data, fds


def decode(data: bytes, fds: list[int]) -> dict[str, Any]:
    """A JSON message's object; ChannelClosed (its descriptors closed) for anything else."""
    import json

    try:
        message = json.loads(data)
    except ValueError:
        message = None
    if not isinstance(message, dict):
        for fd in fds:
            os.close(fd)
        raise ChannelClosed("malformed message")
    return message


def _received_fds(ancillary: list, socket: Any) -> list[int]:
    """The descriptors an SCM_RIGHTS message carried (whole ints only)."""
    import array

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
    it sleeps at once again, so neither side burns CPU while nothing is coming. Polling in
    vain while other threads wanted the CPU (a sched_yield that gave it away for a while:
    a busy machine, where polling made a ping ~7x slower) stops it for the next BACKOFF
    messages. Polling in vain on an idle machine only means the other side had other work
    this time (a guest streaming from tokens made ahead): it costs one window, no backoff.
    """

    BACKOFF = 64

    def __init__(self, window: float = POLL_WINDOW) -> None:
        self.quick = False
        self._window = window
        self._skip = 0

    def window(self) -> float:
        if self._skip:
            self._skip -= 1
            return 0.0
        return self._window if self.quick else 0.0

    def waited(self, seconds: float, polled: bool, contended: bool = False) -> None:
        self.quick = seconds < self._window
        if polled and not self.quick and contended:
            self._skip = self.BACKOFF


class Forecast:
    """When the reply to a long request (a compute) will come, judged by the last ones: wait
    asleep until just before, then poll (Cadence's polling, started late).

    Only for a compute that runs on one thread (the worker says so: GGML with `threads` 1)
    while this process has another CPU: there the waiting thread has a CPU of its own.
    Asleep, it would pay the wake-up of an idle vCPU when the reply comes (~60 us here, per
    call); a timer that wakes it LEAD seconds early is paid before the reply, while the
    worker still computes, so the reply is seen at once (measured: a loop of 4.3 ms prompt
    decodes through the worker, 4.5 -> 4.3 ms a call). The earliest of the last few
    durations is the forecast: a reply earlier than that is only as slow as before; polling
    stops LEAD + MAX_POLL after the timer, and a later reply is slept on. The polling is kept
    short because it is not free even on a CPU of its own: a vCPU here may share a physical
    core with the worker's (the hypervisor does not say), and polling up to 3 ms after a
    mispredicted long compute slowed GGML generation from 0.98 to 0.92 of direct. LEAD 0.3 ms
    covers the timer's slack (50 us) and an idle vCPU's wake-up; 0.15 ms woke too late.
    Multi-threaded computes (OpenVINO, PyTorch, ...) use every CPU: a poller there slows
    the compute itself (measured: +10 %), so they are slept on as before.
    """

    LEAD = 0.0003
    MAX_POLL = 0.0002
    KEEP = 8

    def __init__(self, fallback: "Forecast | None" = None) -> None:
        self._recent: list[float] = []
        #: a broader forecast (every compute of the context) to go by while this one (those
        #: with the same input shapes) has too little; it learns every duration this one does
        self.fallback = fallback

    def plan(self) -> tuple[float, float]:
        """(sleep first, then poll for): (0, 0) until there is something to go by."""
        if len(self._recent) < 2:
            return self.fallback.plan() if self.fallback is not None else (0.0, 0.0)
        sleep = min(self._recent) - self.LEAD
        return max(sleep, 0.0), self.LEAD + self.MAX_POLL

    def took(self, seconds: float) -> None:
        self._recent.append(seconds)
        del self._recent[:-self.KEEP]
        if self.fallback is not None:
            self.fallback.took(seconds)


class FastCompute:
    """The binary form of `compute` and its reply, for the steady state of an inference loop.

    After a 3.5 ms MobileNetV2 inference has evicted both processes' caches, each Python
    step of the JSON round trip costs several times what it costs warm: building and encoding
    the request, decoding it, dispatching and checking it in the worker, the same for the
    reply — ~250 us in all per inference, measured with timestamps on both sides, where a
    bare loop with the same socket and shared memory costs ~60 us. So the request the loop
    sends every time has a fixed form and a short path on each side:

    * request: b"C", the context id (u32), the inputs to bind again (a bit mask: set_inputs
      that rode along, see client.ProxyContext) and the outputs to send along (a bit mask);
    * reply: b"K", whether the compute ran on one thread (a byte), then each wanted output's
      size in bytes (u64, by index) — only when each of them already has a segment large
      enough on both sides. Anything else (an error, a new or larger segment, a request
      with pending releases or indexes past 63) takes the JSON form, with the same replies.

    The host trusts the binary reply no more than a JSON one: its length must match the
    outputs asked for, and every size must fit the segment the host already holds.
    """

    REQUEST_TAG = b"C"
    REPLY_TAG = b"K"
    REQUEST = struct.Struct("<cIQQ")
    MAX_INDEX = 63

    @classmethod
    def request(cls, context: int, rebind: int, want: int) -> bytes:
        return cls.REQUEST.pack(cls.REQUEST_TAG, context, rebind, want)

    @classmethod
    def parse_request(cls, data: bytes) -> tuple[int, list[int], list[int]]:
        """(context id, inputs to bind again, outputs to send along); struct.error if bad."""
        _, context, rebind, want = cls.REQUEST.unpack(data)
        return context, indexes(rebind) if rebind else [], indexes(want) if want else []

    #: the replies with no outputs (a prompt-only compute), made once
    BARE_REPLIES = (b"K\x00", b"K\x01")

    @classmethod
    def reply(cls, single_threaded: bool, sizes: list[int]) -> bytes:
        if not sizes:
            return cls.BARE_REPLIES[single_threaded]
        return cls.REPLY_TAG + bytes((single_threaded,)) + struct.pack(f"<{len(sizes)}Q", *sizes)

    @classmethod
    def parse_reply(cls, data: bytes, count: int) -> tuple[bool, tuple[int, ...]]:
        """(single-threaded, the `count` sizes); ValueError for any other shape of bytes."""
        if len(data) != 2 + 8 * count or data[1] > 1:
            raise ValueError("malformed fast reply")
        return data[1] == 1, struct.unpack_from(f"<{count}Q", data, 2) if count else ()


def mask(indexes: Any) -> int | None:
    """A bit mask of small indexes, or None when one is past FastCompute.MAX_INDEX."""
    bits = 0
    for index in indexes:
        if not 0 <= index <= FastCompute.MAX_INDEX:
            return None
        bits |= 1 << index
    return bits


def indexes(bits: int) -> list[int]:
    """The indexes in a bit mask, in increasing order."""
    return [index for index in range(bits.bit_length()) if bits >> index & 1]


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

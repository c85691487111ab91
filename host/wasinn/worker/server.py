"""The backend worker's side: confine itself, then serve requests until the host hangs up.

Started by `client.BackendWorker` as `python -I -c ...` with one inherited SOCK_SEQPACKET
socket and a JSON settings string in argv (limits, the socket's descriptor number). It holds the compiled graphs and
execution contexts (by small ids) and calls the ordinary in-process backends (`backend_for`),
which know nothing of processes. Every failure is a reply, never a crash of the loop: an
`NnError` keeps its errno and message; any other exception is sent as its message (the host
turns it into runtime_error). A crash of a backend library kills only this process.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import traceback
from typing import Any, Callable

MAX_ERROR_TEXT = 4000
#: how long a compute_single may go on making a stream's next steps before it answers (a
#: backend's `read_ahead`): a step that takes longer (any real LLM's token) gets none, so
#: the first token is never later; fast steps come in batches, one round trip for many
READ_AHEAD_SECONDS = 0.001
READ_AHEAD_STEPS = 64
#: text of the steps ahead (JSON-escaped up to 6x): far below transport.MAX_MESSAGE
READ_AHEAD_BYTES = 1 << 16


class _ContextState:
    def __init__(self, context: Any) -> None:
        self.context = context
        self.inputs: dict[int, Any] = {}     # input index -> Segment (host-made)
        self.outputs: dict[int, Any] = {}    # output index -> Segment (made here)
        #: input index -> the array last bound (a view of its segment), for rebinding
        self.bound: dict[int, Any] = {}
        #: output index -> its size, for outputs the backend writes straight into their
        #: segment (Context.output_into): nothing to copy after a compute
        self.direct: dict[int, int] = {}


class Server:
    def __init__(self, channel: Any) -> None:
        from ..nn.backends import backend_for   # after the sandbox: imports stay lazy
        from . import transport

        self.channel = channel
        self.transport = transport
        self.backend_for = backend_for
        self.graphs: dict[int, Any] = {}
        self.graph_parts: dict[int, list[int]] = {}       # graph id -> fds of its model parts
        self.contexts: dict[int, _ContextState] = {}
        self.next_id = 0
        self.handlers: dict[str, Callable[[dict[str, Any], list[int]], Any]] = {
            "load": self.load, "configure": self.configure, "init": self.init,
            "set_input": self.set_input, "compute": self.compute,
            "compute_single": self.compute_single, "fini_single": self.fini_single,
            "get_output": self.get_output, "get_output_single": self.get_output_single,
            "close": self.close_context, "release": lambda request, fds: None,
            "ping": lambda request, fds: "pong",
        }

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def serve(self) -> None:
        # After a reply, the next request of a guest's inference loop is usually a few tens of
        # microseconds away: poll for it while that holds (transport.Cadence).
        transport = self.transport
        cadence = transport.Cadence(transport.REQUEST_POLL_WINDOW)
        replied = time.perf_counter()
        while True:
            window = cadence.window()
            try:
                data, fds = self.channel.receive_any(poll_for=window)
            except transport.ChannelClosed:
                return
            cadence.waited(time.perf_counter() - replied, polled=window > 0,
                           contended=self.channel.contended)
            if data[:1] == transport.FastCompute.REQUEST_TAG:
                reply, reply_fds = self.fast_compute(data, fds)
            else:
                try:
                    request = transport.decode(data, fds)
                except transport.ChannelClosed:
                    return
                reply, reply_fds = self.handle(request, fds)
            self.channel.send(reply, reply_fds)
            replied = time.perf_counter()

    def handle(self, request: dict[str, Any], fds: list[int]) -> tuple[Any, list[int]]:
        """A JSON request's reply (a dict, or one encoded ahead) and the descriptors for it."""
        self._release(request.get("release"))
        try:
            handler = self.handlers.get(request.get("op"))
            if handler is None:
                raise ValueError(f"unknown request {request.get('op')!r}")
            result = handler(request, fds)
            reply_fds: list[int] = []
            if isinstance(result, tuple):        # (value, fds to send)
                result, reply_fds = result
            if request.get("op") in ("ping", "release"):   # handed fds nobody keeps
                for fd in fds:
                    os.close(fd)
            # a whole reply encoded ahead (compute), or the value it carries
            return (result if isinstance(result, self.transport.Encoded) else {"ok": result},
                    reply_fds)
        except Exception as error:  # noqa: BLE001 - every failure is a reply
            return _error_reply(error), []

    def fast_compute(self, data: bytes, fds: list[int]) -> tuple[Any, list[int]]:
        """A binary compute (transport.FastCompute): bind again, compute, copy the wanted
        outputs into their segments, and answer in binary — or, when an output needs a
        segment the host does not have yet, with the JSON reply `compute` gives."""
        for fd in fds:                 # the binary form carries none
            os.close(fd)
        try:
            cid, rebind, wanted = self.transport.FastCompute.parse_request(data)
            state = self.contexts[cid]
            context = state.context
            for index in rebind:
                context.set_input(index, state.bound[index])
            single = context.single_threaded()
            context.compute()
        except Exception as error:  # noqa: BLE001 - every failure is a reply
            return _error_reply(error), []
        sizes = _copy_into_segments(state, wanted) if wanted else []
        if sizes is None:     # as `compute` answers: new segments, outputs that failed left out
            outputs, send = self._send_along(state, set(wanted), context.get_output,
                                             lambda index: index)
            return {"ok": {"outputs": outputs, "single_threaded": single}}, send
        return self.transport.FastCompute.reply(single, sizes), []

    def _release(self, release: Any) -> None:
        if not isinstance(release, dict):
            return
        for cid in release.get("contexts", ()):
            state = self.contexts.pop(cid, None)
            if state is not None:
                state.context.close()
                for segment in (*state.inputs.values(), *state.outputs.values()):
                    segment.close()
        for gid in release.get("graphs", ()):
            self.graphs.pop(gid, None)
            for fd in self.graph_parts.pop(gid, ()):
                os.close(fd)

    # -- graphs ---------------------------------------------------------------------------
    def load(self, request: dict[str, Any], fds: list[int]) -> int:
        from ..nn.types import ExecutionTarget, GraphEncoding

        sizes = request["sizes"]
        if len(sizes) != len(fds):
            raise ValueError("model parts and descriptors do not match")
        # The fds stay open while the graph lives: a backend that needs a path (llama.cpp)
        # can open /proc/self/fd/N (see `model_path`).
        parts = [self.transport.map_readonly(fd, size) for fd, size in zip(fds, sizes)]
        for part, fd in zip(parts, fds):
            _PART_FDS[id(part)] = fd
        backend = self.backend_for(GraphEncoding(request["encoding"]))
        try:
            graph = backend.load(parts, ExecutionTarget(request["target"]))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        finally:
            for part in parts:
                _PART_FDS.pop(id(part), None)
        gid = self._new_id()
        self.graphs[gid] = graph
        self.graph_parts[gid] = fds
        # whether `configure` can give anything but the graph itself (GGML's per-handle
        # options): if not, the host answers configure without asking
        from ..nn.backends.base import Graph

        return [gid, type(graph).configure is not Graph.configure]

    def configure(self, request: dict[str, Any], fds: list[int]) -> int:
        gid = request["graph"]
        graph = self.graphs[gid]
        configured = graph.configure(request["config"])
        if configured is graph:
            return gid
        new = self._new_id()
        self.graphs[new] = configured
        return new

    def init(self, request: dict[str, Any], fds: list[int]) -> list:
        context = self.graphs[request["graph"]].init_execution_context()
        cid = self._new_id()
        self.contexts[cid] = _ContextState(context)
        # the one optional Context attribute the core reads (GGML's metadata output)
        return [cid, bool(getattr(context, "readable_before_compute", False))]

    # -- contexts -------------------------------------------------------------------------
    def _state(self, request: dict[str, Any]) -> _ContextState:
        """The request's context, after the set_inputs that rode along with it: inputs whose
        segment got new bytes under an index, type and shape already accepted (bound again,
        for backends that copy at set_input)."""
        state = self.contexts[request["ctx"]]
        self._take_ahead(state, request.get("ahead_taken", 0))
        for index in request.get("rebind", ()):
            state.context.set_input(index, state.bound[index])
        return state

    def set_input(self, request: dict[str, Any], fds: list[int]) -> None:
        self._bind(self._state(request), request, fds)

    def _bind(self, state: _ContextState, request: dict[str, Any], fds: list[int]) -> None:
        import numpy as np

        index = request["index"]
        if fds:
            old = state.inputs.pop(index, None)
            if old is not None:
                old.close()
            state.inputs[index] = self.transport.Segment.adopt(fds[0], request["capacity"],
                                                               writable=True)
        segment = state.inputs[index]
        dtype = np.dtype(request["dtype"])
        dims = request["dims"]
        count = request["size"] // dtype.itemsize
        array = np.frombuffer(segment.map, dtype=dtype, count=count).reshape(dims)
        state.bound.pop(index, None)
        state.context.set_input(index, array)
        state.bound[index] = array

    def compute(self, request: dict[str, Any], fds: list[int]) -> Any:
        """The compute, and the outputs the host read after the previous one, sent along:
        {"outputs": [...], "single_threaded": whether it ran on the calling thread alone}
        (the host then waits for the next one's reply differently: transport.Forecast)."""
        state = self._state(request)
        wanted = _wanted(request)
        single = state.context.single_threaded()
        if not wanted:        # the reply is known already: encoded now, sent as it is after
            reply = self.transport.Encoded({"ok": {"outputs": [], "single_threaded": single}})
            state.context.compute()
            return reply
        state.context.compute()
        outputs, send = self._send_along(state, wanted, state.context.get_output,
                                         lambda index: index)
        return {"outputs": outputs, "single_threaded": single}, send

    def compute_single(self, request: dict[str, Any], fds: list[int]) -> Any:
        """One step; the outputs the host read after the previous step (the token's piece)
        come back with it, so a streamed token costs one round trip, not two; and, from a
        backend that can (`read_ahead`), the next steps' pieces and errnos, which the host
        serves without asking: {"outputs": [...], "ahead": [[errno, piece as latin-1], ...],
        "single_threaded": bool} (as compute's)."""
        state = self._state(request)
        state.context.compute_single()
        outputs, send = self._send_along(state, _wanted(request),
                                         state.context.get_output_single,
                                         self.transport.single_key)
        read_ahead = getattr(state.context, "read_ahead", None)
        steps = (read_ahead(READ_AHEAD_SECONDS, READ_AHEAD_STEPS, READ_AHEAD_BYTES)
                 if read_ahead else [])
        ahead = [[errno, piece.decode("latin-1")] for piece, errno in steps]
        return {"outputs": outputs, "ahead": ahead,
                "single_threaded": state.context.single_threaded()}, send

    @staticmethod
    def _take_ahead(state: _ContextState, count: Any) -> None:
        """The steps made ahead that the host served since its last request."""
        take = getattr(state.context, "take_ahead", None)
        if take is not None and isinstance(count, int) and count > 0:
            take(count)

    def fini_single(self, request: dict[str, Any], fds: list[int]) -> None:
        self._state(request).context.fini_single()

    def get_output(self, request: dict[str, Any], fds: list[int]) -> Any:
        state = self._state(request)
        index = request["index"]
        (size, capacity), new = self._send_output(state, index, state.context.get_output(index))
        return {"size": size, "capacity": capacity}, new

    def get_output_single(self, request: dict[str, Any], fds: list[int]) -> Any:
        state = self._state(request)
        index = request["index"]
        (size, capacity), new = self._send_output(state, self.transport.single_key(index),
                                                  state.context.get_output_single(index))
        return {"size": size, "capacity": capacity}, new

    def _send_along(self, state: _ContextState, wanted: set[int], read: Callable[[int], Any],
                    key: Callable[[int], int]) -> Any:
        """The `wanted` outputs (`read(index)`) copied into their segments (under `key(index)`),
        as [[index, size, capacity, carries_fd], ...] and the new segments' fds; an output that
        fails is left out (the host asks for it and gets the error)."""
        outputs, send = [], []
        for index in sorted(wanted):
            try:
                (size, capacity), new = self._send_output(state, key(index), read(index))
            except Exception:  # noqa: BLE001 - reported when the host asks for it
                continue
            outputs.append([index, size, capacity, bool(new)])
            send += new
        return outputs, send

    def _send_output(self, state: _ContextState, index: int, array: Any) -> Any:
        """Copy the output into this (context, index)'s segment; a new, larger segment
        travels with the reply (once per size increase). A compute's output (index >= 0;
        single steps' are keyed below 0) is then offered to the backend to write there
        itself from the next compute on (Context.output_into)."""
        import numpy as np

        segment = state.outputs.get(index)
        if index in state.direct:              # written there by the compute itself
            return (state.direct[index], segment.capacity), []
        array = np.ascontiguousarray(array)
        data = memoryview(array).cast("B")
        size = data.nbytes
        fds: list[int] = []
        if segment is None or segment.capacity < size:
            if segment is not None:
                segment.close()
            segment = self.transport.Segment.create(f"wasinn-output-{index}", size)
            state.outputs[index] = segment
            fds = [segment.fd]
        segment.map[:size] = data
        # offered the second time an output is copied here (not in a new segment): a context
        # that computes again, not one of a pool's one-inference guests, which would pay for
        # the binding and never use it
        if index >= 0 and size and not fds and array.dtype.hasobject is False:
            view = np.frombuffer(segment.map, dtype=array.dtype, count=array.size)
            if state.context.output_into(index, view):
                state.direct[index] = size
        return (size, segment.capacity), fds

    def close_context(self, request: dict[str, Any], fds: list[int]) -> None:
        self._release({"contexts": [request["ctx"]]})


def _copy_into_segments(state: _ContextState, wanted: list[int]) -> list[int] | None:
    """Copy each wanted output into the segment the host already maps; their sizes, or None
    when one does not fit (or fails to read): the JSON reply's path handles those."""
    sizes = []
    try:
        for index in wanted:
            size = state.direct.get(index)
            if size is not None:       # the compute wrote it into the segment itself
                sizes.append(size)
                continue
            array = state.context.get_output(index)
            size = array.nbytes
            segment = state.outputs.get(index)
            if segment is None or segment.capacity < size or not array.flags.c_contiguous:
                return None
            segment.map[:size] = memoryview(array).cast("B")
            sizes.append(size)
    except Exception:  # noqa: BLE001 - the JSON path reports it when the host asks
        return None
    return sizes


def _error_reply(error: Exception) -> dict[str, Any]:
    """The reply for a request that failed: an NnError keeps its errno and message; any
    other exception is a library's failure, sent as its message."""
    from ..nn.errors import NnError

    if isinstance(error, NnError):
        return {"nn": [int(error.errno), error.message[:MAX_ERROR_TEXT]], "needed": error.needed}
    if isinstance(error, MemoryError):
        return {"error": "out of memory (the worker's --max-host-memory cap)"}
    text = str(error).strip() or type(error).__name__
    return {"error": text[:MAX_ERROR_TEXT]}


def _wanted(request: dict[str, Any]) -> set[int]:
    """The outputs to send along with a compute: those the host asks for ("want"; which ones
    it asks for is the host's choice, see client.ProxyContext), bounded here."""
    want = request.get("want")
    if not isinstance(want, list):
        return set()
    return {index for index in want[:64] if isinstance(index, int) and 0 <= index < 1 << 16}


#: id(memoryview of a model part) -> its memfd, while the backend's `load` runs
_PART_FDS: dict[int, int] = {}


def model_path(part: memoryview) -> str | None:
    """A path a library can open to read this model part, during `Backend.load` in the worker.

    The part's bytes are a sealed memfd; `/proc/self/fd/N` opens it (the worker may read its own
    /proc entries, nothing else). None outside the worker (in-process: write a temp file or use
    the bytes).
    """
    fd = _PART_FDS.get(id(part))
    return None if fd is None else f"/proc/self/fd/{fd}"


def _exit_with_parent() -> None:
    """End this process when the host is gone, even in the middle of an endless compute (a
    killed host cannot kill us; its closed socket is only noticed between requests).
    PR_SET_PDEATHSIG cannot do it: it fires when the *thread* that started us ends."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="wasinn-parent-watch", daemon=True).start()


def main() -> None:
    """Entry point of a spawned worker process (see client.BackendWorker._launch)."""
    serve_confined(json.loads(sys.argv[1]))


def serve_confined(settings: dict[str, Any]) -> None:
    """Confine this process, say so to the host, then serve until it hangs up. Never returns.

    Shared by the spawned worker (`main`) and the forked one (`BackendWorker.start_early`).
    """
    from . import sandbox

    problems = sandbox.confine(settings.get("max_memory"), settings.get("max_cpu"),
                               [str(root) for root in settings.get("read_roots", ())])
    if sandbox.private_tmp is not None:      # libraries' dot-files go to the private tmpfs
        os.environ["HOME"] = sandbox.private_tmp
    if settings.get("guest_stdout") is not None:
        from ..nn.backends.base import set_guest_stdout

        set_guest_stdout(int(settings["guest_stdout"]))
    _exit_with_parent()
    from .transport import Channel

    channel = Channel(socket.socket(fileno=settings["fd"]))
    channel.send({"ready": True, "sandbox": problems, "pid": os.getpid(),
                  "at": time.perf_counter()})    # CLOCK_MONOTONIC: the host's clock too
    # Every request that does work needs numpy (inputs and outputs are numpy views of shared
    # memory), and a worker started early waits for the guest's first load: import it now,
    # with one BLAS thread (blas_threads: the worker never multiplies matrices with it).
    from ..blas_threads import use_one_blas_thread

    use_one_blas_thread()
    import numpy  # noqa: F401
    try:
        Server(channel).serve()
    except Exception:  # noqa: BLE001 - report, then die: the host sees the death
        traceback.print_exc(limit=5)
        os._exit(70)
    os._exit(0)   # skip interpreter teardown: backends' static destructors are slow and crashy

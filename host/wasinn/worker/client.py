"""The host's side of the backend worker: `BackendWorker` and the proxies that make it look
like an ordinary backend to `WasiNn` (`Backend.load -> Graph -> Context`).

One `BackendWorker` serves any number of sequential `WasiNn` instances (a `GuestPool` makes
one per guest): the process and the preloaded graphs inside it outlive each guest. It is
started on first use; when it dies (a backend crash, its memory or CPU cap, a kill at the
deadline) the call in flight and every later call on graphs or contexts it held return
runtime_error, the reason is printed on stderr, and the next `load` starts a fresh worker.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any, Sequence

from ..nn.backends.base import Backend, Context, Graph
from ..nn.errors import Errno, NnError
from ..nn.types import ExecutionTarget, GraphEncoding
from . import transport
from .limits import DEFAULT_MAX_HOST_MEMORY
from .transport import Channel, ChannelClosed, Segment, single_key



def _size(value: int | None) -> str:
    return "none" if not value else f"{value / (1 << 30):.1f} GiB"


START_TIMEOUT = 60.0
#: longest error message taken from the worker (a hostile one could send a megabyte)
MAX_MESSAGE_TEXT = 4000
#: the errnos a stream step made ahead may end with (server.READ_AHEAD_STEPS, GGML's codes)
_AHEAD_ERRNOS = {0: None, int(Errno.END_OF_SEQUENCE): Errno.END_OF_SEQUENCE,
                 int(Errno.CONTEXT_FULL): Errno.CONTEXT_FULL}

_SIGNAL_REASONS = {
    signal.SIGKILL: "SIGKILL: its memory cap, the kernel's OOM killer or a deadline",
    signal.SIGXCPU: "SIGXCPU: its CPU-time cap",
    signal.SIGSEGV: "SIGSEGV: a crash inside the backend library",
    signal.SIGBUS: "SIGBUS: a crash inside the backend library",
    signal.SIGABRT: "SIGABRT: the backend library aborted",
    signal.SIGSYS: "SIGSYS: a forbidden system call",
}


class BackendWorker:
    """The confined process the backends run in (wasm mode). Thread-safe; one call at a time."""

    def __init__(self, *, max_memory: int | None = DEFAULT_MAX_HOST_MEMORY,
                 max_cpu_seconds: int | None = None, verbose: bool = False) -> None:
        self.max_memory = max_memory
        self.max_cpu_seconds = max_cpu_seconds
        self.verbose = verbose
        #: increases each time a new process starts; proxies of an older one are stale
        self.generation = 0
        #: layers of the sandbox that did not hold in the current process ({} = all held)
        self.sandbox_problems: dict[str, str] = {}
        self._process: Any = None            # subprocess.Popen, once started
        self._channel: Channel | None = None
        self._lock = threading.RLock()
        self._kill_reason: str | None = None
        self._closed = False
        self._pending: dict[str, list[int]] = {"graphs": [], "contexts": []}
        self._named: dict[str, ProxyGraph] = {}
        self._warned = False
        #: per request kind, whether its replies come quickly (transport.Cadence)
        self._cadence: dict[str, transport.Cadence] = {}
        #: a worker forked by start_early() whose first message has not been read yet
        self._hello_pending = False
        self._started = 0.0

    # -- process ------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self._channel is not None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self.alive else None

    def _settings(self, fd: int, guest_stdout: int | None) -> dict[str, Any]:
        """What the worker process needs to confine itself and find its socket (and the
        host's stdout, for output a guest asks to see there: GGML's stream-stdout)."""
        return {"max_memory": self.max_memory, "max_cpu": self.max_cpu_seconds, "fd": fd,
                "guest_stdout": guest_stdout,
                # wasinn's own package (an editable install lives outside sys.path)
                "read_roots": [str(Path(__file__).resolve().parent.parent)]}

    def _launch(self) -> None:
        """Start a fresh worker (a new Python process) and wait until it is confined."""
        import json
        import subprocess      # imported here: a guest that never loads a model never pays

        if self._closed:
            raise NnError(Errno.RUNTIME_ERROR, "the backend worker was shut down")
        self._started = time.perf_counter()
        host_end, worker_end = _socket_pair()
        # the host's stdout under a number of its own: the worker's fd 1 is the host's stderr
        stdout = _fd_of(sys.stdout)
        guest_stdout = os.dup(stdout) if stdout is not None else None
        settings = json.dumps(self._settings(worker_end.fileno(), guest_stdout))
        code = (f"import sys; sys.path[:] = {_import_path()!r}; "
                "from wasinn.worker.server import main; main()")
        try:
            # -I: no PYTHON* variables, no user site, no current folder on sys.path. What the
            # libraries print goes to stderr: the guest's stdout stays the guest's.
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-c", code, settings], stdin=subprocess.DEVNULL,
                stdout=_stderr_fd(),
                pass_fds=(worker_end.fileno(),) + ((guest_stdout,) if guest_stdout else ()),
                close_fds=True, start_new_session=True)
        except OSError as error:
            raise NnError(Errno.RUNTIME_ERROR, f"cannot start the backend worker: {error}") from None
        finally:
            worker_end.close()
            if guest_stdout is not None:
                os.close(guest_stdout)
        self._adopt(host_end)
        self._await_hello()

    def start_early(self) -> bool:
        """Fork the worker now, so that it confines itself while the host loads and starts
        the guest, and the guest's first `load` finds it waiting.

        A fork of the host costs about a millisecond; a fresh Python for the worker costs
        tens (its start-up and imports), all of it on the way to the first inference. Only
        a single-threaded process may fork safely (the child would inherit locks that other
        threads hold), so this does nothing and returns False when threads exist — as in a
        library's process — or when a worker runs already; the first load then starts one
        the usual way. The CLI calls it before it creates any thread. The child starts in
        its own session, on /dev/null and stderr, with every other descriptor closed and
        the current folder off sys.path (as `python -I` gives the spawned worker).
        """
        if self._channel is not None or self._closed or threading.active_count() > 1:
            return False
        host_end, worker_end = _socket_pair()
        settings = self._settings(worker_end.fileno(), _fd_of(sys.stdout))
        stderr = _stderr_fd()
        for stream in (sys.stdout, sys.stderr):     # or the child would print them again
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        self._started = time.perf_counter()
        try:
            pid = os.fork()
        except OSError:
            host_end.close()
            worker_end.close()
            return False
        if pid == 0:                                # the worker: never returns
            _become_forked_worker(host_end.detach(), worker_end.detach(), stderr, settings)
        worker_end.close()
        self._process = _ForkedProcess(pid)
        self._adopt(host_end)
        self._hello_pending = True
        return True

    def _adopt(self, host_end: Any) -> None:
        """Take a freshly started process's end of the socket: a new generation begins."""
        self._channel = Channel(host_end)
        self._kill_reason = None
        self.generation += 1
        self._named.clear()
        self._pending = {"graphs": [], "contexts": []}

    def _await_hello(self) -> None:
        """The worker's first message: it is confined (and which layers held)."""
        self._hello_pending = False
        assert self._channel is not None and self._process is not None
        sock = self._channel.sock
        sock.settimeout(START_TIMEOUT)
        try:
            hello, fds = self._channel.receive()
        except (ChannelClosed, TimeoutError, OSError):
            raise self._died("starting") from None
        finally:
            sock.settimeout(None)
        for fd in fds:
            os.close(fd)
        self.sandbox_problems = {str(k): str(v) for k, v in dict(hello.get("sandbox", {})).items()}
        if self.verbose:
            held = [layer for layer in ("namespaces", "landlock", "seccomp")
                    if layer not in self.sandbox_problems]
            ready = hello.get("at")
            took = (ready if isinstance(ready, float) else time.perf_counter()) - self._started
            how = "forked" if isinstance(self._process, _ForkedProcess) else "spawned"
            print(f"wasinn: backend worker started (pid {self._process.pid}, {how}, ready in "
                  f"{took * 1e3:.1f} ms; confined by "
                  f"{', '.join(held) or 'nothing'}; memory cap "
                  f"{_size(self.max_memory)})", file=sys.stderr)
        if self.sandbox_problems and not self._warned:
            self._warned = True
            for layer, problem in self.sandbox_problems.items():
                print(f"wasinn: warning: backend worker runs without {layer}: {problem}",
                      file=sys.stderr)

    def _ensure(self) -> Channel:
        if self._channel is None:
            self._launch()
        elif self._hello_pending:
            self._await_hello()
        assert self._channel is not None
        return self._channel

    def kill(self, reason: str) -> None:
        """Kill the process now (from any thread): the call in flight returns runtime_error."""
        process = self._process
        if process is not None and process.poll() is None:
            self._kill_reason = reason
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:       # a forked worker that has not made its session yet
                try:
                    os.kill(process.pid, signal.SIGKILL)
                except OSError:
                    pass

    def close(self) -> None:
        """Stop the worker (end of a run or of a pool); further use is an error."""
        self._closed = True
        self.kill("shut down")        # first: a call in flight holds the lock until it returns
        with self._lock:
            self._reap()

    def _reap(self) -> str:
        """Collect the dead process; the reason it died, in words."""
        process = self._process
        channel = self._channel
        self._channel = None
        self._hello_pending = False
        self._named.clear()
        if channel is not None:
            channel.sock.close()
        if process is None:
            return "it was never started"
        import subprocess

        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if self._kill_reason is not None:
            return f"killed at {self._kill_reason}"
        if code < 0:
            number = -code
            try:
                name = _SIGNAL_REASONS.get(signal.Signals(number), signal.Signals(number).name)
            except ValueError:
                name = f"signal {number}"
            return f"killed by {name}"
        return f"exited with status {code}"

    def _died(self, during: str) -> NnError:
        reason = self._reap()
        message = f"the backend worker died during {during} ({reason}); later loads start a new one"
        print(f"wasinn: {message}", file=sys.stderr)
        return NnError(Errno.RUNTIME_ERROR, message)

    # -- calls ----------------------------------------------------------------------------
    def call(self, op: str, fields: dict[str, Any], fds: Sequence[int] = (),
             generation: int | None = None, *, accept_fds: bool = False,
             forecast: transport.Forecast | None = None) -> tuple[Any, list[int]]:
        """One request and its reply; NnError for failures (errno kept), RuntimeError for a
        library's exception (the core adds the backend's name). Descriptors in the reply are
        returned only with `accept_fds` (outputs); any others are closed at once. With a
        `forecast`, the reply is waited for as it says (a single-threaded compute's)."""
        with self._lock:
            channel = self._channel_of(generation)
            request = {"op": op, **fields}
            if self._pending["graphs"] or self._pending["contexts"]:
                request["release"] = self._pending
                self._pending = {"graphs": [], "contexts": []}
            data, reply_fds = self._exchange(channel, op, transport.Encoded(request).data, fds,
                                             forecast)
            reply = self._decode(op, data, reply_fds)
        return self.result(reply, reply_fds, accept_fds)

    def fast_compute(self, context: int, rebind: int, want: int, generation: int,
                     forecast: transport.Forecast | None
                     ) -> tuple[bytes | dict[str, Any], list[int]] | None:
        """A `compute` in binary (transport.FastCompute): its binary reply's bytes, or a JSON
        reply (for `result`), and the reply's descriptors; None when a JSON request is
        needed instead (releases to send along)."""
        with self._lock:
            if self._pending["graphs"] or self._pending["contexts"]:
                return None
            channel = self._channel_of(generation)
            data, fds = self._exchange(channel, "compute",
                                       transport.FastCompute.request(context, rebind, want), (),
                                       forecast)
            if data[:1] == transport.FastCompute.REPLY_TAG:
                return data, fds
            return self._decode("compute", data, fds), fds

    def _decode(self, op: str, data: bytes, fds: list[int]) -> dict[str, Any]:
        """A JSON reply's object (with the lock held); a malformed one ends the worker."""
        try:
            return transport.decode(data, fds)
        except ChannelClosed:
            raise self._died(op) from None

    def _channel_of(self, generation: int | None) -> Channel:
        """The channel to send on (the worker started if need be); an error when the
        caller's graph or context belongs to a worker that has died since."""
        if generation is not None and (generation != self.generation or self._channel is None):
            raise NnError(Errno.RUNTIME_ERROR, "this graph or context was held by a backend "
                                               "worker that has died; load the model again")
        return self._ensure()

    def _exchange(self, channel: Channel, op: str, data: bytes, fds: Sequence[int],
                  forecast: transport.Forecast | None) -> tuple[bytes, list[int]]:
        """Send a request and wait for its reply's bytes (with the lock held). A quick op
        (an input bound again, a small model's compute) is polled for, not slept on
        (transport.Cadence); a long compute is slept on, or with a forecast slept on until
        just before its reply (transport.Forecast)."""
        cadence = None
        if forecast is not None:
            sleep_first, window = forecast.plan()
        else:
            cadence = self._cadence.get(op)
            if cadence is None:         # made once per kind, not on every call
                cadence = self._cadence[op] = transport.Cadence()
            window, sleep_first = cadence.window(), 0.0
        try:
            sent = time.perf_counter()
            channel.send(data, fds)
            reply, reply_fds = channel.receive_any(poll_for=window, sleep_first=sleep_first)
            took = time.perf_counter() - sent
        except ChannelClosed:
            raise self._died(op) from None
        if forecast is not None:
            forecast.took(took)
        elif cadence is not None:
            cadence.waited(took, polled=window > 0, contended=channel.contended)
        return reply, reply_fds

    @staticmethod
    def result(reply: dict[str, Any], reply_fds: list[int],
               accept_fds: bool) -> tuple[Any, list[int]]:
        """A JSON reply's value (and its descriptors, with `accept_fds`), or its error raised."""
        if "ok" in reply and accept_fds:
            return reply["ok"], reply_fds
        for fd in reply_fds:
            os.close(fd)
        if "ok" in reply:
            return reply["ok"], []
        if "nn" in reply:
            errno, message = reply["nn"]
            try:
                code = Errno(int(errno))
            except (TypeError, ValueError):
                code = Errno.RUNTIME_ERROR
            needed = reply.get("needed")
            raise NnError(code, str(message)[:MAX_MESSAGE_TEXT],
                          needed if isinstance(needed, int) else None)
        raise RuntimeError(str(reply.get("error", "malformed reply from the backend worker"))
                           [:MAX_MESSAGE_TEXT])

    def _defer_release(self, kind: str, generation: int, ident: int) -> None:
        """Called when a proxy is dropped: freed in the worker with the next request."""
        if generation == self.generation and self._channel is not None:
            self._pending[kind].append(ident)

    # -- the backend contract ----------------------------------------------------------------
    def backend(self, encoding: GraphEncoding, local: Backend) -> Backend:
        """A `Backend` whose graphs live in this worker (`local` gives its name)."""
        return ProxyBackend(self, encoding, local.name)

    def load(self, encoding: GraphEncoding, target: ExecutionTarget,
             parts: Sequence[tuple[int, int]], backend_name: str) -> "ProxyGraph":
        """Load from sealed memfds [(fd, size)] (consumed: sent, then closed here)."""
        try:
            (gid, configurable), _ = self.call(
                "load", {"encoding": int(encoding), "target": int(target),
                         "sizes": [size for _, size in parts]}, [fd for fd, _ in parts])
        finally:
            for fd, _ in parts:
                os.close(fd)
        graph = ProxyGraph(self, gid, backend_name)
        graph.configurable = bool(configurable)
        return graph

    def named_graph(self, model: Any) -> "ProxyGraph":
        """The preloaded model `model` (a `NamedModel`), compiled once per worker process.

        The files are copied once into sealed memory when the worker loads them: rewriting or
        truncating them afterwards changes nothing the graph sees.
        """
        from ..nn.backends import backend_for

        with self._lock:
            self._ensure()
            graph = self._named.get(model.name)
            if graph is not None:
                return graph
            parts = []
            try:
                for index, path in enumerate(model.paths):
                    parts.append(transport.immutable_file_copy(f"wasinn-{model.name}-{index}",
                                                               str(path)))
            except OSError as error:
                for fd, _ in parts:
                    os.close(fd)
                raise NnError(Errno.NOT_FOUND, f"model {model.name!r}: cannot read {path}: "
                                               f"{error.strerror or error}") from None
            model.reads += 1
            graph = self.load(model.encoding, model.target, parts,
                              backend_for(model.encoding).name)
            graph.named = True
            self._named[model.name] = graph
            return graph


def _spare_cpu() -> bool:
    """Whether this process may run on more than one CPU (a single-threaded compute in the
    worker then leaves one to wait on: transport.Forecast)."""
    try:
        return len(os.sched_getaffinity(0)) > 1
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) > 1


_SPARE_CPU = _spare_cpu()


def _socket_pair() -> tuple[Any, Any]:
    """(host end, worker end) of a new SOCK_SEQPACKET pair. socket is imported here, not at
    the top: every `wasinn run` imports this module, few of them start a worker."""
    import socket

    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def _import_path() -> list[str]:
    """The worker's sys.path: this process's, without relative entries and the current
    folder (a guest may write files there; the worker must never import them)."""
    cwd = os.getcwd()
    return [p for p in sys.path if p and os.path.isabs(p) and p != cwd]


class _ForkedProcess:
    """The few `subprocess.Popen` methods BackendWorker uses, for a worker made by fork."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL     # reaped elsewhere: gone, reason unknown
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() >= end:
                import subprocess

                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout)
            time.sleep(0.001)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass


def _become_forked_worker(host_fd: int, worker_fd: int, stderr: int | None,
                          settings: dict[str, Any]) -> None:
    """The child side of BackendWorker.start_early: tidy what fork copied (the host's end of
    the socket `host_fd` among the descriptors closed), then serve."""
    try:
        os.setsid()
        if settings.get("guest_stdout") is not None:     # a number of its own, kept below
            settings["guest_stdout"] = os.dup(settings["guest_stdout"])
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(stderr if stderr is not None else null, 1)
        if stderr is None:
            os.dup2(null, 2)
        keep = {0, 1, 2, worker_fd, settings.get("guest_stdout")}
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        sys.path[:] = _import_path()
        from .server import serve_confined

        serve_confined(settings)
    finally:
        os._exit(70)


def _stderr_fd() -> int | None:
    return _fd_of(sys.stderr)


def _fd_of(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):   # a test runner's captured stream
        return None


class ProxyBackend(Backend):
    """Loads into the worker: the bytes are copied once, guest memory -> sealed memfd."""

    def __init__(self, worker: BackendWorker, encoding: GraphEncoding, name: str) -> None:
        self.worker = worker
        self.encoding = encoding
        self.name = name

    def load(self, builders: Sequence[memoryview], target: ExecutionTarget) -> Graph:
        parts = []
        try:
            for index, part in enumerate(builders):
                parts.append(transport.immutable_copy(f"wasinn-model-{index}", part))
        except OSError as error:
            for fd, _ in parts:
                os.close(fd)
            raise NnError(Errno.RUNTIME_ERROR, f"cannot pass the model to the backend worker: "
                                               f"{error}") from None
        return self.worker.load(self.encoding, target, parts, self.name)


class ProxyGraph(Graph):
    """A graph living in the worker (id `gid`); freed there when this object is dropped."""

    def __init__(self, worker: BackendWorker, gid: int, backend: str) -> None:
        self.worker = worker
        self.gid = gid
        self.generation = worker.generation
        self.backend = backend
        self.named = False
        #: whether the worker's graph has options (`configure` may give another graph)
        self.configurable = True
        weakref.finalize(self, worker._defer_release, "graphs", self.generation, gid)

    def init_execution_context(self) -> Context:
        (cid, readable), _ = self.worker.call("init", {"graph": self.gid},
                                              generation=self.generation)
        # the context keeps this proxy (so the worker's graph) alive
        context = ProxyContext(self, cid)
        context.readable_before_compute = bool(readable)
        return context

    def configure(self, config: dict) -> Graph:
        if not self.configurable:      # the backend's graphs take no options: itself (no trip)
            return self
        gid, _ = self.worker.call("configure", {"graph": self.gid, "config": config},
                                  generation=self.generation)
        return self if gid == self.gid else ProxyGraph(self.worker, gid, self.backend)


class ProxyContext(Context):
    """An execution context in the worker.

    Copies: inputs go guest memory -> a shared segment at set_input (the only copy on the
    way in); outputs are read straight out of the worker's segment (the caller's copy into
    guest memory is the only one on the host side).

    Round trips: one per inference in the steady state. A set_input whose (index, dtype,
    dims, segment) the worker already accepted once needs no answer of its own — it cannot
    fail differently — so it travels with the next request; and `compute` returns, already in
    shared memory, the outputs this context read after its previous compute, so their
    get_output needs no request at all. A first set_input, a new shape, or a new output index
    still get their own round trip, with their own errors. Streaming is the same: each
    `compute_single` brings back the pieces read after the step before (GGML's token text),
    and the steps the worker could make ahead within its budget (server.READ_AHEAD_SECONDS),
    which the next `compute_single` + `get_output_single(0)` calls are served from here; the
    worker learns how many were taken with this context's next request.
    """

    def __init__(self, graph: ProxyGraph, cid: int) -> None:
        self.graph = graph
        self.worker = graph.worker
        self.cid = cid
        self.generation = graph.generation
        self._inputs: dict[int, Segment] = {}
        self._outputs: dict[int, Segment] = {}
        #: input index -> the set_input fields the worker accepted for it; all of them as one
        #: key (made when first needed after a change: Forecast per input shapes)
        self._accepted: dict[int, tuple] = {}
        self._shapes: tuple | None = None
        #: input indexes to bind again (same array, new bytes) before the next request
        self._pending: set[int] = set()
        #: output index -> size, for outputs the last compute already put in shared memory
        self._ready: dict[int, int] = {}
        #: the same for get_output_single after the last compute_single (segments apart:
        #: `single_key`)
        self._ready_single: dict[int, int] = {}
        #: outputs (and single-step outputs) read since the last compute (compute_single), and
        #: those read between the two computes before. A compute asks for the outputs read
        #: after each of the last two to be sent along: read every time, they will be read
        #: again; one read once (GGML's metadata at the end of a chat turn) is not made and
        #: copied by the next compute for nothing (~0.1 ms after a long prompt, measured). A
        #: stream's steps ask for the pieces read after the step before: they are read after
        #: every step.
        self._read: set[int] = set()
        self._read_before: set[int] = set()
        self._read_single: set[int] = set()
        #: stream steps the worker made ahead (errno or 0, piece), served by compute_single
        #: here; how many were served since the last request; the piece of the last one
        self._ahead: deque[tuple[int, bytes]] = deque()
        self._taken = 0
        self._local_piece: bytes | None = None
        #: per compute kind, when its reply comes, while the worker runs this context's
        #: computes on one thread and this process has another CPU (transport.Forecast);
        #: and the same per kind and input shapes, which say more (a prompt of the same
        #: length takes as long again; a long one and a short one differ by 6x)
        self._forecasts: dict[str, transport.Forecast] = {}
        self._shaped_forecasts: dict[tuple, transport.Forecast] = {}
        self._closed = False

    def _call(self, op: str, fields: dict[str, Any], fds: Sequence[int] = (),
              forecast: transport.Forecast | None = None) -> tuple[Any, list[int]]:
        fields["ctx"] = self.cid
        if op not in ("get_output", "get_output_single"):     # reads leave the stream as it is
            self._forget_ahead()
        if self._taken:
            fields["ahead_taken"], self._taken = self._taken, 0
        if self._pending:
            fields["rebind"] = sorted(self._pending)
            self._pending = set()
        return self.worker.call(op, fields, fds, generation=self.generation,
                                accept_fds=op in ("compute", "compute_single", "get_output",
                                                  "get_output_single"),
                                forecast=forecast)

    def _compute_call(self, op: str, want: set[int]) -> tuple[dict[str, Any], list[int]]:
        """compute or compute_single, asking for the outputs `want` to come along. The reply
        is {"outputs": [...], "single_threaded": bool, ...}: whether the worker computed on
        one thread decides how the next reply is waited for."""
        result, fds = self._call(op, {"want": sorted(want)}, forecast=self._forecast(op))
        self._note_threading(op, self._checked(result, fds))
        return result, fds

    @staticmethod
    def _checked(result: Any, fds: list[int]) -> bool:
        """Whether a compute reply says its compute ran on one thread; RuntimeError (its
        descriptors closed) when it is not {"outputs": [...], ...}."""
        if not isinstance(result, dict) or not isinstance(result.get("outputs"), list):
            for fd in fds:
                os.close(fd)
            raise RuntimeError("malformed reply from the backend worker")
        return result.get("single_threaded") is True

    def _note_threading(self, op: str, single_threaded: bool) -> None:
        """A compute that ran on one thread is waited for by forecast next time (while this
        process has a CPU to spare); others are slept on."""
        if single_threaded and _SPARE_CPU:
            self._forecasts.setdefault(op, transport.Forecast())
        elif self._forecasts.pop(op, None) is not None:
            self._shaped_forecasts.clear()

    #: input shapes remembered per context for forecasts (a chat's prompts are all different)
    MAX_SHAPED_FORECASTS = 16

    def _forecast(self, op: str) -> transport.Forecast | None:
        """The forecast for this compute: by its input shapes, falling back to every compute
        of its kind; None when its computes are not single-threaded."""
        general = self._forecasts.get(op)
        if general is None:
            return None
        if self._shapes is None:
            self._shapes = tuple(sorted(self._accepted.items()))
        key = (op, self._shapes)
        shaped = self._shaped_forecasts.get(key)
        if shaped is None:
            if len(self._shaped_forecasts) >= self.MAX_SHAPED_FORECASTS:
                self._shaped_forecasts.clear()
            shaped = self._shaped_forecasts[key] = transport.Forecast(general)
        return shaped

    def set_input(self, index: int, array: Any) -> None:
        size = array.nbytes
        segment = self._inputs.get(index)
        fds: tuple[int, ...] = ()
        fields: dict[str, Any] = {"index": index, "dtype": array.dtype.str,
                                  "dims": list(array.shape), "size": size}
        if segment is None or segment.capacity < size:
            if segment is not None:
                segment.close()
            segment = Segment.create(f"wasinn-input-{index}", size)
            self._inputs[index] = segment
            fds = (segment.fd,)
            fields["capacity"] = segment.capacity
        if size:
            segment.map[:size] = memoryview(array).cast("B")
        self._ready.clear()
        self._ready_single.clear()
        self._forget_ahead()
        key = (fields["dtype"], tuple(fields["dims"]), size)
        if not fds and self._accepted.get(index) == key:
            self._pending.add(index)
            return
        self._accepted.pop(index, None)
        self._shapes = None
        self._pending.discard(index)
        self._call("set_input", fields, fds)
        self._accepted[index] = key

    def compute(self) -> None:
        self._ready.clear()
        self._ready_single.clear()
        if self._fast_compute():
            return
        result, fds = self._compute_call("compute", self._read & self._read_before)
        self._read_before, self._read = self._read, set()
        self._adopt_outputs(result["outputs"], fds)

    def _fast_compute(self) -> bool:
        """The steady state's compute in binary (transport.FastCompute); False when the JSON
        request must carry something the binary one cannot (a stream's steps taken, releases,
        large indexes). A JSON reply to it (a new segment, an error) is handled as
        `compute`'s."""
        if self._taken or self._ahead or self._local_piece is not None:
            return False
        wanted = sorted(self._read & self._read_before) if self._read else []
        rebind = transport.mask(self._pending) if self._pending else 0
        want = transport.mask(wanted) if wanted else 0
        if rebind is None or want is None:
            return False
        forecast = self._forecast("compute")
        exchanged = self.worker.fast_compute(self.cid, rebind, want, self.generation, forecast)
        if exchanged is None:
            return False
        reply, fds = exchanged
        self._pending.clear()
        self._read_before, self._read = self._read, set()
        if isinstance(reply, dict):
            result, fds = self.worker.result(reply, fds, accept_fds=True)
            self._note_threading("compute", self._checked(result, fds))
            self._adopt_outputs(result["outputs"], fds)
            return True
        for fd in fds:
            os.close(fd)
        try:
            single, sizes = transport.FastCompute.parse_reply(reply, len(wanted))
        except ValueError:
            raise RuntimeError("malformed reply from the backend worker") from None
        for index, size in zip(wanted, sizes):
            self._ready[index] = self._inside_segment(index, size)
        self._note_threading("compute", single)
        return True

    def compute_single(self) -> None:
        self._ready.clear()
        self._ready_single.clear()
        if self._ahead:
            self._take_local_step()
            return
        result, fds = self._compute_call("compute_single", self._read_single)
        self._read_single.clear()
        self._adopt_outputs(result["outputs"], fds, key=single_key, ready=self._ready_single)
        self._ahead = self._parse_ahead(result.get("ahead"))

    def fini_single(self) -> None:
        self._ready.clear()
        self._ready_single.clear()
        self._call("fini_single", {})

    def get_output(self, index: int) -> Any:
        self._read.add(index)
        size = self._ready.get(index)
        if size is None:
            result, fds = self._call("get_output", {"index": index})
            size = self._adopt_output(index, result, fds)
        return self._view(index, size)

    def get_output_single(self, index: int) -> Any:
        self._read_single.add(index)
        if index == 0 and self._local_piece is not None:
            import numpy as np

            return np.frombuffer(self._local_piece, dtype=np.uint8)
        key = single_key(index)
        size = self._ready_single.get(index)
        if size is None:
            result, fds = self._call("get_output_single", {"index": index})
            size = self._adopt_output(key, result, fds)
        return self._view(key, size)

    def _take_local_step(self) -> None:
        """compute_single served from the steps made ahead: the worker learns of it (and
        takes the step itself) with this context's next request."""
        errno, self._local_piece = self._ahead.popleft()
        self._taken += 1
        if errno:
            self._ahead.clear()
            code = _AHEAD_ERRNOS[errno]
            raise NnError(code, "end of generation" if code is Errno.END_OF_SEQUENCE
                          else "the context is full")

    def _forget_ahead(self) -> None:
        """Any other request may change the stream: the steps not served yet stay in the
        worker (which hands them out again if the stream goes on), not here."""
        if self._ahead or self._local_piece is not None:
            self._ahead.clear()
            self._local_piece = None

    @staticmethod
    def _parse_ahead(ahead: Any) -> deque:
        try:
            if not isinstance(ahead, list):
                raise TypeError
            steps = deque()
            for errno, piece in ahead:
                if not isinstance(errno, int) or errno not in _AHEAD_ERRNOS:
                    raise ValueError
                steps.append((errno, piece.encode("latin-1")))
            return steps
        except (TypeError, ValueError, AttributeError):
            raise RuntimeError("malformed reply from the backend worker") from None

    def _adopt_outputs(self, result: Any, fds: list[int], key: Any = None,
                       ready: dict[int, int] | None = None) -> None:
        """The outputs a compute sent along: [[index, size, capacity, carries_fd], ...]
        (stored under `key(index)` and marked in `ready`: compute_single's own)."""
        key = key or (lambda index: index)
        ready = self._ready if ready is None else ready
        try:
            outputs = [(int(i), int(size), int(cap), bool(new)) for i, size, cap, new in result]
            if sum(new for *_, new in outputs) != len(fds):
                raise ValueError
        except (TypeError, ValueError):
            for fd in fds:
                os.close(fd)
            raise RuntimeError("malformed reply from the backend worker") from None
        fd_iter = iter(fds)
        for index, size, capacity, new in outputs:
            self._adopt_output(key(index), {"size": size, "capacity": capacity},
                               [next(fd_iter)] if new else [])
            ready[index] = size

    def _adopt_output(self, index: int, result: Any, fds: list[int]) -> int:
        try:
            size, capacity = int(result["size"]), int(result["capacity"])
        except (TypeError, KeyError, ValueError):
            for fd in fds:
                os.close(fd)
            raise RuntimeError("malformed reply from the backend worker") from None
        if fds:
            for extra in fds[1:]:
                os.close(extra)
            try:
                segment = Segment.adopt(fds[0], capacity, writable=False)
            except ChannelClosed as error:
                raise RuntimeError(str(error)) from None
            old = self._outputs.pop(index, None)
            if old is not None:
                old.close()
            self._outputs[index] = segment
        return self._inside_segment(index, size)

    def _inside_segment(self, index: int, size: int) -> int:
        """`size`, when output `index` has a segment that holds that many bytes; a worker
        that claims more is refused (RuntimeError) rather than read past its segment."""
        segment = self._outputs.get(index)
        if segment is None or not 0 <= size <= segment.capacity:
            raise RuntimeError("the backend worker reported an output outside its segment")
        return size

    def _view(self, index: int, size: int) -> Any:
        import numpy as np

        return np.frombuffer(self._outputs[index].map, dtype=np.uint8, count=size)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.worker._defer_release("contexts", self.generation, self.cid)
        for segment in (*self._inputs.values(), *self._outputs.values()):
            segment.close()

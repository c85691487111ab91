"""`GuestPool`: open a guest module once, run a fresh, isolated guest per call.

`wasinn run` is one process per guest: it starts Python, compiles the model, runs one guest and
exits. A server or a batch job wants the opposite split, and this is it:

shared by every call (made once, in `GuestPool(...)`)
    the wasmtime engine, the compiled module, one linker (WASI + `wasi_ephemeral_nn`), and the
    named models of `preload`, *compiled up front* (a `load_by_name` in a call is a lookup).
fresh for every call (`pool.call(...)`)
    a store with its own linear memory and memory cap, WASI state (argv, env, stdin bytes,
    captured stdout/stderr, an optional private folder of `files`), and its own wasi-nn handle
    tables (`WasiNn`): nothing a guest does — globals, files in its folder, graph and context
    handles — is visible to the next call.

Calls are thread-safe: each runs on the calling thread, and wasm code runs without Python's
GIL, so N threads calling one pool use N cores (the models are shared, not copied). Per-call
timeouts use wasmtime epoch interruption driven by one ticker thread per pool, so one call's
deadline never stops another's guest.

    from wasinn import GuestPool

    with GuestPool("classify.wasm", preload=["mobilenet:OpenVINO:CPU:m.xml,m.bin"],
                   timeout=10, max_memory=512 << 20) as pool:
        result = pool.call(["mobilenet", "/files/x.jpg"], files={"x.jpg": jpeg_bytes})
        print(result.exit_code, result.stdout.decode())
"""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Mapping, Sequence

from .abi import EphemeralNn
from .nn import Errno, ModelRegistry, NnError, PreloadError, WasiNn
from .nn.core import DEFAULT_MAX_CONTEXTS, DEFAULT_MAX_GRAPHS
from .runner import HostError, call_start, instantiate, load_module, make_engine, make_linker
from .trace import Tracer
from .worker import DEFAULT_MAX_HOST_MEMORY, BackendWorker

__all__ = ["GuestPool", "CallResult", "CallTimings", "HostError"]

DEFAULT_MAX_OUTPUT = 16 << 20
"""Cap on the bytes captured from each of a call's stdout and stderr (the rest is dropped)."""

DEFAULT_FILES_DIR = "/files"
"""Guest path of a call's private folder (holding the `files` of `call`)."""

TICK_SECONDS = 0.01
"""Epoch ticker period: per-call timeouts are enforced to within about this."""

_UNSET: Any = object()


@dataclass(frozen=True)
class CallTimings:
    """Where a call's time went, in milliseconds."""

    setup_ms: float        # WASI config, stdin, the private folder
    instantiate_ms: float  # a new instance of the compiled module
    run_ms: float          # the guest's `_start`, start to exit
    total_ms: float        # everything, cleanup included


@dataclass(frozen=True)
class CallResult:
    """What one guest call produced.

    `exit_code` follows `wasinn run`: the guest's own code, 124 when the call's timeout expired,
    134 when the guest trapped. `error` is the host's one-line reason in those two cases (it is
    also the last line of `stderr`), else None.
    """

    exit_code: int
    stdout: bytes
    stderr: bytes
    timings: CallTimings
    timed_out: bool = False
    trapped: bool = False
    error: str | None = None
    output_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class _Output:
    """A call's stdout or stderr: an anonymous in-memory file that wasmtime writes directly.

    A file rather than wasmtime-py's `stdout_custom` callback: WASI output runs on wasmtime's
    tokio threads, and a Python callback there can be entered while the interpreter exits,
    which aborts the process. Keeping at most `limit` bytes: the pool's ticker calls `police`
    every tick; past the limit it saves the first `limit` bytes once and then empties the
    file each tick (later writes land past the end of a sparse file and are dropped), so a
    guest printing without end costs at most one tick of output in memory.
    """

    __slots__ = ("fd", "path", "limit", "kept", "truncated", "_lock")

    def __init__(self, limit: int) -> None:
        self.fd = os.memfd_create("wasinn-output", os.MFD_CLOEXEC)
        self.path = f"/proc/self/fd/{self.fd}"
        self.limit = limit
        self.kept: bytes | None = None
        self.truncated = False
        self._lock = threading.Lock()

    def police(self) -> None:
        with self._lock:
            if self.fd < 0 or os.fstat(self.fd).st_size <= self.limit:
                return
            if self.kept is None:
                self.kept = os.pread(self.fd, self.limit, 0)
            self.truncated = True
            os.ftruncate(self.fd, 0)

    def value(self) -> bytes:
        with self._lock:
            if self.kept is not None:
                return self.kept
            data = os.pread(self.fd, self.limit + 1, 0)
            if len(data) > self.limit:
                self.truncated = True
                data = data[:self.limit]
            return data

    def close(self) -> None:
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


class _PerCallImports(EphemeralNn):
    """`wasi_ephemeral_nn` on one shared linker, served by the calling thread's `WasiNn`.

    Imports are defined once per pool (defining them per call would add ctypes callbacks that
    must live forever); a guest runs entirely on the thread that called it, so a thread-local
    tells each import which call's handle tables to use.
    """

    def __init__(self, tracer: Tracer) -> None:
        self._current = threading.local()
        super().__init__(WasiNn(), tracer)
        del self.nn

    @property
    def nn(self) -> WasiNn:  # type: ignore[override]
        try:
            return self._current.nn
        except AttributeError:
            raise NnError(Errno.RUNTIME_ERROR, "wasi-nn called outside a pool call") from None

    @nn.setter
    def nn(self, value: WasiNn) -> None:
        self._current.nn = value

    @nn.deleter
    def nn(self) -> None:
        self._current.__dict__.pop("nn", None)


class _EpochTicker:
    """Every TICK_SECONDS: advance the engine's epoch (timeouts) and cap the calls' outputs."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.outputs: set[_Output] = set()

    def watch(self, *outputs: _Output) -> None:
        with self._lock:
            self.outputs.update(outputs)

    def forget(self, *outputs: _Output) -> None:
        with self._lock:
            self.outputs.difference_update(outputs)

    def ensure_started(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="wasinn-epoch", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self._engine.increment_epoch()
            with self._lock:
                outputs = list(self.outputs)
            for output in outputs:
                output.police()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


_NO_DEADLINE = 1 << 62   # epochs: centuries at 100 ticks/s


def _stdin_bytes(wasi: Any, data: bytes) -> bool:
    """Give the guest `data` as stdin without a file (wasmtime's C API, pinned 50.0.1)."""
    try:
        from wasmtime import _ffi as ffi

        setter, vec_new, vec_type = (ffi.wasi_config_set_stdin_bytes, ffi.wasm_byte_vec_new,
                                     ffi.wasm_byte_vec_t)
    except (ImportError, AttributeError):
        return False
    vec = vec_type()
    source = ctypes.cast(ctypes.c_char_p(data), ctypes.POINTER(ctypes.c_ubyte))
    vec_new(ctypes.byref(vec), len(data), source)     # copies; wasmtime then owns the copy
    setter(wasi.ptr(), ctypes.byref(vec))
    return True


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} contains a NUL character: {value!r}")
    return value


def _file_path(folder: Path, name: object) -> Path:
    """Where `files[name]` goes inside the call's folder; refuses anything that leaves it."""
    text = _check_text(name, "a files key")
    parts = PurePosixPath(text).parts
    if (not text or text.startswith("/") or "\\" in text
            or any(part in ("..", ".") for part in parts) or not parts):
        raise ValueError(f"bad files key {text!r}: expected a relative path like 'in/x.jpg' "
                         "(no '..', no leading '/')")
    return folder.joinpath(*parts)


def load_registry(preload: Iterable[str] | ModelRegistry) -> ModelRegistry:
    """A registry from `--nn-preload` specs (HostError with the spec's problem) or as given."""
    if isinstance(preload, ModelRegistry):
        return preload
    if isinstance(preload, str):
        preload = [preload]
    try:
        return ModelRegistry.from_specs(preload)
    except PreloadError as error:
        raise HostError(str(error)) from None


class GuestPool:
    """A guest module opened once; `call()` runs a fresh, isolated instance of it.

    module       a `.wasm`, `.wat` or `.cwasm` (compiled once, through the module cache)
    preload      named models, `NAME:ENCODING:TARGET:PATH[,PATH…]` specs or a `ModelRegistry`;
                 compiled here, before the first call, and shared by every call
    dirs         (guest path, host path) folders preopened in *every* call (shared state, like
                 `wasinn run --dir`); per-call data belongs in `call(files=…)`
    env          environment of every call (a call's `env` is added on top)
    timeout      default wall-clock limit of a call in seconds (None: none); exit code 124
    max_memory   cap on each instance's linear memory in bytes
    max_graphs, max_contexts   per-call caps on live wasi-nn handles (as `wasinn run`)
    max_output   bytes kept of each of a call's stdout and stderr
    files_dir    guest path of a call's private folder
    in_process   run the backends in this process instead of the pool's confined worker
                 (trusted models only, as `wasinn run --in-process`)
    max_host_memory, max_host_cpu   the worker's caps (as `wasinn run`); a call whose backend
                 work outlives its timeout is not cut short inside the worker
    """

    def __init__(self, module: str | os.PathLike[str], *,
                 preload: Iterable[str] | ModelRegistry = (),
                 dirs: Sequence[tuple[str, str]] = (),
                 env: Mapping[str, str] | Sequence[tuple[str, str]] = (),
                 timeout: float | None = None,
                 max_memory: int | None = None,
                 max_graphs: int = DEFAULT_MAX_GRAPHS,
                 max_contexts: int = DEFAULT_MAX_CONTEXTS,
                 max_output: int = DEFAULT_MAX_OUTPUT,
                 files_dir: str = DEFAULT_FILES_DIR,
                 cache: bool = True,
                 verbose: bool = False,
                 in_process: bool = False,
                 max_host_memory: int | None = DEFAULT_MAX_HOST_MEMORY,
                 max_host_cpu: int | None = None) -> None:
        self.module_path = Path(module)
        self.name = self.module_path.name
        self.timeout = self._check_timeout(timeout)
        self.max_memory = max_memory
        for what, value in (("max_memory", max_memory), ("max_graphs", max_graphs),
                            ("max_contexts", max_contexts), ("max_output", max_output)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"bad {what} {value!r}: expected a whole number >= 1")
        self.max_graphs = max_graphs
        self.max_contexts = max_contexts
        self.max_output = max_output
        self.files_dir = _check_text(files_dir, "files_dir")
        self.env = dict(env.items() if isinstance(env, Mapping) else env)
        for key, value in self.env.items():
            self._check_env(key, value)
        for guest, host in dirs:
            if not Path(host).is_dir():
                raise HostError(f"--dir {guest}:{host}: no such directory {host!r}")
        self.dirs = [(str(guest), str(host)) for guest, host in dirs]
        self.registry = load_registry(preload)
        self._tracer = Tracer(verbose)
        self._closed = False
        self._scratch: str | None = None
        self._scratch_lock = threading.Lock()

        start = time.perf_counter_ns()
        self._engine = make_engine(cache)
        self._module = load_module(self._engine, self.module_path, cache=cache)
        self._imports = _PerCallImports(self._tracer)
        self._linker = make_linker(self._engine, self._imports)
        self._ticker = _EpochTicker(self._engine)
        self._tracer.phase(f"load module {self.name}", time.perf_counter_ns() - start)
        # One confined backend worker per pool (as `wasinn run` has one per run): the models
        # are compiled in it once and every call's WasiNn uses them there.
        self._worker = None if in_process else BackendWorker(
            max_memory=max_host_memory, max_cpu_seconds=max_host_cpu, verbose=verbose)
        self._compile_models()
        self._probe()

    # -- set-up ---------------------------------------------------------------------------
    def _compile_models(self) -> None:
        """Compile every named model now, so that no call pays for it (the registry is lazy)."""
        for name in self.registry.names():
            start = time.perf_counter_ns()
            model = self.registry.get(name)
            try:
                if self._worker is not None:
                    self._worker.named_graph(model)
                else:
                    model.graph()
            except NnError as error:
                raise HostError(f"cannot load model {name!r}: {error.message}") from None
            except Exception as error:  # noqa: BLE001 - the backend's own failure, one line
                message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise HostError(f"cannot load model {name!r}: {message}") from None
            self._tracer.phase(f"compile model {name}", time.perf_counter_ns() - start)

    def _probe(self) -> None:
        """Instantiate once without running: bad imports or a too-small memory cap fail here."""
        from wasmtime import Store, WasiConfig

        store = Store(self._engine)
        store.set_wasi(WasiConfig())
        store.set_epoch_deadline(_NO_DEADLINE)
        instantiate(self._linker, store, self._module, self.name, self.max_memory)

    @staticmethod
    def _check_timeout(timeout: float | None) -> float | None:
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not 0 < timeout < math.inf):
            raise ValueError(f"bad timeout {timeout!r}: expected seconds > 0")
        return timeout

    @staticmethod
    def _check_env(key: object, value: object) -> None:
        if not _check_text(key, "an env key") or "=" in key:  # type: ignore[operator]
            raise ValueError(f"bad env key {key!r}")
        _check_text(value, f"env {key}")

    # -- the seam for the backend worker --------------------------------------------------
    def _wasi_nn_for_call(self) -> WasiNn:
        """The wasi-nn state of one call: fresh handle tables over the pool's shared models.

        The only place the pool creates a `WasiNn`: its backend calls go to the pool's confined
        worker (or run in this process with `in_process=True`).
        """
        return WasiNn(self.registry, max_graphs=self.max_graphs, max_contexts=self.max_contexts,
                      worker=self._worker)

    # -- calls ----------------------------------------------------------------------------
    def call(self, args: Sequence[str] = (), *, stdin: bytes | bytearray | memoryview = b"",
             env: Mapping[str, str] | None = None, files: Mapping[str, bytes] | None = None,
             timeout: float | None = _UNSET) -> CallResult:
        """Run one fresh guest: `argv = [module name, *args]`, returns when it has exited.

        stdin    the guest's standard input (bytes)
        env      variables added to the pool's `env` for this call
        files    {relative path: bytes} written to a private folder preopened at `files_dir`
                 (e.g. "/files/x.jpg"), removed after the call; `{}` gives an empty one
        timeout  seconds, overriding the pool's default for this call (None: no limit)

        Raises ValueError/TypeError for bad arguments and RuntimeError after `close()`; a guest
        failure is never an exception — it is the result's exit code.
        """
        from wasmtime import Store, WasiConfig

        if self._closed:
            raise RuntimeError("GuestPool is closed")
        started = time.perf_counter_ns()
        timeout = self.timeout if timeout is _UNSET else self._check_timeout(timeout)
        argv = [self.name, *(_check_text(a, "an argument") for a in args)]
        call_env = dict(self.env)
        for key, value in (env or {}).items():
            self._check_env(key, value)
            call_env[key] = value
        stdin = bytes(stdin) if not isinstance(stdin, bytes) else stdin

        folder = self._write_files(files) if files is not None else None
        stdin_path: str | None = None
        out, err = _Output(self.max_output), _Output(self.max_output)
        try:
            wasi = WasiConfig()
            wasi.argv = argv
            wasi.env = [[k, v] for k, v in call_env.items()]
            wasi.stdout_file = out.path
            wasi.stderr_file = err.path
            if stdin and not _stdin_bytes(wasi, stdin):
                stdin_path = self._write_stdin(stdin)
                wasi.stdin_file = stdin_path
            for guest, host in self.dirs:
                wasi.preopen_dir(host, guest)
            if folder is not None:
                wasi.preopen_dir(folder, self.files_dir)

            store = Store(self._engine)
            store.set_wasi(wasi)
            self._ticker.ensure_started()
            self._ticker.watch(out, err)
            if timeout is None:
                store.set_epoch_deadline(_NO_DEADLINE)
            else:
                store.set_epoch_deadline(math.ceil(timeout / TICK_SECONDS) + 1)
            nn = self._wasi_nn_for_call()
            self._imports.nn = nn
            t_setup = time.perf_counter_ns()
            try:
                instance, entry = instantiate(self._linker, store, self._module, self.name,
                                              self.max_memory)
                t_instance = time.perf_counter_ns()
                ended = call_start(store, entry, self.name, timeout=timeout)
                t_run = time.perf_counter_ns()
            finally:
                del self._imports.nn
                nn.close()
                self._ticker.forget(out, err)
            stdout, stderr = out.value(), err.value()
            if ended.message:
                separator = b"\n" if stderr and not stderr.endswith(b"\n") else b""
                stderr += separator + ended.message.encode() + b"\n"
        finally:
            out.close()
            err.close()
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            if stdin_path is not None:
                os.unlink(stdin_path)
        ms = 1e-6
        timings = CallTimings(setup_ms=(t_setup - started) * ms,
                              instantiate_ms=(t_instance - t_setup) * ms,
                              run_ms=(t_run - t_instance) * ms,
                              total_ms=(time.perf_counter_ns() - started) * ms)
        self._tracer.phase(f"call (exit {ended.code})", t_run - started)
        return CallResult(exit_code=ended.code, stdout=stdout, stderr=stderr,
                          timings=timings, timed_out=ended.code == 124 and ended.message is not None,
                          trapped=ended.code == 134 and ended.message is not None,
                          error=ended.message, output_truncated=out.truncated or err.truncated)

    def _scratch_root(self) -> str:
        with self._scratch_lock:
            if self._scratch is None:
                self._scratch = tempfile.mkdtemp(prefix="wasinn-pool-")
            return self._scratch

    def _write_files(self, files: Mapping[str, bytes]) -> str:
        folder = Path(tempfile.mkdtemp(prefix="call-", dir=self._scratch_root()))
        try:
            for name, data in files.items():
                path = _file_path(folder, name)
                if not isinstance(data, (bytes, bytearray, memoryview)):
                    raise TypeError(f"files[{name!r}] must be bytes, not {type(data).__name__}")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return str(folder)

    def _write_stdin(self, data: bytes) -> str:
        """Fallback when wasmtime cannot take stdin bytes: a private temporary file."""
        handle, path = tempfile.mkstemp(prefix="stdin-", dir=self._scratch_root())
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        return path

    # -- life cycle -----------------------------------------------------------------------
    def close(self) -> None:
        """Stop the ticker and remove the pool's scratch folder; call it after the last call."""
        self._closed = True
        self._ticker.stop()
        if self._worker is not None:
            self._worker.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> "GuestPool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        models = ", ".join(self.registry.names()) or "no models"
        return f"<GuestPool {self.name} ({models})>"

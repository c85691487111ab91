"""Running a wasm guest: engine, WASI preview 1, `wasi_ephemeral_nn`, limits, exit codes.

The backends run in a confined worker process (`wasinn.worker`) unless `in_process` is set.
`timeout` is a hard wall-clock limit from the start of `run` (module load, the start function,
wasm code, backend calls, blocking WASI calls): at the deadline the epoch traps the guest and
the worker is killed; with `hard_deadline` (the CLI) a guest stuck in a blocking WASI call
(a poll_oneoff sleep, a stdin read) ends the process with 124 a moment later. Ctrl-C likewise.

Exit codes a script can rely on (documented in docs/host.md):
  the guest's own code (proc_exit / return from _start = 0), 124 on --timeout (like
  `timeout(1)`), 134 when the guest traps (like an abort), 130 on Ctrl-C, 2 when wasinn
  itself cannot start the guest (missing or malformed module, bad option, unknown import, memory cap too small).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

from . import hints, shared_code
from .abi import EphemeralNn
from .errors import EXIT_USAGE, HostError  # noqa: F401  (re-exported for older callers)
from .guest_channel import GUEST_PATH, GuestChannel
from .module_cache import load_cached, write_file_atomically
from .nn import ModelRegistry, WasiNn
from .trace import Tracer
from .worker import DEFAULT_MAX_HOST_MEMORY, BackendWorker

EXIT_TIMEOUT = 124
EXIT_TRAP = 134
EXIT_INTERRUPTED = 130
#: how long a guest may take to stop after its deadline or Ctrl-C before the process exits
#: (hard_deadline): enough for a trap to unwind, short next to any timeout a user sets
DEADLINE_GRACE = 0.5
ELF_MAGIC = b"\x7fELF"
WASM_MAGIC = b"\0asm"


class RunOptions:
    """What to run and how (`wasinn run`'s options). A plain class, as the other records on
    `wasinn run`'s path: importing dataclasses (and inspect) costs ~5 ms and 1 MB of every run.

    module, args, dirs ((guest path, host path) pairs), env ((key, value) pairs), registry
    (named models; default: none), max_memory, timeout, max_graphs, max_contexts, verbose, cache;
    in_process: run the backends inside this process (trusted models, debugging) instead of the
    worker; max_host_memory: the worker's address-space cap in bytes (None: no cap);
    max_host_cpu: the worker's CPU-time cap in seconds (None: none); worker: a worker to use (and
    leave running), e.g. one shared by a pool, None: own one per run; hard_deadline: end the
    whole process (exit 124/130) when the guest cannot be stopped in time at the deadline or on
    Ctrl-C (for the CLI, not for a library that runs many guests); start_worker_early: fork the
    backend worker before anything else, so it is ready when the guest loads a model
    (BackendWorker.start_early; for the CLI, whose process has no other thread yet).
    """

    def __init__(self, module: Path, args: Sequence[str] = (),
                 dirs: Sequence[tuple[str, str]] = (), env: Sequence[tuple[str, str]] = (),
                 registry: ModelRegistry | None = None, max_memory: int | None = None,
                 timeout: float | None = None, max_graphs: int = 64, max_contexts: int = 256,
                 verbose: bool = False, cache: bool = True, in_process: bool = False,
                 max_host_memory: int | None = DEFAULT_MAX_HOST_MEMORY,
                 max_host_cpu: int | None = None, worker: BackendWorker | None = None,
                 hard_deadline: bool = False, start_worker_early: bool = False) -> None:
        self.module = module
        self.args = args
        self.dirs = dirs
        self.env = env
        self.registry = ModelRegistry() if registry is None else registry
        self.max_memory = max_memory
        self.timeout = timeout
        self.max_graphs = max_graphs
        self.max_contexts = max_contexts
        self.verbose = verbose
        self.cache = cache
        self.in_process = in_process
        self.max_host_memory = max_host_memory
        self.max_host_cpu = max_host_cpu
        self.worker = worker
        self.hard_deadline = hard_deadline
        self.start_worker_early = start_worker_early


def make_engine(cache: bool = True):  # -> wasmtime.Engine
    """The one engine configuration used by `run` and `compile` (a .cwasm must match it).

    Epoch interruption is always on (so --timeout never changes the compiled code or the
    cache key), and memory never moves: backends may keep a zero-copy view of an input tensor
    from set_input until compute, across a memory.grow.
    """
    from wasmtime import Config, Engine

    config = Config()
    config.epoch_interruption = True
    config.memory_may_move = False
    if cache:
        try:
            config.cache = True
        except Exception as error:  # noqa: BLE001 - a broken cache setup must not stop a run
            print(f"wasinn: warning: compile cache disabled: {error}", file=sys.stderr)
    return Engine(config)


def load_module(engine, path: Path, cache: bool = False):  # -> wasmtime.Module
    """A module from .wasm / .wat, or a precompiled .cwasm (recognised by its ELF header).

    With `cache`, a .wasm is served from the file-identity cache (`module_cache`).
    """
    from wasmtime import Module, WasmtimeError

    if path.is_dir():
        raise HostError(hints.folder_as_module(path))
    try:
        # non-blocking open + fstat: a FIFO, socket or device is refused, never waited on
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise HostError(f"module {str(path)!r} is not a regular file")
            head = handle.read(4)
    except OSError as error:
        raise HostError(f"cannot read module {str(path)!r}: {error.strerror or error}") from None
    if head not in (ELF_MAGIC, WASM_MAGIC) and path.suffix != ".wat":
        raise HostError(f"{str(path)!r} is not a WebAssembly module (no \\0asm header; "
                        "expected .wasm, .wat or a .cwasm from `wasinn compile`)")
    try:
        if head == ELF_MAGIC:
            return Module.deserialize_file(engine, str(path))
        if cache and head == WASM_MAGIC:
            return load_cached(engine, path, lambda engine, data: _compile_announced(
                engine, path, data, cached=True))
        return _compile_announced(engine, path, None, cached=False)
    except OSError as error:     # the file vanished or changed kind since it was opened
        raise HostError(f"cannot read module {str(path)!r}: {error.strerror or error}") from None
    except WasmtimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "invalid module"
        kind = "precompiled module" if head == ELF_MAGIC else "module"
        raise HostError(f"cannot load {kind} {str(path)!r}: {first}") from None


def _compile_announced(engine, path: Path, data: bytes | None, cached: bool):  # -> wasmtime.Module
    """Compile a module (its bytes, or its file when `data` is None), first saying so on
    stderr when it will take > 1 s."""
    from wasmtime import Module

    if path.suffix != ".wat":
        shared_code.announce_compile(path, cached)
    return Module.from_file(engine, str(path)) if data is None else Module(engine, data)


def make_linker(engine, imports: EphemeralNn):  # -> wasmtime.Linker
    """WASI preview 1 plus `wasi_ephemeral_nn` served by `imports` (one linker, many stores)."""
    from wasmtime import Linker

    linker = Linker(engine)
    linker.define_wasi()
    imports.define(linker)
    return linker


def instantiate(linker, store, module, name: str, max_memory: int | None = None,
                shared: "shared_code.Prepared | None" = None):
    """Instantiate `module` in `store`, with the memory cap set; HostError when it cannot start.

    `shared`: `module` is the shared runtime code of a wasinn-built guest, whose data segments
    and globals are applied here (shared_code). Also returns the `_start` export: a module
    without a `_start` function taking no parameters is not a WASI command.
    """
    from wasmtime import Trap, WasmtimeError

    if max_memory is not None:
        store.set_limits(memory_size=max_memory)
    try:
        instance = linker.instantiate(store, module)   # runs the module's start function
        if shared is not None:
            shared_code.initialise(store, instance, shared.init, shared.data, shared.image)
    except (WasmtimeError, Trap, shared_code.InitialiseError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else "failed"
        if max_memory is not None and "memory" in str(error).lower():
            message += f" (--max-memory {max_memory} bytes may be too small)"
        raise HostError(f"cannot instantiate {name}: {message}") from None
    entry = instance.exports(store).get("_start")
    if entry is None:
        raise HostError(f"{name} has no _start export: not a WASI command module")
    _check_start(entry, store, name)
    return instance, entry


class GuestExit:
    """How a guest's `_start` ended: the exit code, and a line for stderr unless it exited itself."""

    __slots__ = ("code", "message")

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"GuestExit(code={self.code!r}, message={self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GuestExit) and (self.code, self.message) == (other.code,
                                                                              other.message)

    __hash__ = None  # type: ignore[assignment]


def call_start(store, entry, name: str, *, timeout: float | None = None,
               timed_out: Callable[[], bool] = lambda: False,
               interrupted: Callable[[], bool] = lambda: False) -> GuestExit:
    """Run `_start` to completion and map how it ended to an exit code (module docstring)."""
    from wasmtime import ExitTrap, Trap, TrapCode, WasmtimeError

    try:
        entry(store)
        return GuestExit(0)
    except ExitTrap as exit_trap:
        return GuestExit(exit_trap.code)
    except (Trap, WasmtimeError) as error:
        if interrupted():
            return GuestExit(EXIT_INTERRUPTED, f"wasinn: {name} interrupted")
        if timed_out() or (isinstance(error, Trap) and error.trap_code == TrapCode.INTERRUPT):
            after = f" after {timeout:g} s" if timeout is not None else ""
            return GuestExit(EXIT_TIMEOUT, f"wasinn: {name} timed out{after}")
        return GuestExit(EXIT_TRAP, f"wasinn: {name} trapped: {error}")


def run(options: RunOptions) -> int:
    """Run a WASI command module to completion; returns the process exit code."""
    tracer = Tracer(options.verbose)
    worker = options.worker
    own_worker = worker is None and not options.in_process
    if own_worker:
        worker = BackendWorker(max_memory=options.max_host_memory,
                               max_cpu_seconds=options.max_host_cpu, verbose=options.verbose)
        if options.start_worker_early and _may_load_models(options):
            worker.start_early()
    engine = make_engine(options.cache)
    deadline = _Deadline(options, engine, worker)
    deadline.start()
    try:
        with _interrupt_stops_guest(engine, deadline.interrupted, deadline.on_interrupt):
            return _run(options, engine, worker, tracer, deadline)
    finally:
        deadline.stop()
        if own_worker:
            worker.close()


def _may_load_models(options: RunOptions) -> bool:
    """Whether the guest is likely to load a model: it can reach one (a named model, or a
    preopened folder — models passed on stdin or in arguments are rare) and the module imports
    `wasi_ephemeral_nn`, judged from its first 256 KB (where a core module's import section
    sits). Only a guess for starting the backend worker early: a wrong one costs a fork (~2 ms,
    a hello guest's start-up would feel it), or a spawn at the first load, never a result."""
    if not (options.dirs or options.registry.names()):
        return False
    return _imports_wasi_nn(options.module)


def _imports_wasi_nn(module: Path) -> bool:
    """`_may_load_models`' look at the module file."""
    import stat

    try:
        # O_NONBLOCK and a regular-file check: a FIFO named as the module must not block here
        # (the run refuses it right after, with its own message)
        fd = os.open(module, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.read(fd, 256 << 10)
    except OSError:
        return False
    finally:
        os.close(fd)
    return b"wasi_ephemeral_nn" in head or head.startswith(ELF_MAGIC)   # .cwasm: assume so


class _Deadline:
    """The --timeout timer and the Ctrl-C reaction: trap the guest (epoch), kill the worker,
    and, with hard_deadline, end the process if the guest is stuck where no trap reaches."""

    def __init__(self, options: RunOptions, engine, worker: BackendWorker | None) -> None:
        self.options = options
        self.engine = engine
        self.worker = worker
        self.timed_out = threading.Event()
        self.interrupted = threading.Event()
        self.finished = threading.Event()
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if self.options.timeout is not None:
            self._timer = threading.Timer(self.options.timeout, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def stop(self) -> None:
        self.finished.set()
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        self.timed_out.set()
        self._stop_everything("the --timeout deadline",
                              f"timed out after {self.options.timeout:g} s", EXIT_TIMEOUT)

    def on_interrupt(self) -> None:
        self._stop_everything("Ctrl-C", "interrupted", EXIT_INTERRUPTED)

    def _stop_everything(self, why: str, message: str, code: int) -> None:
        self.engine.increment_epoch()
        if self.worker is not None:
            self.worker.kill(why)
        if self.options.hard_deadline and not self.finished.wait(DEADLINE_GRACE):
            # the guest sits in a blocking WASI call (poll_oneoff, a stdin read) that no trap
            # interrupts: nothing else can stop it in time
            try:
                sys.stdout.flush()
                print(f"wasinn: {self.options.module.name} {message}", file=sys.stderr)
                sys.stderr.flush()
            finally:
                os._exit(code)


def _run(options: RunOptions, engine, worker: BackendWorker | None, tracer: Tracer,
         deadline: _Deadline) -> int:
    start = time.perf_counter_ns()
    # A wasinn-built guest shares the compiled runtime code of every guest (shared_code).
    shared = shared_code.prepare(engine, options.module, options.verbose) if options.cache else None
    module = shared.module if shared else load_module(engine, options.module, cache=options.cache)
    tracer.phase(f"load module {options.module.name}", time.perf_counter_ns() - start)

    nn = WasiNn(options.registry, max_graphs=options.max_graphs, max_contexts=options.max_contexts,
                worker=worker)
    # The reasons for failed calls: on stderr (the --verbose trace has them already) and at
    # /.wasinn for the SDK's WasiNnError.detail.
    channel = GuestChannel([guest for guest, _ in options.dirs], echo=not options.verbose)
    linker = make_linker(engine, EphemeralNn(nn, tracer, on_error=channel.failed))
    try:
        return _run_with(options, engine, module, shared, linker, nn, tracer, channel, deadline)
    finally:
        channel.close()


def _run_with(options: RunOptions, engine, module, shared, linker, nn, tracer,
              channel: GuestChannel, deadline: _Deadline) -> int:
    from wasmtime import Store, WasiConfig

    wasi = WasiConfig()
    wasi.argv = [options.module.name, *options.args]
    wasi.env = [list(pair) for pair in options.env]
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for guest, host in options.dirs:
        if not Path(host).is_dir():
            raise HostError(hints.missing_dir(guest, host))
        wasi.preopen_dir(host, guest)
    if shared is not None or _has_bundle_locator(options.module):
        # Only guests from `wasinn build` (whose SDK reads it) get the channel folder: a
        # hand-written module may count on fd 3 being its first --dir.
        wasi.preopen_dir(str(channel.folder), GUEST_PATH, fs_mutable=False)

    store = Store(engine)
    store.set_wasi(wasi)
    store.set_epoch_deadline(1)

    timed_out, interrupted = deadline.timed_out, deadline.interrupted
    if timed_out.is_set() or interrupted.is_set():   # the deadline passed while loading
        return _stopped(options, timed_out, interrupted)
    start = time.perf_counter_ns()
    try:
        instance, entry = instantiate(linker, store, module, options.module.name,
                                      options.max_memory, shared)
    except HostError:
        if timed_out.is_set() or interrupted.is_set():
            return _stopped(options, timed_out, interrupted)
        raise
    tracer.phase("instantiate", time.perf_counter_ns() - start)

    sys.stdout.flush()
    sys.stderr.flush()
    start = time.perf_counter_ns()
    try:
        ended = call_start(store, entry, options.module.name, timeout=options.timeout,
                           timed_out=timed_out.is_set, interrupted=interrupted.is_set)
    finally:
        nn.close()
    if ended.message:
        print(ended.message, file=sys.stderr)
    code = ended.code
    if code not in (EXIT_TIMEOUT, EXIT_INTERRUPTED) and (timed_out.is_set() or interrupted.is_set()):
        # the guest saw its wasi-nn call fail at the deadline and exited by itself
        code = _stopped(options, timed_out, interrupted)
    tracer.phase(f"run (exit {code})", time.perf_counter_ns() - start)
    return code


def _check_start(entry, store, name: str) -> None:
    """HostError unless `_start` is a function without parameters (WASI's command entry
    point; results, which WASI does not define, are ignored as wasmtime does); anything else
    (a global, a memory, `(param i32)`) cannot be started."""
    from wasmtime import Func

    if not isinstance(entry, Func):
        raise HostError(f"{name} exports _start as a {type(entry).__name__.lower()}, not a "
                        "function: not a WASI command module")
    kind = entry.type(store)
    if kind.params:
        raise HostError(f"{name} exports _start with parameters {kind.params}; "
                        "a WASI command's _start takes none")


def _stopped(options: RunOptions, timed_out: threading.Event, interrupted: threading.Event) -> int:
    """Report a guest stopped at the deadline or by Ctrl-C; its exit code."""
    if interrupted.is_set():
        print(f"wasinn: {options.module.name} interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    limit = f" after {options.timeout:g} s" if options.timeout is not None else ""
    print(f"wasinn: {options.module.name} timed out{limit}", file=sys.stderr)
    return EXIT_TIMEOUT


def _has_bundle_locator(path: Path) -> bool:
    """Whether the module carries wasinn's bundle locator (the --no-cache path's check)."""
    from .locator_scan import has_bundle_locator

    return has_bundle_locator(path)   # .cwasm files keep the data segments


@contextlib.contextmanager
def _interrupt_stops_guest(engine, interrupted: threading.Event,
                           on_interrupt=None) -> Iterator[None]:
    """Make Ctrl-C (SIGINT) stop a guest even while it runs wasm code.

    Python runs signal handlers only between bytecodes, never while the main thread is inside
    wasm, so a guest in a loop would ignore Ctrl-C. CPython's C-level handler still writes
    the signal number to the wakeup fd; a watcher thread reading it bumps the engine's epoch,
    which traps the guest at its next loop edge or call.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    import signal  # here, not at the top: `wasinn` start-up imports only what a run needs

    # a pipe, not a socket pair: no socket module (~3 ms) on the way to a hello guest's line
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    previous_handler = signal.getsignal(signal.SIGINT)
    previous_fd = -1
    try:
        previous_fd = signal.set_wakeup_fd(writer, warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, lambda signum, frame: None)   # the watcher does the work
    except (ValueError, OSError):
        os.close(reader)
        os.close(writer)
        yield
        return

    def watch() -> None:
        """Until the write end closes (end of the run); the read end is this thread's."""
        try:
            while True:
                data = os.read(reader, 64)
                if not data:
                    return
                if signal.SIGINT in data:
                    interrupted.set()
                    engine.increment_epoch()
                    if on_interrupt is not None:
                        on_interrupt()
        except OSError:
            return
        finally:
            os.close(reader)

    watcher = threading.Thread(target=watch, name="wasinn-sigint", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous_handler)
        os.close(writer)            # the watcher reads the end of the pipe and returns


def compile_module(source: Path, target: Path, cache: bool = True) -> None:
    """Ahead-of-time compile (like wasmedgec): `wasinn run` accepts the .cwasm directly."""
    engine = make_engine(cache)
    module = load_module(engine, source)
    target = Path(os.path.realpath(target))      # through a symlink: replace what it points at
    if target.exists() and not target.is_file():
        raise HostError(f"cannot write {str(target)!r}: it exists and is not a regular file")
    try:
        # temp file + rename: a `wasinn run` of the old .cwasm keeps its mapping (no SIGBUS)
        write_file_atomically(target, module.serialize())
    except OSError as error:
        raise HostError(f"cannot write {str(target)!r}: {error.strerror or error}") from None

"""Running a wasm guest: engine, WASI preview 1, `wasi_ephemeral_nn`, limits, exit codes.

Exit codes a script can rely on (documented in docs/host.md):
  the guest's own code (proc_exit / return from _start = 0), 124 on --timeout (like
  `timeout(1)`), 134 when the guest traps (like an abort), 130 on Ctrl-C, 2 when wasinn
  itself cannot start the guest (missing or malformed module, bad option, unknown import, memory cap too small).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .abi import EphemeralNn
from .module_cache import load_cached
from .nn import ModelRegistry, WasiNn
from .trace import Tracer

from .errors import EXIT_USAGE, HostError  # noqa: F401  (re-exported for older callers)

EXIT_TIMEOUT = 124
EXIT_TRAP = 134
EXIT_INTERRUPTED = 130
ELF_MAGIC = b"\x7fELF"
WASM_MAGIC = b"\0asm"


@dataclass
class RunOptions:
    module: Path
    args: Sequence[str] = ()
    dirs: Sequence[tuple[str, str]] = ()          # (guest path, host path)
    env: Sequence[tuple[str, str]] = ()
    registry: ModelRegistry = field(default_factory=ModelRegistry)
    max_memory: int | None = None
    timeout: float | None = None
    max_graphs: int = 64
    max_contexts: int = 256
    verbose: bool = False
    cache: bool = True


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

    try:
        with open(path, "rb") as handle:
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
            return load_cached(engine, path, lambda engine, path: Module.from_file(engine, str(path)))
        return Module.from_file(engine, str(path))
    except WasmtimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "invalid module"
        kind = "precompiled module" if head == ELF_MAGIC else "module"
        raise HostError(f"cannot load {kind} {str(path)!r}: {first}") from None


def run(options: RunOptions) -> int:
    """Run a WASI command module to completion; returns the process exit code."""
    from wasmtime import ExitTrap, Linker, Store, Trap, TrapCode, WasiConfig, WasmtimeError

    tracer = Tracer(options.verbose)
    engine = make_engine(options.cache)

    start = time.perf_counter_ns()
    module = load_module(engine, options.module, cache=options.cache)
    tracer.phase(f"load module {options.module.name}", time.perf_counter_ns() - start)

    linker = Linker(engine)
    linker.define_wasi()
    nn = WasiNn(options.registry, max_graphs=options.max_graphs, max_contexts=options.max_contexts)
    EphemeralNn(nn, tracer).define(linker)

    wasi = WasiConfig()
    wasi.argv = [options.module.name, *options.args]
    wasi.env = [list(pair) for pair in options.env]
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    for guest, host in options.dirs:
        if not Path(host).is_dir():
            raise HostError(f"--dir {guest}:{host}: no such directory {host!r}")
        wasi.preopen_dir(host, guest)

    store = Store(engine)
    store.set_wasi(wasi)
    if options.max_memory is not None:
        store.set_limits(memory_size=options.max_memory)
    store.set_epoch_deadline(1)

    start = time.perf_counter_ns()
    try:
        instance = linker.instantiate(store, module)
    except (WasmtimeError, Trap) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else "failed"
        if options.max_memory is not None and "memory" in str(error).lower():
            message += f" (--max-memory {options.max_memory} bytes may be too small)"
        raise HostError(f"cannot instantiate {options.module.name}: {message}") from None
    tracer.phase("instantiate", time.perf_counter_ns() - start)

    entry = instance.exports(store).get("_start")
    if entry is None:
        raise HostError(f"{options.module.name} has no _start export: not a WASI command module")

    timer: threading.Timer | None = None
    timed_out = threading.Event()
    if options.timeout is not None:
        def expire() -> None:
            timed_out.set()
            engine.increment_epoch()
        timer = threading.Timer(options.timeout, expire)
        timer.daemon = True
        timer.start()

    sys.stdout.flush()
    sys.stderr.flush()
    interrupted = threading.Event()
    start = time.perf_counter_ns()
    try:
        with _interrupt_stops_guest(engine, interrupted):
            entry(store)
        code = 0
    except ExitTrap as exit_trap:
        code = exit_trap.code
    except (Trap, WasmtimeError) as error:
        if interrupted.is_set():
            print(f"wasinn: {options.module.name} interrupted", file=sys.stderr)
            code = EXIT_INTERRUPTED
        elif timed_out.is_set() or (isinstance(error, Trap)
                                    and error.trap_code == TrapCode.INTERRUPT):
            print(f"wasinn: {options.module.name} timed out after {options.timeout:g} s",
                  file=sys.stderr)
            code = EXIT_TIMEOUT
        else:
            print(f"wasinn: {options.module.name} trapped: {error}", file=sys.stderr)
            code = EXIT_TRAP
    finally:
        if timer is not None:
            timer.cancel()
        nn.close()
    tracer.phase(f"run (exit {code})", time.perf_counter_ns() - start)
    return code


@contextlib.contextmanager
def _interrupt_stops_guest(engine, interrupted: threading.Event) -> Iterator[None]:
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
    import socket

    reader, writer = socket.socketpair()
    reader.setblocking(True)
    writer.setblocking(False)
    previous_handler = signal.getsignal(signal.SIGINT)
    previous_fd = -1
    try:
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGINT, lambda signum, frame: None)   # the watcher does the work
    except (ValueError, OSError):
        reader.close()
        writer.close()
        yield
        return

    def watch() -> None:
        try:
            while True:
                data = reader.recv(64)
                if not data:
                    return
                if signal.SIGINT in data:
                    interrupted.set()
                    engine.increment_epoch()
        except OSError:
            return

    watcher = threading.Thread(target=watch, name="wasinn-sigint", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGINT, previous_handler)
        writer.close()
        reader.close()


def compile_module(source: Path, target: Path, cache: bool = True) -> None:
    """Ahead-of-time compile (like wasmedgec): `wasinn run` accepts the .cwasm directly."""
    engine = make_engine(cache)
    module = load_module(engine, source)
    try:
        target.write_bytes(module.serialize())
    except OSError as error:
        raise HostError(f"cannot write {str(target)!r}: {error.strerror or error}") from None

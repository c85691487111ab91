"""Ending the `wasinn` process without the interpreter's teardown, once a run is over.

After a guest has run, what remains of normal interpreter shutdown is mostly freeing memory the
kernel frees anyway: garbage-collecting every module and running the destructors of wasmtime's
engine, store and module and of ~1000 ctypes function objects — ~10 ms of a `wasinn run
hello.wasm`. So the command line ends a run the way a shutdown would, minus that part: it runs
the `atexit` handlers (logging's flush, a library's clean-up), flushes stdout and stderr, and
calls `os._exit`. When another non-daemon thread is still running (a normal shutdown would wait
for it) or a flush fails (a normal shutdown reports it and exits 120), it leaves the ordinary
exit to the caller. Library callers of `wasinn.cli.main(argv)` (tests) never get this: only the
program's own entry point, where `argv` is None.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def _other_threads_running() -> bool:
    main = threading.main_thread()
    return any(thread is not main and not thread.daemon and thread.is_alive()
               for thread in threading.enumerate())


def _flushed() -> bool:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            return False
    return True


def exit_now(code: object) -> None:
    """End the process with `code` after the atexit handlers and a flush of stdout and
    stderr; return (for an ordinary exit) when that would not be the same as a shutdown."""
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if not isinstance(code, int) or run_exit_handlers is None or _other_threads_running() \
            or not _flushed():
        return
    run_exit_handlers()
    if _flushed():
        os._exit(code & 0xFF)        # what the C exit() makes of any int, as sys.exit does
    # a handler broke stdout or stderr: the normal exit reports it

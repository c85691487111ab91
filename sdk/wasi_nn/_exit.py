"""`exit_now`: end a guest without tearing the interpreter down (a guest per request)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def exit_now(code: int = 0) -> "NoReturn":
    """Exit with `code` at once: atexit callbacks run and stdout/stderr are flushed, but inside
    wasm the interpreter is not finalised.

    CPython's normal exit tears every module down and frees every object, ~3 ms inside wasm
    for a classifier guest, which a host that throws the instance away right after (a
    `GuestPool` call, `wasinn serve`, `wasinn map`) gains nothing from. What is skipped is what
    finalisation does beyond that: objects' `__del__` methods and the flush of files still open
    — close (or `with`) every file you write before calling this. A failed flush of stdout or
    stderr gives exit status 120, as CPython's exit does.

    Natively (`wasinn run --native`, plain CPython) this is `sys.exit(code)`: there the guest
    runs inside the host's process, which must stay in control, and no teardown is per request.
    """
    import sys

    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
        raise ValueError(f"exit code must be an int in 0..255, not {code!r}")
    if sys.platform != "wasi":
        sys.exit(code)
    import atexit
    import os

    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # noqa: BLE001 - as CPython: a lost flush is status 120
                code = code or 120
        os._exit(code)

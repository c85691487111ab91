"""One BLAS thread for the numpy that wasinn itself uses.

wasinn's own numpy (the host core in wasm mode, the backend worker) makes views of memory and
copies bytes; it never multiplies matrices. Yet importing numpy starts OpenBLAS's thread
pool, a thread for each further CPU, and each new thread busy-waits for work for a while
(~60 ms measured here). A `wasinn run` imports numpy twice, in the host and in the worker,
so on a 2-CPU machine those threads took CPU from the guest just as it started: the birds
example ran end to end in 274 ms with one BLAS thread against 329 ms without.

Only processes that are wasinn's own call this: the CLI in wasm mode and the worker. Native
mode runs the user's program, and a library user's process keeps its own settings.
"""

from __future__ import annotations

import os

#: OpenBLAS reads it when it starts, i.e. when numpy is first imported
VARIABLE = "OPENBLAS_NUM_THREADS"


def use_one_blas_thread() -> None:
    """Ask for a single BLAS thread, unless the user chose a number; works only before the
    process imports numpy (later it changes nothing, harmlessly). Inherited by the worker."""
    os.environ.setdefault(VARIABLE, "1")

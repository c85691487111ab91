"""The confined backend worker (ARCHITECTURE §4.1): in wasm mode the backends run in a
separate process with no file system, no network, no exec and its own memory cap, fed
through shared memory, so a hostile model can crash, hang or misbehave only there.

- `sandbox`: the confinement the worker applies to itself (namespaces, Landlock, seccomp, rlimits);
- `transport`: JSON messages + fds on a socket pair, bytes in sealed memfd segments;
- `server`: the loop inside the worker that calls the ordinary backends;
- `client`: `BackendWorker` and the proxies that make it look like a backend to `WasiNn`.
"""

from typing import TYPE_CHECKING

from .limits import DEFAULT_MAX_HOST_MEMORY

if TYPE_CHECKING:
    from .client import BackendWorker


def __getattr__(name: str):
    """`BackendWorker` on first use: `wasinn --help` and `wasinn build` need only the limits."""
    if name == "BackendWorker":
        from .client import BackendWorker
        return BackendWorker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BackendWorker", "DEFAULT_MAX_HOST_MEMORY"]

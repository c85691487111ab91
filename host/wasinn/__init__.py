"""wasinn: the reference host, CLI and native mode.

`wasinn.GuestPool` (the embedding API, `wasinn.pool`) is imported on first use, so that
`import wasinn` stays as cheap as before.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pool import CallResult, CallTimings, GuestPool

__all__ = ["GuestPool", "CallResult", "CallTimings"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import pool

        return getattr(pool, name)
    raise AttributeError(f"module 'wasinn' has no attribute {name!r}")

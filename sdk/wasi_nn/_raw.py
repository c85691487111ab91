"""Selects the raw ABI layer the SDK sits on.

Inside a wasinn-built guest the runtime has the built-in C module `_wasi_nn`: a thin wrapper
over the `wasi_ephemeral_nn` imports that passes the caller's buffers to the host without copies.
Under plain CPython ("native mode") `wasinn.native.raw` offers exactly the same API
(docs/contracts.md) and calls the host's backends in-process, so a guest file runs unchanged
with `python main.py`. If neither is present the SDK still imports (the image and result
helpers work) and the first ABI call raises an `ImportError` that says what to install.
"""

from __future__ import annotations

_HOW_TO_FIX = ("wasi_nn has no raw layer: run inside a wasinn-built guest (module _wasi_nn), "
               "or install the wasinn host package for native mode (wasinn.native.raw)")


class _MissingRaw:
    """Stands in for the raw module when there is none; fails on first use, not at import."""

    Error = type("Error", (Exception,), {})

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def __getattr__(self, attribute: str):
        raise ImportError(f"{_HOW_TO_FIX} ({self._reason})")


def _select():
    try:
        import _wasi_nn as module  # built into the wasm runtime
        return module, "_wasi_nn"
    except ImportError:
        pass
    try:
        from wasinn.native import raw as module  # native mode: host backends in-process
        return module, "wasinn.native.raw"
    except ModuleNotFoundError as error:
        # Only "it is not installed" means native mode is unavailable; a broken host module
        # (an ImportError from inside it) must surface, not be mistaken for absence.
        if error.name not in ("wasinn", "wasinn.native", "wasinn.native.raw"):
            raise
        return _MissingRaw(str(error)), "missing"
    except ImportError as error:
        if "cannot import name 'raw'" not in str(error):
            raise
        return _MissingRaw(str(error)), "missing"


raw, RAW_NAME = _select()
Error: type[BaseException] = raw.Error
"""The raw layer's exception class: args = (errno, function[, needed])."""

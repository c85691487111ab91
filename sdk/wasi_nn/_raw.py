"""Selects the raw ABI layer the SDK sits on.

Inside a wasinn-built guest the runtime has the built-in C module `_wasi_nn`: a thin wrapper
over the `wasi_ephemeral_nn` imports that passes the caller's buffers to the host without copies.
Inside a component (`wasinn build --component`) `wasi_nn._component_raw` offers the same API
over componentize-py's bindings for WIT `wasi:nn`.
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


def _component():
    """The component raw layer when running in a `wasinn build --component` build, else None.

    Only such a build has componentize-py's runtime together with bindings for wasi:nn.
    """
    try:
        import componentize_py_runtime  # noqa: F401  (exists only inside componentize-py)
        import wit_world.imports.graph  # noqa: F401
        from . import _component_raw
    except ModuleNotFoundError as error:
        # Absent probes mean "not a component"; anything else broken must surface.
        if error.name not in ("componentize_py_runtime", "wit_world", "wit_world.imports",
                              "wit_world.imports.graph"):
            raise
        return None
    return _component_raw


def _select():
    try:
        import _wasi_nn as module  # built into the wasm runtime
        return module, "_wasi_nn"
    except ImportError:
        pass
    module = _component()
    if module is not None:
        return module, "component"
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

"""`WasiNnError`: a failed `wasi_ephemeral_nn` call, carrying its errno.

Every ABI function returns an errno; the raw layer (`_wasi_nn` in wasm, `wasinn.native.raw`
natively) raises its own `Error(errno, function[, needed])` for non-zero values. The SDK turns
those into `WasiNnError`, which names the errno (``compute failed: runtime_error (5)``) so a
guest's user sees what went wrong without looking up numbers.
"""

from __future__ import annotations

from ._enums import Errno


class WasiNnError(Exception):
    """A `wasi_ephemeral_nn` call returned a non-zero errno.

    Attributes:
        errno: the `Errno` (or the plain int, for a code this SDK does not know).
        name: the errno's ABI name in lower case, e.g. ``"runtime_error"``.
        function: the ABI function that failed, e.g. ``"compute"``.
        needed: for ``too_large`` from ``get_output``, the byte size the output needs (else None).
        detail: the host's explanation when the raw layer has one (native mode), else None.
    """

    def __init__(self, errno: int, function: str = "wasi_nn", needed: int | None = None,
                 detail: str | None = None) -> None:
        try:
            code: Errno | int = Errno(errno)
            name = code.name.lower()
        except ValueError:
            code, name = int(errno), "unknown_errno"
        self.errno = code
        self.name = name
        self.function = function
        self.needed = needed
        message = f"{function} failed: {name} ({int(errno)})"
        if detail:
            message += f": {detail}"
        super().__init__(message)
        self.detail = detail

    def __reduce__(self):  # keep the exception picklable despite the custom __init__
        return (type(self), (int(self.errno), self.function, self.needed, self.detail))


def from_raw(error: BaseException) -> WasiNnError:
    """Translate a raw layer `Error(errno, function[, needed])` into a `WasiNnError`."""
    args = error.args
    errno = args[0] if args and isinstance(args[0], int) else Errno.RUNTIME_ERROR
    function = args[1] if len(args) > 1 and isinstance(args[1], str) else "wasi_nn"
    needed = args[2] if len(args) > 2 and isinstance(args[2], int) else None
    # wasinn's native layer explains the failure in `.message`; the C module has only the errno,
    # so in wasm the reason comes from wasinn's host through its /.wasinn folder (host_reason).
    detail = getattr(error, "message", None) or None
    if not isinstance(detail, str):
        detail = host_reason(function, errno) if errno != Errno.TOO_LARGE else None
    return WasiNnError(errno, function, needed, detail)


HOST_FOLDER = "/.wasinn"
"""Where wasinn's host leaves the reason of the last failed call (wasinn.guest_channel)."""


def host_reason(function: str, errno: int) -> str | None:
    """The host's reason for the failed call `function` -> `errno`, where the host is wasinn's.

    Other hosts have no such folder (None). The record names the call and errno, so a reason
    is never attached to a different failure.
    """
    try:
        with open(f"{HOST_FOLDER}/last-error", encoding="utf-8") as handle:
            recorded, code, reason = (handle.read().split("\n", 2) + ["", ""])[:3]
    except (OSError, ValueError):
        return None
    if recorded != function or code != str(int(errno)):
        return None
    return reason.strip() or None


RELEASE_REFUSALS = frozenset({Errno.UNSUPPORTED_OPERATION, Errno.INVALID_ARGUMENT})
"""How hosts refuse a release call they do not implement. Wasmtime's CLI and wasinn's portable
runtime lack `unload` / `finalize_execution_context` (unsupported_operation); WasmEdge has both,
but its OpenVINO, PyTorch, TFLite and ONNX backends answer invalid_argument ("only GGML, ...
backends support unload"). Either way the host frees the handle when the guest exits."""


def release_on_exit(release, exc_type) -> None:
    """Run `release` when a `with` block ends: a host's refusal is not an error there, and an
    error already leaving the block is never hidden by one from the release."""
    try:
        release()
    except WasiNnError as error:
        if error.errno not in RELEASE_REFUSALS and exc_type is None:
            raise
    except Exception:
        if exc_type is None:
            raise

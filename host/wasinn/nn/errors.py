"""Errno values of `wasi_ephemeral_nn` and the one exception the host core raises.

Every failure inside the host core is an `NnError` carrying the errno the guest will see and a
human message. The ABI glue turns it into the return value; native mode turns it into
`wasinn.native.raw.Error`. Keeping one exception type means no other exception is "expected",
so anything else reaching the glue is a bug and is reported as runtime_error.
"""

from __future__ import annotations

from enum import IntEnum


class Errno(IntEnum):
    """wasi-nn errno values (wasi-nn crate 0.6 numbering) plus WasmEdge's extensions."""

    SUCCESS = 0
    INVALID_ARGUMENT = 1
    INVALID_ENCODING = 2
    MISSING_MEMORY = 3
    BUSY = 4
    RUNTIME_ERROR = 5
    UNSUPPORTED_OPERATION = 6
    TOO_LARGE = 7
    NOT_FOUND = 8
    # WasmEdge extensions
    END_OF_SEQUENCE = 100
    CONTEXT_FULL = 101
    PROMPT_TOO_LONG = 102
    MODEL_NOT_FOUND = 103


VALID_ERRNOS = frozenset(int(e) for e in Errno)


def errno_name(code: int) -> str:
    """`invalid_argument` for 1, or `errno 42` for a value outside the table."""
    try:
        return Errno(code).name.lower()
    except ValueError:
        return f"errno {code}"


class NnError(Exception):
    """A wasi-nn failure: `errno` is what the guest sees, `message` is for people (logs, native)."""

    def __init__(self, errno: int, message: str, needed: int | None = None) -> None:
        super().__init__(errno, message)
        self.errno = Errno(errno)
        self.message = message
        #: for too_large: the byte size the output needs (written to `written_out`)
        self.needed = needed

    def __str__(self) -> str:
        return f"{errno_name(self.errno)}: {self.message}"

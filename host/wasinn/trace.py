"""`--verbose` logging: one line per ABI call and timings of compile/instantiate, to stderr.

Format (docs/contracts.md):
`wasi-nn: load builders=[0x1234+143526, 0x5678+13956476] encoding=openvino -> graph 0 (12.3 ms)`
Guest addresses are printed so a reader (and the tests) can see that bytes were not copied in
the guest. When tracing is off, callers check `enabled` and build no strings at all.
"""

from __future__ import annotations

import sys
from typing import TextIO


def nn_logger():  # -> logging.Logger
    """The host core's logger ("wasinn.nn": ignored config options, LlamaEdge's 0-byte output
    rule), shown under --verbose. logging is imported on the first message, not at start-up."""
    import logging

    return logging.getLogger("wasinn.nn")


class Tracer:
    """Writes trace lines to a stream when enabled."""

    def __init__(self, enabled: bool = False, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._stream = stream

    def line(self, text: str) -> None:
        if self.enabled:
            stream = self._stream or sys.stderr
            stream.write(text + "\n")
            stream.flush()

    def call(self, function: str, args: str, outcome: str, elapsed_ns: int) -> None:
        """One ABI call: `wasi-nn: <function> <args> -> <outcome> (<ms> ms)`."""
        if self.enabled:
            self.line(f"wasi-nn: {function} {args} -> {outcome} ({elapsed_ns / 1e6:.3f} ms)")

    def phase(self, what: str, elapsed_ns: int) -> None:
        """A host phase: `wasinn: compile 1503.2 ms`."""
        if self.enabled:
            self.line(f"wasinn: {what} {elapsed_ns / 1e6:.1f} ms")


QUIET = Tracer(False)


def describe_model_kind(encoding: int, target: int) -> str:
    """`encoding=openvino` (+ ` target=gpu` unless CPU); raw numbers for unknown codes."""
    from .nn.types import ExecutionTarget, GraphEncoding

    def name(enum, code: int) -> str:
        try:
            return enum(code).name.lower()
        except ValueError:
            return str(code)

    target_text = "" if target == 0 else f" target={name(ExecutionTarget, target)}"
    return f"encoding={name(GraphEncoding, encoding)}{target_text}"

"""`wasinn.native.raw`: the `_wasi_nn` C module's API, for guests running under plain CPython.

Inside wasm a guest imports `_wasi_nn` (a thin C module over the `wasi_ephemeral_nn`
imports); natively the SDK falls back to this module, which has exactly the same functions,
arguments and errors (docs/contracts.md), backed by one process-wide `WasiNn` whose named
models come from `WASINN_NN_PRELOAD` (or `wasinn run --native --nn-preload`). Buffers are
passed to the host core as they are: nothing is copied on the way in, and `get_output`
copies the output once, into the caller's writable buffer.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Sequence

from ..nn import ModelRegistry, NnError, WasiNn
from ..nn.errors import Errno, errno_name
from ..trace import QUIET, Tracer, describe_model_kind

__all__ = [
    "Error", "load", "load_by_name", "load_by_name_with_config", "init_execution_context",
    "set_input", "compute", "compute_single", "fini_single", "get_output",
    "get_output_single", "unload", "finalize_execution_context", "configure",
]


class Error(Exception):
    """A wasi-nn call failed. args = (errno, function[, needed]), as in `_wasi_nn`.

    `message` holds the host's explanation (native mode can say more than an errno).
    """

    def __init__(self, errno: int, function: str, *rest: int, message: str = "") -> None:
        super().__init__(errno, function, *rest)
        self.errno = errno
        self.function = function
        self.message = message

    def __str__(self) -> str:
        text = f"{self.function}: {errno_name(self.errno)}"
        return f"{text}: {self.message}" if self.message else text


_lock = threading.Lock()
_nn: WasiNn | None = None
_tracer: Tracer = QUIET


def configure(registry: ModelRegistry | None = None, *, verbose: bool = False,
              max_graphs: int = 64, max_contexts: int = 256) -> WasiNn:
    """(Re)create the process-wide host core; `wasinn run --native` calls this."""
    global _nn, _tracer
    with _lock:
        _nn = WasiNn(registry if registry is not None else ModelRegistry.from_env(),
                     max_graphs=max_graphs, max_contexts=max_contexts)
        _tracer = Tracer(verbose)
        return _nn


def host() -> WasiNn:
    """The process-wide host core, created on first use from `WASINN_NN_PRELOAD`."""
    if _nn is None:
        configure()
    assert _nn is not None
    return _nn


def _call(function: str, args: str, body: Any) -> Any:
    start = time.perf_counter_ns()
    try:
        result = body()
    except NnError as error:
        _tracer.call(function, args, f"{errno_name(error.errno)}: {error.message}",
                     time.perf_counter_ns() - start)
        extra = (error.needed,) if error.needed is not None else ()
        raise Error(int(error.errno), function, *extra, message=error.message) from None
    _tracer.call(function, args, "ok" if result is None else str(result),
                 time.perf_counter_ns() - start)
    return result


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return bytes(memoryview(value)).decode("utf-8", errors="replace")


def _describe_builders(builders: Sequence[Any]) -> str:
    """`builders=[0x7f…+143526, …]` like the wasm trace; here the addresses are the host's own,
    so a reader sees the guest's buffers reach the backend without a copy."""
    import numpy as np

    parts = []
    for builder in builders:
        try:
            array = np.frombuffer(builder, dtype=np.uint8)
            parts.append(f"{array.ctypes.data:#x}+{array.nbytes}")
        except (TypeError, ValueError):
            parts.append(type(builder).__name__)
    return f"builders=[{', '.join(parts)}]"


def load(builders: Sequence[Any], encoding: int, target: int) -> int:
    args = (f"{_describe_builders(builders)} {describe_model_kind(encoding, target)}"
            if _tracer.enabled else "")
    return _call("load", args, lambda: host().load(list(builders), encoding, target))


def load_by_name(name: Any) -> int:
    text = _text(name)
    return _call("load_by_name", f"name={text!r}", lambda: host().load_by_name(text))


def load_by_name_with_config(name: Any, config: Any) -> int:
    text, conf = _text(name), _text(config)
    return _call("load_by_name_with_config", f"name={text!r}",
                 lambda: host().load_by_name_with_config(text, conf))


def init_execution_context(graph: int) -> int:
    return _call("init_execution_context", f"graph={graph}",
                 lambda: host().init_execution_context(graph))


def set_input(ctx: int, index: int, dims: Sequence[int], type: int, data: Any) -> None:  # noqa: A002
    _call("set_input", f"context={ctx} index={index} dims={list(dims)} type={type}",
          lambda: host().set_input(ctx, index, list(dims), type, data))


def compute(ctx: int) -> None:
    _call("compute", f"context={ctx}", lambda: host().compute(ctx))


def compute_single(ctx: int) -> None:
    _call("compute_single", f"context={ctx}", lambda: host().compute_single(ctx))


def fini_single(ctx: int) -> None:
    _call("fini_single", f"context={ctx}", lambda: host().fini_single(ctx))


def _writable(out: Any) -> memoryview:
    """`out` as a flat writable byte view; TypeError otherwise, before the host is called,
    exactly as `_wasi_nn` refuses such an argument inside wasm."""
    try:
        view = memoryview(out)
        view = view if view.format == "B" and view.ndim == 1 else view.cast("B")
    except (TypeError, ValueError) as error:
        raise TypeError(f"out must be a writable contiguous buffer: {error}") from None
    if view.readonly:
        raise TypeError(f"out must be a writable buffer, not read-only {type(out).__name__}; "
                        "pass a bytearray or array")
    return view


def _copy_into(output: memoryview, index: int, target: memoryview) -> int:
    needed = len(output)
    if needed > len(target):
        raise NnError(Errno.TOO_LARGE, f"output {index} is {needed} bytes, the buffer "
                                       f"{len(target)}", needed=needed)
    target[:needed] = output
    return needed


def get_output(ctx: int, index: int, out: Any) -> int:
    target = _writable(out)
    return _call("get_output", f"context={ctx} index={index}",
                 lambda: _copy_into(host().get_output(ctx, index), index, target))


def get_output_single(ctx: int, index: int, out: Any) -> int:
    target = _writable(out)
    return _call("get_output_single", f"context={ctx} index={index}",
                 lambda: _copy_into(host().get_output_single(ctx, index), index, target))


def unload(graph: int) -> None:
    _call("unload", f"graph={graph}", lambda: host().unload(graph))


def finalize_execution_context(ctx: int) -> None:
    _call("finalize_execution_context", f"context={ctx}",
          lambda: host().finalize_execution_context(ctx))

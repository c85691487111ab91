"""`GraphExecutionContext`: binding inputs, running inference and reading outputs.

An execution context is the host-side state of one inference stream on a graph. Outputs are
read with `get_output`, which has to know how big the output is: the ABI lets the guest learn
it without guessing, because a too-short buffer fails with ``too_large`` and the host writes
the size it needs. The context tries once with a buffer, retries once with the size the host
reported, and remembers that size per output index, so every later read is a single call into
a buffer of exactly the right size.
"""

from __future__ import annotations

from array import array

from . import _lowlevel as _ll
from . import _ndarray as _nd
from ._enums import Errno, TensorType
from ._errors import WasiNnError, from_raw, release_on_exit
from ._raw import Error as _Error
from ._raw import raw as _r

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from ._graph import Graph

FIRST_GUESS = 4096
"""Bytes tried for an output whose size is not known yet (fits 1000/1001-class f32 scores)."""

MAX_OUTPUT = 1 << 31
"""Upper bound when a host reports ``too_large`` without the size it needs (then we double)."""


class GraphExecutionContext:
    """The state of running a graph. Use it as a context manager to finalize it on exit."""

    __slots__ = ("_handle", "graph", "_sizes", "_single_sizes")

    def __init__(self, handle: int, graph: Graph | None = None) -> None:
        self._handle: int | None = handle
        self.graph = graph
        self._sizes: dict[int, int] = {}
        self._single_sizes: dict[int, int] = {}

    @property
    def handle(self) -> int:
        """The host's context handle (what the low-level API calls a context)."""
        if self._handle is None:
            raise WasiNnError(Errno.INVALID_ARGUMENT, "context",
                              detail="the execution context was finalized")
        return self._handle

    @property
    def closed(self) -> bool:
        """True once `finalize` ran."""
        return self._handle is None

    # -- inputs and inference -------------------------------------------------------------
    def set_input(self, index: int, tensor_type, dimensions: Sequence[int] | None = None,
                  data=None) -> None:
        """Bind input `index`: element type, shape and the data buffer (passed, not copied).

        With numpy, ``set_input(index, ndarray)`` takes all three from the array: dtype ->
        tensor type (float16/32/64, uint8, int32, int64), shape -> dimensions, and the array
        itself as data (a non-contiguous view is made contiguous once).

        The context keeps a reference to `data` until it is finalized: the host reads it at
        `compute`, so it must stay alive and unchanged until then.
        """
        if dimensions is None and data is None and _nd.is_ndarray(tensor_type):
            tensor_type, dimensions, data = _nd.tensor_of(tensor_type)
        elif dimensions is None or data is None:
            raise TypeError("set_input takes (index, tensor_type, dimensions, data) or "
                            "(index, ndarray)")
        _ll.bind_input(self.handle, index, dimensions, int(tensor_type), data)

    def compute(self) -> None:
        """Run inference."""
        _ll.compute(self.handle)

    def compute_single(self) -> None:
        """WasmEdge extension: one step of a streaming backend (e.g. one token of a GGML model)."""
        _ll.compute_single(self.handle)

    def fini_single(self) -> None:
        """WasmEdge extension: end the streaming session."""
        _ll.fini_single(self.handle)

    # -- outputs ----------------------------------------------------------------------------
    def get_output_into(self, index: int, buffer) -> int:
        """Copy output `index` into a writable buffer you own; returns the bytes written."""
        return _ll.get_output(self.handle, index, buffer)

    def get_output(self, index: int, shape: Sequence[int] | None = None,
                   dtype=None):
        """Output `index` as a new bytearray of exactly its size (a bytes-like object).

        With `shape` or `dtype` (a `TensorType` or numpy dtype; float32 by default) it is an
        ndarray instead, a view over that bytearray (no copy); this imports numpy.
        """
        dtype = "float32" if dtype is None and shape is not None else dtype
        # With a shape the size is known: read once, without a too_large probe of the host
        # (a round trip to the backend worker, and the worker may fetch the tensor for it).
        expected = _nd.byte_size(shape, dtype)
        buffer, written = self._fetch(index, bytearray, 1, False, expected)
        if written != len(buffer):
            del buffer[written:]  # shrinks in place; no copy of the output
        if shape is None and dtype is None:
            return buffer
        return _nd.as_ndarray(buffer, shape, "float32" if dtype is None else dtype)

    def get_output_single(self, index: int) -> bytearray:
        """WasmEdge extension: output `index` of the last `compute_single` step."""
        buffer, written = self._fetch(index, bytearray, 1, True)
        if written != len(buffer):
            del buffer[written:]
        return buffer

    def get_output_array(self, index: int, typecode: str = "f") -> array:
        """Output `index` as an `array.array` of `typecode` (``'f'`` for f32 scores)."""
        itemsize = array(typecode).itemsize
        zero = array(typecode, [0])

        def make(size: int) -> array:
            return zero * (-(-size // itemsize))  # repetition: one allocation, no Python loop

        values, written = self._fetch(index, make, itemsize, False)
        if written % itemsize:
            raise ValueError(f"output {index} has {written} bytes, not a whole number of "
                             f"{itemsize}-byte '{typecode}' items")
        count = written // itemsize
        if count != len(values):
            del values[count:]
        return values

    def output_info(self, index: int | str) -> tuple[str, list[int], TensorType | str]:
        """(name, dims, type) of output `index`, where the host reports them (the component
        target does; `wasi_ephemeral_nn` cannot: unsupported_operation)."""
        return _ll.output_info(self.handle, index)

    def get_output_view(self, index: int, fmt: str = "f") -> memoryview:
        """Output `index` as a memoryview cast to `fmt` (e.g. ``'f'``), over a fresh buffer."""
        return memoryview(self.get_output(index)).cast(fmt)

    def _fetch(self, index: int, make: Callable[[int], object], itemsize: int,
               single: bool, expected: int | None = None) -> tuple:
        """Read an output into `make(size)`, learning its size from ``too_large`` if needed;
        `expected` (the caller's idea of its size) is the first guess when in range."""
        _ll.check_index(index, "get_output")
        sizes = self._single_sizes if single else self._sizes
        call = _r.get_output_single if single else _r.get_output
        handle = self.handle
        guess = expected if expected and expected <= MAX_OUTPUT else FIRST_GUESS
        size = sizes.get(index) or guess
        while True:
            buffer = make(size)
            try:
                written = call(handle, index, buffer)
            except _Error as raw_error:
                error = from_raw(raw_error)
                if error.errno != Errno.TOO_LARGE:
                    raise error from None
                if error.needed and error.needed > size:
                    size = error.needed  # the host told us: one retry of exactly this size
                elif size < MAX_OUTPUT:
                    size *= 2  # a host that does not report the size: grow geometrically
                else:
                    raise error from None
                continue
            if written > size:
                # Some WasmEdge backends copy what fits, succeed, and report the full size:
                # the bytes are truncated, so read again into a buffer of that size.
                size = written
                continue
            sizes[index] = written or size
            return buffer, written

    # -- lifetime ---------------------------------------------------------------------------
    def finalize(self) -> None:
        """Release the context on the host (WasmEdge's `finalize_execution_context`); idempotent.

        Raises `WasiNnError` (unsupported_operation) on a host without that call; leaving a
        `with` block does not.
        """
        handle, self._handle = self._handle, None
        if handle is not None:
            _ll.finalize_execution_context(handle)

    def __enter__(self) -> GraphExecutionContext:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        release_on_exit(self.finalize, exc_type)

    def __repr__(self) -> str:
        state = "finalized" if self._handle is None else f"handle={self._handle}"
        return f"GraphExecutionContext({state})"

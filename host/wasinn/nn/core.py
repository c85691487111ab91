"""`WasiNn`: the host core behind both the wasm ABI glue and native mode.

It owns the handle tables (graphs, execution contexts), enforces the caps on how many are
live (a graph stays alive, and counted, while a context made from it exists, even after
`unload`), validates everything that is not a pointer (encodings, targets, tensor types, element
counts), dispatches to the backends and turns any backend exception into runtime_error with
the library's own message. It never sees guest pointers: the glue hands it buffers.

Where the backends run is the caller's choice: in this process (native mode, `--in-process`,
`worker=None`) or in a confined `wasinn.worker.BackendWorker` (wasm mode), which looks like
one more backend through the same contract (`Backend.load -> Graph -> Context`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from ..trace import nn_logger
from .backends import Context, Graph, backend_for
from .config import parse_config
from .errors import Errno, NnError
from .registry import ModelRegistry
from .types import DTYPE_NAMES, TensorType, parse_encoding, parse_target, resolve_tensor_type

if TYPE_CHECKING:
    from ..worker import BackendWorker


T = TypeVar("T")

DEFAULT_MAX_GRAPHS = 64
DEFAULT_MAX_CONTEXTS = 256
MAX_DIMS = 32

# numpy is bound here when the first graph is added, not imported with this module: it costs
# ~85 ms, half the start-up of a guest, and a guest that never calls wasi-nn must not pay for
# it. Every execution context comes from a graph, so set_input (the per-call path) always
# finds these set and uses them like a top-level import: no check, no extra call.
np: Any = None
_NUMPY_DTYPES: dict[TensorType, Any] = {}


def _import_numpy() -> None:
    """Bind `np` and `_NUMPY_DTYPES` (once; the backend being loaded has imported numpy)."""
    global np
    import numpy

    _NUMPY_DTYPES.update({t: numpy.dtype(name) for t, name in DTYPE_NAMES.items()})
    np = numpy


class _GraphEntry:
    __slots__ = ("graph", "backend", "handle", "contexts")

    def __init__(self, graph: Graph, backend: str, handle: int) -> None:
        self.graph = graph
        self.backend = backend
        self.handle = handle
        #: live execution contexts made from this graph (they keep it alive after unload)
        self.contexts = 0


class _ContextEntry:
    __slots__ = ("context", "backend", "graph", "computed", "inputs")

    def __init__(self, context: Context, backend: str, graph: _GraphEntry) -> None:
        self.context = context
        self.backend = backend
        self.graph = graph
        self.computed = False
        #: keeps every input's source object alive while the backend may reference it
        self.inputs: dict[int, Any] = {}


def _as_bytes_view(buffer: Any, what: str) -> memoryview:
    """A flat byte view of any buffer-protocol object, without copying."""
    try:
        view = memoryview(buffer)
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    except (TypeError, ValueError) as error:
        raise NnError(Errno.INVALID_ARGUMENT, f"{what} is not a contiguous buffer: {error}") from None


def _backend_call(backend: str, what: str, call: Callable[[], T]) -> T:
    """Run a backend call; NnError passes through, anything else becomes runtime_error."""
    try:
        return call()
    except NnError:
        raise
    except Exception as error:  # noqa: BLE001 - a library's failure, reported with its message
        message = str(error).strip() or type(error).__name__
        raise NnError(Errno.RUNTIME_ERROR, f"{backend} {what} failed: {message}") from error


class WasiNn:
    """One guest's wasi-nn state. Handles are small ints, never reused within a guest."""

    def __init__(self, registry: ModelRegistry | None = None, *,
                 max_graphs: int = DEFAULT_MAX_GRAPHS,
                 max_contexts: int = DEFAULT_MAX_CONTEXTS,
                 worker: BackendWorker | None = None) -> None:
        self.registry = registry if registry is not None else ModelRegistry()
        #: where the backends run: None = in this process; a BackendWorker may be shared by
        #: many sequential WasiNn instances (preloaded graphs stay in it)
        self.worker = worker
        self.max_graphs = max_graphs
        self.max_contexts = max_contexts
        self._graphs: dict[int, _GraphEntry] = {}
        #: unloaded graphs that contexts still use: alive, so counted against max_graphs
        self._unloaded: dict[int, _GraphEntry] = {}
        self._contexts: dict[int, _ContextEntry] = {}
        self._next_graph = 0
        self._next_context = 0

    # -- counts ---------------------------------------------------------------------------
    @property
    def live_graphs(self) -> int:
        """Graphs alive: loaded handles plus unloaded graphs that contexts still hold."""
        return len(self._graphs) + len(self._unloaded)

    @property
    def live_contexts(self) -> int:
        return len(self._contexts)

    # -- graphs ---------------------------------------------------------------------------
    def _add_graph(self, graph: Graph, backend: str) -> int:
        if np is None:
            _import_numpy()
        handle = self._next_graph
        self._next_graph += 1
        self._graphs[handle] = _GraphEntry(graph, backend, handle)
        return handle

    def _check_graph_cap(self) -> None:
        if self.live_graphs >= self.max_graphs:
            raise NnError(Errno.BUSY, f"too many live graphs ({self.max_graphs}, --max-graphs); "
                                      "unload one first")

    def load(self, builders: Sequence[Any], encoding: int, target: int) -> int:
        """Compile a model from its parts (buffers) and return a graph handle."""
        enc = parse_encoding(encoding)
        tgt = parse_target(target)
        self._check_graph_cap()
        parts = [_as_bytes_view(b, f"builder {i}") for i, b in enumerate(builders)]
        backend = backend_for(enc)
        if self.worker is not None:
            backend = self.worker.backend(enc, backend)
        graph = _backend_call(backend.name, "load", lambda: backend.load(parts, tgt))
        return self._add_graph(graph, backend.name)

    def load_by_name(self, name: str) -> int:
        """A graph handle for a preloaded model (compiled once, shared)."""
        return self.load_by_name_with_config(name, "")

    def load_by_name_with_config(self, name: str, config: str) -> int:
        """`load_by_name` with a JSON config (WasmEdge's GGML options).

        The preloaded model is compiled once; its graph's `configure` gives the graph this
        handle gets: the shared one for backends without options, a new one sharing the
        weights for GGML. Options a backend cannot honour are logged, not silently dropped.
        """
        if not isinstance(name, str):
            name = bytes(_as_bytes_view(name, "name")).decode("utf-8", errors="replace")
        if not isinstance(config, str):
            config = _as_bytes_view(config, "config")      # parse_config decodes strict UTF-8
        self._check_graph_cap()
        model = self.registry.get(name)
        backend = backend_for(model.encoding)
        try:
            options = parse_config(config)
        except NnError as error:
            raise NnError(backend.bad_config_errno, error.message) from None
        shared = self._named_graph(model, backend.name)
        graph = _backend_call(backend.name, "configure", lambda: shared.configure(options))
        if options and graph is shared:
            nn_logger().info("load_by_name_with_config %r: ignoring options the backend cannot "
                     "honour: %s", name, ", ".join(sorted(options)))
        return self._add_graph(graph, backend.name)

    def _named_graph(self, model: Any, backend: str) -> Graph:
        """The registry's compiled graph for `model`: held in the worker, or in this process."""
        if self.worker is not None:
            worker = self.worker
            return _backend_call(backend, "load", lambda: worker.named_graph(model))
        return _backend_call(backend, "load", model.graph)

    def unload(self, graph: int) -> None:
        """Drop a graph handle (contexts made from it keep working, and keep it counted)."""
        entry = self._graphs.pop(graph, None)
        if entry is None:
            raise NnError(Errno.INVALID_ARGUMENT, f"unknown graph handle {graph}")
        if entry.contexts:
            self._unloaded[graph] = entry

    # -- contexts -------------------------------------------------------------------------
    def init_execution_context(self, graph: int) -> int:
        entry = self._graphs.get(graph)
        if entry is None:
            raise NnError(Errno.INVALID_ARGUMENT, f"unknown graph handle {graph}")
        if len(self._contexts) >= self.max_contexts:
            raise NnError(Errno.BUSY, f"too many live execution contexts ({self.max_contexts}, "
                                      "--max-contexts); finalize one first")
        context = _backend_call(entry.backend, "init_execution_context",
                                entry.graph.init_execution_context)
        handle = self._next_context
        self._next_context += 1
        self._contexts[handle] = _ContextEntry(context, entry.backend, entry)
        entry.contexts += 1
        return handle

    def _context(self, ctx: int) -> _ContextEntry:
        entry = self._contexts.get(ctx)
        if entry is None:
            raise NnError(Errno.INVALID_ARGUMENT, f"unknown execution context {ctx}")
        return entry

    def set_input(self, ctx: int, index: int, dims: Sequence[int], type_code: int, data: Any) -> None:
        """Bind input `index`; `type_code` in either numbering (see types.resolve_tensor_type)."""
        entry = self._context(ctx)
        dims = [int(d) for d in dims]
        if len(dims) > MAX_DIMS or any(d < 0 for d in dims):
            raise NnError(Errno.INVALID_ARGUMENT, f"bad tensor dims {dims[:MAX_DIMS + 1]}")
        if index < 0:
            raise NnError(Errno.INVALID_ARGUMENT, f"input index {index} out of range")
        view = _as_bytes_view(data, "tensor data")
        if entry.backend == "ggml":
            # GGML inputs are text: WasmEdge ignores the type and dims (LlamaEdge sends dims [1]
            # with the whole prompt), so the bytes are passed as they are.
            array = np.frombuffer(view, dtype=np.uint8)
            _backend_call(entry.backend, "set_input", lambda: entry.context.set_input(index, array))
            entry.computed = False
            return
        tensor_type = resolve_tensor_type(type_code, dims, len(view))
        try:
            array = np.frombuffer(view, dtype=_NUMPY_DTYPES[tensor_type]).reshape(dims)
        except (ValueError, OverflowError):
            # an empty tensor whose other dims multiply past what numpy can index, e.g.
            # [0, 0xFFFFFFFF, 0xFFFFFFFF]: the byte count matched (0), the shape cannot exist
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"tensor dims {dims} describe a tensor too large to address") from None
        _backend_call(entry.backend, "set_input", lambda: entry.context.set_input(index, array))
        entry.inputs[index] = data
        entry.computed = False

    def compute(self, ctx: int) -> None:
        entry = self._context(ctx)
        _backend_call(entry.backend, "compute", entry.context.compute)
        entry.computed = True

    def get_output(self, ctx: int, index: int) -> memoryview:
        """Output `index` of the last compute as a flat byte view (valid until next compute)."""
        return self._read_output(ctx, index, "get_output", "compute")

    def _read_output(self, ctx: int, index: int, function: str, step: str) -> memoryview:
        """`Context.<function>(index)` as a flat byte view, once `step` ran (or the backend's
        outputs are readable before it: GGML's metadata)."""
        entry = self._context(ctx)
        if not (entry.computed or getattr(entry.context, "readable_before_compute", False)):
            raise NnError(Errno.INVALID_ARGUMENT, f"{function} on context {ctx} before {step}")
        if index < 0:
            raise NnError(Errno.INVALID_ARGUMENT, f"output index {index} out of range")
        read = getattr(entry.context, function)
        array = _backend_call(entry.backend, function, lambda: read(index))
        return memoryview(array).cast("B") if array.size else memoryview(b"")

    # Streaming (WasmEdge's GGML extensions); backends without steps compute everything in one
    # step and return whole outputs (the Context defaults in backends/base.py).
    def compute_single(self, ctx: int) -> None:
        entry = self._context(ctx)
        _backend_call(entry.backend, "compute_single", entry.context.compute_single)
        entry.computed = True

    def get_output_single(self, ctx: int, index: int) -> memoryview:
        """The last step's output `index` as a flat byte view (valid until the next step)."""
        return self._read_output(ctx, index, "get_output_single", "compute_single")

    def fini_single(self, ctx: int) -> None:
        entry = self._context(ctx)
        _backend_call(entry.backend, "fini_single", entry.context.fini_single)
        entry.computed = False

    def llm_context(self, ctx: int) -> bool:
        """True for a context of the GGML backend (whose outputs follow WasmEdge's LLM rules)."""
        entry = self._contexts.get(ctx)
        return entry is not None and entry.backend == "ggml"

    def finalize_execution_context(self, ctx: int) -> None:
        entry = self._contexts.pop(ctx, None)
        if entry is None:
            raise NnError(Errno.INVALID_ARGUMENT, f"unknown execution context {ctx}")
        graph = entry.graph
        graph.contexts -= 1
        if not graph.contexts:
            self._unloaded.pop(graph.handle, None)
        entry.context.close()

    def close(self) -> None:
        """Drop every handle (end of a guest)."""
        for ctx in list(self._contexts):
            self.finalize_execution_context(ctx)
        self._graphs.clear()
        self._unloaded.clear()

"""`GraphBuilder` and `Graph`: loading a model into the host, the Pythonic way.

In WASI-NN a *graph* is a model the host has loaded into one of its backends (OpenVINO,
PyTorch, TFLite, ONNX, ...); the guest only holds its handle. `GraphBuilder` mirrors the Rust
crate's builder: pick the encoding and target, then build from bytes, from files or from a
model the host preloaded by name (WasmEdge's `--nn-preload`).
"""

from __future__ import annotations

from . import _lowlevel as _ll
from ._enums import Errno, ExecutionTarget, GraphEncoding
from ._errors import WasiNnError, release_on_exit

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from os import PathLike

    from ._context import GraphExecutionContext


class GraphBuilder:
    """Describes how to load a graph: ``GraphBuilder(GraphEncoding.OPENVINO, ExecutionTarget.CPU)``."""

    __slots__ = ("encoding", "target", "_config")

    def __init__(self, encoding: GraphEncoding | int,
                 target: ExecutionTarget | int = ExecutionTarget.CPU) -> None:
        self.encoding = GraphEncoding(encoding)
        self.target = ExecutionTarget(target)
        self._config: str | None = None

    def config(self, config: str | bytes | dict) -> GraphBuilder:
        """Attach a backend configuration (JSON text, or a dict serialised to JSON).

        Only `build_from_cache` can pass it on: it then calls the WasmEdge extension
        `load_by_name_with_config`. Returns the builder so calls chain as in Rust.
        """
        if isinstance(config, dict):
            import json  # lazy: most guests never configure
            config = json.dumps(config)
        elif isinstance(config, (bytes, bytearray)):
            config = bytes(config).decode("utf-8")
        self._config = config
        return self

    def build_from_bytes(self, parts: Sequence) -> Graph:
        """Load a graph from in-memory parts (OpenVINO: ``[xml, weights]``; others: ``[model]``).

        Any buffers work (bytes, bytearray, memoryview, array); they are handed over uncopied.
        """
        if isinstance(parts, (bytes, bytearray, memoryview)):
            parts = [parts]  # a single model passed without its list: forgive it
        handle = _ll.load(parts, self.encoding, self.target)
        return Graph(handle, self.encoding, self.target)

    def build_from_files(self, paths: Iterable[str | PathLike]) -> Graph:
        """Read each file (one read per file, no further copies) and load the graph from them."""
        if isinstance(paths, str) or hasattr(paths, "__fspath__"):
            paths = [paths]  # type: ignore[list-item]
        parts = []
        for path in paths:
            with open(path, "rb") as file:
                parts.append(file.read())
        return self.build_from_bytes(parts)

    def build_from_cache(self, name: str) -> Graph:
        """Load a graph the host preloaded under `name` (``--nn-preload name:...``).

        With a `config` set this calls `load_by_name_with_config`, else `load_by_name`.
        """
        if self._config is None:
            handle = _ll.load_by_name(name)
        else:
            handle = _ll.load_by_name_with_config(name, self._config)
        return Graph(handle, self.encoding, self.target)

    def __repr__(self) -> str:
        return f"GraphBuilder({self.encoding!r}, {self.target!r})"


class Graph:
    """A model loaded on the host. Use it as a context manager to unload it on exit."""

    __slots__ = ("_handle", "encoding", "target")

    def __init__(self, handle: int, encoding: GraphEncoding | int | None = None,
                 target: ExecutionTarget | int | None = None) -> None:
        self._handle: int | None = handle
        self.encoding = encoding
        self.target = target

    @property
    def handle(self) -> int:
        """The host's graph handle (what the low-level API calls a graph)."""
        if self._handle is None:
            raise WasiNnError(Errno.INVALID_ARGUMENT, "graph", detail="the graph was unloaded")
        return self._handle

    @property
    def closed(self) -> bool:
        """True once `unload` ran."""
        return self._handle is None

    def init_execution_context(self) -> GraphExecutionContext:
        """Create an execution context: the state for running this graph."""
        from ._context import GraphExecutionContext
        return GraphExecutionContext(_ll.init_execution_context(self.handle), self)

    def unload(self) -> None:
        """Release the graph on the host (WasmEdge's `unload`). Calling it twice is harmless.

        Raises `WasiNnError` (unsupported_operation) on a host without `unload`; leaving a
        `with` block does not, since the host then frees the graph when the guest exits.
        """
        handle, self._handle = self._handle, None
        if handle is not None:
            _ll.unload(handle)

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        release_on_exit(self.unload, exc_type)

    def __repr__(self) -> str:
        state = "unloaded" if self._handle is None else f"handle={self._handle}"
        return f"Graph({state}, encoding={self.encoding!r})"

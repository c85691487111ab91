"""The backend contract: three small levels, like Wasmtime's wasmtime-wasi-nn crate.

    Backend.load(builders, target) -> Graph
    Graph.init_execution_context() -> Context
    Context.set_input(index, array) / compute() / get_output(index) -> array

Backends see only numpy arrays and buffers; they never see guest pointers. `set_input` gets a
typed, shaped numpy array that may be a zero-copy view of guest memory (wasm mode) or of the
guest's own object (native mode); a backend may keep referencing it until `compute` — the
ABI's contract is that the guest leaves the buffer alone between `set_input` and `compute`
(WasmEdge's OpenVINO backend shares it the same way). `get_output` returns a C-contiguous
array the caller copies out of; it stays valid until the next `compute`.

Validation errors are raised as `NnError` by the backend; any other exception a backend
library throws is turned into runtime_error by the core, which keeps the library's message.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ..errors import Errno, NnError
from ..types import ExecutionTarget

if TYPE_CHECKING:      # annotations only: the backends import numpy themselves, on first use
    import numpy as np


class Context(ABC):
    """One execution context: its own input tensors and outputs (an infer request)."""

    @abstractmethod
    def set_input(self, index: int, array: np.ndarray) -> None:
        """Bind input `index` to `array` (typed and shaped; may be a view of guest memory)."""

    @abstractmethod
    def compute(self) -> None:
        """Run inference on the inputs bound so far."""

    @abstractmethod
    def get_output(self, index: int) -> np.ndarray:
        """Output `index` of the last `compute`, C-contiguous."""

    def close(self) -> None:
        """Release what the context holds (default: nothing to do)."""

    def output_into(self, index: int, array: np.ndarray) -> bool:
        """Have every later compute write output `index` straight into `array` (C-contiguous,
        of the output's dtype and size: the backend worker's shared segment), if the backend
        can, so nobody copies it afterwards; True if it will. `get_output(index)` then
        returns a view of `array`. Default False: the output is copied out after compute."""
        return False

    def single_threaded(self) -> bool:
        """Whether compute runs on the calling thread alone, with no thread pool of its own:
        the host then waits for the backend worker's reply on a CPU the compute leaves free
        (worker/transport.Forecast). Default False: libraries with their own threads."""
        return False

    # Streaming (WasmEdge's GGML extensions). A backend that produces whole outputs computes
    # everything in one step, and its single-step output is the whole output.
    def compute_single(self) -> None:
        """One step of a streaming computation (GGML: one token). Default: `compute`."""
        self.compute()

    def get_output_single(self, index: int) -> np.ndarray:
        """Output `index` of the last step (GGML: the last token's bytes). Default: `get_output`."""
        return self.get_output(index)

    def fini_single(self) -> None:
        """End a streaming computation (default: nothing to do)."""


class Graph(ABC):
    """A loaded and compiled model; immutable, so one graph may back many handles."""

    @abstractmethod
    def init_execution_context(self) -> Context:
        """A fresh execution context for this graph."""

    def configure(self, config: dict) -> "Graph":
        """The graph to hand out for a `load_by_name[_with_config]` with this parsed config.

        Default: this graph, unchanged (its backend takes no options). A backend whose graphs
        hold per-handle state (GGML: a KV cache and sampling settings) returns a new graph that
        shares the loaded weights. Invalid values are `NnError`s.
        """
        return self


class Backend(ABC):
    """Loads models of one graph encoding."""

    #: the name used in messages and logs (e.g. "openvino")
    name: str = ""
    #: the pip extra that installs the library (`pip install wasinn[<extra>]`)
    extra: str = ""
    #: the import name of the library, checked lazily
    module: str = ""
    #: the errno for a config string that is not JSON (WasmEdge's GGML says invalid_encoding)
    bad_config_errno: Errno = Errno.INVALID_ARGUMENT

    def library(self) -> Any:
        """Import the backend's library on first use; a missing one is a clear unsupported error."""
        try:
            return importlib.import_module(self.module)
        except ImportError as error:
            raise NnError(
                Errno.UNSUPPORTED_OPERATION,
                f"the {self.name} backend needs the {self.module!r} library, which is not "
                f"installed ({error}); install it with: {install_hint(self.extra)}",
            ) from None

    @abstractmethod
    def load(self, builders: Sequence[memoryview], target: ExecutionTarget) -> Graph:
        """Compile the model parts in `builders` for `target`."""


#: where a backend writes what the guest asked to see on its own stdout (GGML's
#: stream-stdout); None: this process's stdout. The backend worker sets it to the host's
#: stdout, handed over at its start: its own stdout is the host's stderr (for what libraries
#: print), so that the guest's stdout carries only what was asked for.
_guest_stdout: Any = None


def guest_stdout() -> Any:
    """A binary stream for output the guest asked to go to its stdout."""
    import sys

    return _guest_stdout if _guest_stdout is not None else sys.stdout.buffer


def set_guest_stdout(fd: int) -> None:
    """Send `guest_stdout()` to descriptor `fd` (the backend worker, at its start)."""
    global _guest_stdout
    _guest_stdout = open(fd, "wb", buffering=0, closefd=True)


def install_hint(extra: str) -> str:
    """What really installs an extra's libraries: the pinned requirements themselves
    (`pip install 'onnxruntime==1.32.0'`), read from the installed wasinn's metadata, which
    works wherever wasinn came from (a wheel, a checkout); `wasinn[extra]` is not on any index."""
    from importlib import metadata

    marker = f'extra == "{extra}"'
    try:
        requirements = [r.split(";")[0].strip() for r in metadata.requires("wasinn") or ()
                        if marker in r and not r.startswith("wasinn")]
    except metadata.PackageNotFoundError:
        requirements = []
    if not requirements:
        return f"pip install the library (the '{extra}' extra of wasinn)"
    return ("pip install " + " ".join(f"'{r}'" for r in requirements)
            + f" (the '{extra}' extra of wasinn)")


def model_bytes(view: memoryview) -> bytes:
    """A model part as `bytes`, for libraries whose loaders take nothing else.

    When the part is a whole immutable `bytes` object (what a native guest's `file.read()`
    gives), that object is returned as it is: no copy of a model that may be tens of MB. Any
    other buffer — guest memory or a bytearray, which the guest may reuse once `load`
    returns, or an mmap — is copied once.
    """
    source = view.obj
    if type(source) is bytes and view.nbytes == len(source):
        return source
    return bytes(view)


@contextmanager
def model_file(view: memoryview) -> Iterator[str]:
    """A file path holding the model part's bytes, for libraries that only load from a path.

    The bytes go to an anonymous memory file (memfd) named by `/proc/self/fd/N`, valid for the
    `with` block: the library reads (or maps) it there, and no host path is ever opened on a
    guest's behalf. Closing the descriptor does not unmap what the library mapped.
    """
    from ...worker.server import model_path   # in the worker: the part is a sealed memfd already

    path = model_path(view)
    if path is not None:                        # no second copy of a multi-GB model
        yield path
        return
    fd = os.memfd_create("wasinn-model", os.MFD_CLOEXEC)
    try:
        written = 0
        while written < view.nbytes:     # os.write may write less than asked (large parts)
            written += os.write(fd, view[written:])
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def check_index(index: int, count: int, what: str) -> None:
    """invalid_argument unless 0 <= index < count."""
    if not 0 <= index < count:
        raise NnError(Errno.INVALID_ARGUMENT,
                      f"{what} index {index} out of range: the model has {count}")


def check_builders(builders: Sequence[memoryview], expected: int, backend: str, parts: str) -> None:
    """invalid_argument unless exactly `expected` model parts were given."""
    if len(builders) != expected:
        raise NnError(Errno.INVALID_ARGUMENT,
                      f"{backend} expects {expected} model part(s) ({parts}), got {len(builders)}")


def unsupported_target(backend: str, target: ExecutionTarget, available: str) -> NnError:
    """The error for a target the backend has no device for."""
    return NnError(Errno.UNSUPPORTED_OPERATION,
                   f"{backend}: execution target {target.name.lower()} is not available here "
                   f"(available: {available})")

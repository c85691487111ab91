"""The low-level API: one function per `wasi_ephemeral_nn` call, as in the Rust crate 0.6.

A Rust guest translates line by line::

    graph = wasi_nn.load([xml, weights], wasi_nn.GRAPH_ENCODING_OPENVINO,
                         wasi_nn.EXECUTION_TARGET_CPU)
    context = wasi_nn.init_execution_context(graph)
    wasi_nn.set_input(context, 0, wasi_nn.Tensor([1, 3, 224, 224], wasi_nn.TENSOR_TYPE_F32, data))
    wasi_nn.compute(context)
    written = wasi_nn.get_output(context, 0, output_buffer)

Handles are plain ints; a non-zero errno raises `WasiNnError` (where Rust returns `Err`).
Buffers go to the raw layer untouched: no copy of model or tensor bytes happens here.
"""

from __future__ import annotations

from ._enums import Errno, TensorType
from ._errors import WasiNnError, from_raw
from ._raw import RAW_NAME as _RAW_NAME
from ._raw import Error as _Error
from ._raw import raw as _r
from ._tensor import Tensor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


def load(builders: Sequence, encoding: int, target: int) -> int:
    """Load a graph from its parts (OpenVINO: [xml, weights]; others: [model]); returns its handle."""
    try:
        return _r.load(builders, int(encoding), int(target))
    except _Error as error:
        raise from_raw(error) from None


def load_by_name(name: str | bytes) -> int:
    """Load a graph the host already knows by name (`--nn-preload NAME:...`); returns its handle."""
    try:
        return _r.load_by_name(name)
    except _Error as error:
        raise from_raw(error) from None


def load_by_name_with_config(name: str | bytes, config: str | bytes) -> int:
    """WasmEdge extension: `load_by_name` with a JSON configuration string for the backend."""
    try:
        return _r.load_by_name_with_config(name, config)
    except _Error as error:
        raise from_raw(error) from None


def init_execution_context(graph: int) -> int:
    """Create an execution context (the state of one inference stream) for a graph."""
    try:
        return _r.init_execution_context(graph)
    except _Error as error:
        raise from_raw(error) from None


_bound_inputs: dict[int, dict[int, object]] = {}
"""Input buffers per context, kept alive until the context is finalized.

wasinn's host reads inputs from guest memory at `compute` (set_input does not copy), so a buffer
the caller drops right after `set_input` must not be freed and reused before inference runs.
"""


_ARRAY_CODES = {TensorType.F32: "f", TensorType.F64: "d", TensorType.U8: "B",
                TensorType.I32: "i", TensorType.I64: "q"}


def tensor_data(data, tensor_type: int):
    """`data` as a buffer the host can read: buffers pass through untouched (no copy); a list
    or tuple of numbers is packed once into an `array` of the tensor's element type. Anything
    else is refused with the same TypeError in wasm and natively."""
    if isinstance(data, (list, tuple)):
        import array

        try:
            code = _ARRAY_CODES[TensorType(tensor_type)]
        except (ValueError, KeyError):
            raise TypeError(f"set_input: a list cannot be packed as tensor type {tensor_type} "
                            "(f16 and unknown types need a buffer such as bytes)") from None
        try:
            return array.array(code, data)
        except (TypeError, OverflowError) as error:
            raise TypeError(f"set_input: the list does not fit tensor type "
                            f"{TensorType(tensor_type).name}: {error}") from None
    try:
        memoryview(data)
    except TypeError:
        raise TypeError(f"set_input: data must be a buffer (bytes, bytearray, array.array, "
                        f"memoryview, numpy array) or a list of numbers, not "
                        f"{type(data).__name__}") from None
    return data


def check_index(index, function: str) -> None:
    """A tensor name (str) is only meaningful where the raw layer addresses tensors by name
    (the component target's WIT wasi:nn); elsewhere say so instead of a TypeError."""
    if isinstance(index, str) and not getattr(_r, "NAMES", False):
        raise WasiNnError(Errno.UNSUPPORTED_OPERATION, function,
                          detail=f"tensor names need the component target (WIT wasi:nn); the "
                                 f"{_RAW_NAME} raw layer (wasi_ephemeral_nn) takes indexes")


def bind_input(context: int, index: int | str, dimensions, tensor_type: int, data) -> None:
    """Pass one input to the host and keep `data` alive with the context (shared by both APIs)."""
    check_index(index, "set_input")
    data = tensor_data(data, tensor_type)
    try:
        _r.set_input(context, index, dimensions, tensor_type, data)
    except _Error as error:
        raise from_raw(error) from None
    _bound_inputs.setdefault(context, {})[index] = data


def set_input(context: int, index: int | str, tensor: Tensor) -> None:
    """Bind `tensor` to input `index` of the context; its data buffer is passed, not copied.

    `index` may be the input's name on the component target (see docs/sdk.md).

    The buffer stays referenced until `finalize_execution_context`, so a temporary is safe.
    """
    bind_input(context, index, tensor.dimensions, int(tensor.type), tensor.data)


def compute(context: int) -> None:
    """Run inference on the inputs bound so far."""
    try:
        _r.compute(context)
    except _Error as error:
        raise from_raw(error) from None


def get_output(context: int, index: int | str, buffer) -> int:
    """Copy output `index` into the writable `buffer`; returns the number of bytes written.

    A buffer that is too short raises `WasiNnError` with errno ``too_large`` whose `.needed`
    is the output's size in bytes (when the host reports it, as WasmEdge and wasinn do).
    """
    check_index(index, "get_output")
    try:
        return _r.get_output(context, index, buffer)
    except _Error as error:
        raise from_raw(error) from None


def compute_single(context: int) -> None:
    """WasmEdge extension: compute one step of a streaming (token-by-token) backend."""
    try:
        _r.compute_single(context)
    except _Error as error:
        raise from_raw(error) from None


def get_output_single(context: int, index: int, buffer) -> int:
    """WasmEdge extension: the output of the last `compute_single` step; returns bytes written."""
    try:
        return _r.get_output_single(context, index, buffer)
    except _Error as error:
        raise from_raw(error) from None


def fini_single(context: int) -> None:
    """WasmEdge extension: end a streaming session started with `compute_single`."""
    try:
        _r.fini_single(context)
    except _Error as error:
        raise from_raw(error) from None


def unload(graph: int) -> None:
    """WasmEdge extension: release a graph on the host."""
    try:
        _r.unload(graph)
    except _Error as error:
        raise from_raw(error) from None


def finalize_execution_context(context: int) -> None:
    """WasmEdge extension: release an execution context on the host."""
    _bound_inputs.pop(context, None)
    try:
        _r.finalize_execution_context(context)
    except _Error as error:
        raise from_raw(error) from None


def output_info(context: int, index: int | str) -> tuple[str, list[int], TensorType | str]:
    """(name, dims, type) of output `index` after `compute`, where the host reports them.

    The component target's WIT `wasi:nn` returns each output as a typed, shaped tensor; the
    witx `wasi_ephemeral_nn` ABI only copies bytes, so there (and natively) this raises
    `WasiNnError` (unsupported_operation). The type is a `TensorType`, or ``"bf16"``.
    """
    check_index(index, "output_info")
    info = getattr(_r, "output_info", None)
    if info is None:
        raise WasiNnError(Errno.UNSUPPORTED_OPERATION, "output_info",
                          detail=f"the {_RAW_NAME} raw layer (wasi_ephemeral_nn) does not "
                                 "report an output's dims or type")
    try:
        name, dims, kind = info(context, index)
    except _Error as error:
        raise from_raw(error) from None
    return name, dims, TensorType(kind) if isinstance(kind, int) else kind

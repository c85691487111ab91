"""The raw layer inside a WebAssembly component: `_wasi_nn`'s API over WIT `wasi:nn`.

A guest built with ``wasinn build --component`` talks to the host through the Component
Model's ``wasi:nn@0.2.0-rc-2024-10-28`` (Wasmtime's ``wasmtime run -S nn``), via the bindings
componentize-py generates (`wit_world.imports.*`). This module gives those bindings exactly the
API of the C module `_wasi_nn` (docs/contracts.md): int handles, witx enum numbering, errors as
``Error(errno, function[, needed])``, so the SDK above runs unchanged. Where WIT differs:

* Tensors are addressed by *name*. A name (a ``str``) is passed through as is. An index maps
  through the graph's declared inputs where the encoding lets the guest read them: for OpenVINO
  the IR's ``Parameter`` layers in file order (the order OpenVINO numbers inputs), named by
  their port's first tensor name. Other encodings declare no names the guest can read, so index
  ``i`` becomes the name ``"i"`` (what Wasmtime's backends call unnamed tensors: its outputs
  come back named ``"0"``, ``"1"``, ...). Outputs by index are the host's returned list, in its
  order; by name, looked up in it.
* `set_input` creates the WIT tensor at once (the data crosses into the host then) and
  `compute` hands all bound inputs over and keeps the returned outputs; `get_output` copies
  one out (fetched from the host once, then cached). `compute` takes ownership of the tensors
  it is given, so the bytes stay referenced here and a later `compute` without a new
  `set_input` re-creates the tensor (inputs stay bound, as with witx).
* `unload` / `finalize_execution_context` drop the WIT resources (the host frees them).
* `load_by_name_with_config`, `compute_single`, `get_output_single`, `fini_single` do not
  exist in this WIT: they raise unsupported_operation naming the target.
* Encodings: WIT swaps autodetect and ggml (witx 5/6, WIT 6/5), has no ``auto`` target, and
  numbers tensor types with bf16 at 3; all mapped by name here. WIT's error ``data()`` message
  becomes ``Error.message`` (the SDK's ``WasiNnError.detail``); its codes without a witx twin
  (timeout, security, unknown) become runtime_error with the WIT code named in the message.

componentize-py marshals ``list<u8>`` only from `bytes`, so other buffers are copied once into
bytes on the way in (a bytearray tensor from `image_to_tensor` included).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from componentize_py_types import Err
from wit_world.imports import errors as wit_errors
from wit_world.imports import graph as wit_graph
from wit_world.imports import tensor as wit_tensor

TARGET = "component (WIT wasi:nn@0.2.0-rc-2024-10-28)"
PORTABLE = False
NAMES = True  # tensors may be addressed by name (the SDK refuses names on other layers)

# witx errnos (docs/sdk.md); the WIT codes without a twin map to runtime_error.
INVALID_ARGUMENT, INVALID_ENCODING, RUNTIME_ERROR = 1, 2, 5
UNSUPPORTED_OPERATION, TOO_LARGE, NOT_FOUND = 6, 7, 8
_ERRNO = {
    wit_errors.ErrorCode.INVALID_ARGUMENT: INVALID_ARGUMENT,
    wit_errors.ErrorCode.INVALID_ENCODING: INVALID_ENCODING,
    wit_errors.ErrorCode.RUNTIME_ERROR: RUNTIME_ERROR,
    wit_errors.ErrorCode.UNSUPPORTED_OPERATION: UNSUPPORTED_OPERATION,
    wit_errors.ErrorCode.TOO_LARGE: TOO_LARGE,
    wit_errors.ErrorCode.NOT_FOUND: NOT_FOUND,
}
# witx numbering (wasi_nn._constants) -> WIT enum member, matched by name.
_ENCODINGS = {0: wit_graph.GraphEncoding.OPENVINO, 1: wit_graph.GraphEncoding.ONNX,
              2: wit_graph.GraphEncoding.TENSORFLOW, 3: wit_graph.GraphEncoding.PYTORCH,
              4: wit_graph.GraphEncoding.TENSORFLOWLITE, 5: wit_graph.GraphEncoding.AUTODETECT,
              6: wit_graph.GraphEncoding.GGML}
_TARGETS = {0: wit_graph.ExecutionTarget.CPU, 1: wit_graph.ExecutionTarget.GPU,
            2: wit_graph.ExecutionTarget.TPU}
_TENSOR_TYPES = {0: wit_tensor.TensorType.FP16, 1: wit_tensor.TensorType.FP32,
                 2: wit_tensor.TensorType.FP64, 3: wit_tensor.TensorType.U8,
                 4: wit_tensor.TensorType.I32, 5: wit_tensor.TensorType.I64}
_TENSOR_CODES = {member: code for code, member in _TENSOR_TYPES.items()}


class Error(Exception):
    """A wasi-nn call failed: args = (errno, function[, needed]), as `_wasi_nn.Error`.

    `message` is the host's explanation (WIT errors carry one) or this layer's.
    """

    def __init__(self, errno: int, function: str, *rest: int, message: str = "") -> None:
        super().__init__(errno, function, *rest)
        self.message = message


def _unsupported(function: str, what: str) -> Error:
    return Error(UNSUPPORTED_OPERATION, function, message=f"{what} on the {TARGET} target")


def _host_error(function: str, err: Err) -> Error:
    """A WIT `error` resource as `Error`, with its code and message."""
    value = err.value
    try:
        code = value.code()
        message = value.data()
    except Exception:  # noqa: BLE001 - not an error resource: report what we got
        return Error(RUNTIME_ERROR, function, message=repr(value))
    _drop(value)  # the host keeps an error resource until the guest drops it
    errno = _ERRNO.get(code)
    if errno is None:
        errno = RUNTIME_ERROR
        message = f"{code.name.lower().replace('_', '-')}: {message}"
    return Error(errno, function, message=message)


def _as_bytes(data) -> bytes:
    """`list<u8>` wants bytes: pass bytes through, copy any other buffer once."""
    if type(data) is bytes:
        return data
    try:
        return memoryview(data).tobytes()
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not {type(data).__name__!r}") from None


def openvino_input_names(ir: bytes) -> list[str] | None:
    """The IR's inputs in OpenVINO's order: each Parameter layer's first tensor name."""
    try:
        root = ElementTree.fromstring(ir)
    except ElementTree.ParseError:
        return None  # the host will refuse the model itself, with its own message
    names = []
    for layer in root.iter("layer"):
        if layer.get("type") != "Parameter":
            continue
        port = layer.find("output/port")
        tensor_names = (port.get("names") if port is not None else None) or ""
        first = tensor_names.split(",")[0].strip()
        names.append(first or layer.get("name") or str(len(names)))
    return names


@dataclass
class _Graph:
    resource: object
    input_names: list[str] | None  # None: the encoding declares none the guest can read


@dataclass
class _Input:
    dims: list[int]
    type: object  # WIT tensor-type
    payload: bytes  # kept: `compute` consumes the WIT tensor, a later compute needs a new one
    tensor: object | None = None  # the WIT tensor not yet handed to `compute`


@dataclass
class _Context:
    resource: object
    graph: _Graph
    inputs: dict[str, _Input] = field(default_factory=dict)
    outputs: list[tuple[str, object]] = field(default_factory=list)
    fetched: dict[int, bytes] = field(default_factory=dict)  # output position -> bytes


_graphs: dict[int, _Graph] = {}
_contexts: dict[int, _Context] = {}
_next_handle = [0, 0]  # graphs, contexts: never reused, as a handle table should


def _new_handle(kind: int) -> int:
    handle = _next_handle[kind]
    _next_handle[kind] += 1
    return handle


def _u32(value: int, what: str) -> int:
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__!r}")
    if not 0 <= value <= 0xFFFFFFFF:
        raise OverflowError(f"{what} {value} is out of the u32 range")
    return value


def _graph(handle: int, function: str) -> _Graph:
    entry = _graphs.get(_u32(handle, "graph"))
    if entry is None:
        raise Error(INVALID_ARGUMENT, function, message=f"no graph {handle}")
    return entry


def _context(handle: int, function: str) -> _Context:
    entry = _contexts.get(_u32(handle, "context"))
    if entry is None:
        raise Error(INVALID_ARGUMENT, function, message=f"no execution context {handle}")
    return entry


def _register(resource: object, encoding: int, builders: list[bytes]) -> int:
    names = None
    if encoding == 0 and builders:
        names = openvino_input_names(builders[0])
    handle = _new_handle(0)
    _graphs[handle] = _Graph(resource, names)
    return handle


def load(builders, encoding: int, target: int) -> int:
    parts = [_as_bytes(part) for part in builders]
    _u32(encoding, "encoding")
    _u32(target, "target")
    if encoding not in _ENCODINGS:
        raise Error(INVALID_ENCODING, "load", message=f"unknown graph encoding {encoding}")
    if target == 3:
        raise Error(UNSUPPORTED_OPERATION, "load",
                    message=f"execution target auto (3) does not exist on the {TARGET} target: "
                            "use CPU, GPU or TPU")
    if target not in _TARGETS:
        raise Error(INVALID_ARGUMENT, "load", message=f"unknown execution target {target}")
    if encoding == 0 and target == 2:
        # OpenVINO has no TPU device; Wasmtime's OpenVINO backend aborts the whole host on
        # this request (`unimplemented!`) instead of returning an error, so refuse it here.
        raise Error(UNSUPPORTED_OPERATION, "load",
                    message="OpenVINO has no TPU execution target (use CPU or GPU)")
    try:
        resource = wit_graph.load(parts, _ENCODINGS[encoding], _TARGETS[target])
    except Err as err:
        raise _host_error("load", err) from None
    return _register(resource, encoding, parts)


def load_by_name(name) -> int:
    try:
        text = name if isinstance(name, str) else _as_bytes(name).decode("utf-8")
    except UnicodeDecodeError as error:
        raise Error(INVALID_ARGUMENT, "load_by_name",
                    message=f"a WIT model name is a string; these bytes are not UTF-8 ({error})")
    try:
        resource = wit_graph.load_by_name(text)
    except Err as err:
        raise _host_error("load_by_name", err) from None
    handle = _new_handle(0)
    _graphs[handle] = _Graph(resource, None)
    return handle


def load_by_name_with_config(name, config) -> int:
    raise _unsupported("load_by_name_with_config", "load_by_name_with_config does not exist")


def init_execution_context(graph: int) -> int:
    entry = _graph(graph, "init_execution_context")
    try:
        resource = entry.resource.init_execution_context()
    except Err as err:
        raise _host_error("init_execution_context", err) from None
    handle = _new_handle(1)
    _contexts[handle] = _Context(resource, entry)
    return handle


def input_name(ctx: _Context, index: int | str, function: str) -> str:
    """The WIT name of input `index` (a name passes through; see the module docstring)."""
    if isinstance(index, str):
        return index
    _u32(index, "index")
    declared = ctx.graph.input_names
    if declared is None:
        return str(index)
    if index >= len(declared):
        raise Error(INVALID_ARGUMENT, function,
                    message=f"input {index} does not exist: the graph declares "
                            f"{len(declared)} input(s) {declared}")
    return declared[index]


def set_input(ctx: int, index: int | str, dims, type: int, data) -> None:  # noqa: A002
    entry = _context(ctx, "set_input")
    name = input_name(entry, index, "set_input")
    dimensions = [_u32(d, "dimension") for d in dims]
    wit_type = _TENSOR_TYPES.get(_u32(type, "tensor type"))
    if wit_type is None:
        raise Error(INVALID_ARGUMENT, "set_input", message=f"unknown tensor type {type}")
    bound = _Input(dimensions, wit_type, _as_bytes(data))
    bound.tensor = wit_tensor.Tensor(dimensions, wit_type, bound.payload)  # crosses now
    previous = entry.inputs.pop(name, None)
    entry.inputs[name] = bound
    if previous is not None and previous.tensor is not None:
        _drop(previous.tensor)  # rebinding an input frees the host's copy of the old tensor


def compute(ctx: int) -> None:
    entry = _context(ctx, "compute")
    inputs = []
    for name, bound in entry.inputs.items():
        if bound.tensor is None:  # consumed by an earlier compute: inputs stay bound, as in witx
            bound.tensor = wit_tensor.Tensor(bound.dims, bound.type, bound.payload)
        inputs.append((name, bound.tensor))
        bound.tensor = None  # `compute` takes ownership of the tensors it is given
    try:
        outputs = entry.resource.compute(inputs)
    except Err as err:
        raise _host_error("compute", err) from None
    for _, old in entry.outputs:
        _drop(old)
    entry.outputs = list(outputs)
    entry.fetched = {}


def _output(entry: _Context, index: int | str, function: str) -> tuple[int, object]:
    if not entry.outputs:
        raise Error(INVALID_ARGUMENT, function, message="no outputs: call compute first")
    if isinstance(index, str):
        for position, (name, tensor) in enumerate(entry.outputs):
            if name == index:
                return position, tensor
        names = [name for name, _ in entry.outputs]
        raise Error(NOT_FOUND, function, message=f"no output named {index!r} (outputs: {names})")
    _u32(index, "index")
    if index >= len(entry.outputs):
        raise Error(INVALID_ARGUMENT, function,
                    message=f"output {index} does not exist: the host returned "
                            f"{len(entry.outputs)} output(s)")
    return index, entry.outputs[index][1]


def get_output(ctx: int, index: int | str, out) -> int:
    entry = _context(ctx, "get_output")
    target = memoryview(out)
    if target.readonly:
        raise TypeError("get_output needs a writable buffer")
    position, tensor = _output(entry, index, "get_output")
    data = entry.fetched.get(position)
    if data is None:
        data = entry.fetched[position] = tensor.data()
    target = target.cast("B")
    if len(data) > len(target):
        raise Error(TOO_LARGE, "get_output", len(data),
                    message=f"output needs {len(data)} bytes, the buffer has {len(target)}")
    target[:len(data)] = data
    return len(data)


def output_info(ctx: int, index: int | str) -> tuple[str, list[int], int | str]:
    """(name, dims, type) of an output of the last compute, as the host reported them.

    The type is the witx/crate-0.6 code, or ``"bf16"`` (WIT only, no witx code).
    """
    entry = _context(ctx, "output_info")
    position, tensor = _output(entry, index, "output_info")
    kind = tensor.ty()
    return entry.outputs[position][0], list(tensor.dimensions()), _TENSOR_CODES.get(kind, "bf16")


def compute_single(ctx: int) -> None:
    raise _unsupported("compute_single", "compute_single does not exist")


def get_output_single(ctx: int, index: int, out) -> int:
    raise _unsupported("get_output_single", "get_output_single does not exist")


def fini_single(ctx: int) -> None:
    raise _unsupported("fini_single", "fini_single does not exist")


def _drop(resource: object) -> None:
    exit_ = getattr(resource, "__exit__", None)
    if exit_ is not None:
        exit_(None, None, None)


def unload(graph: int) -> None:
    entry = _graph(graph, "unload")
    del _graphs[graph]
    _drop(entry.resource)


def finalize_execution_context(ctx: int) -> None:
    entry = _context(ctx, "finalize_execution_context")
    del _contexts[ctx]
    for _, tensor in entry.outputs:
        _drop(tensor)
    for bound in entry.inputs.values():
        if bound.tensor is not None:
            _drop(bound.tensor)
    _drop(entry.resource)

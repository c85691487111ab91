"""Load-time check shared by every backend that reads ONNX: no external data, anywhere.

An ONNX tensor may keep its bytes outside the model, in a file named by its `external_data`
entries (`location` = a path relative to the model's folder — or absolute, or `../…`). The
readers resolve that path on the host: through OpenVINO a guest read any host file, through
ONNX Runtime any file under the folder `wasinn run` was started from. A model a guest hands to
`load` is bytes, with no folder of its own, so external data can never be legitimate here: a
model that declares any is refused with invalid_argument before a reader sees it.

Tensors live in more places than the initializers, and all of them are walked: initializers
and sparse initializers of every graph, tensor-valued attributes (`t`, `tensors`,
`sparse_tensor(s)`, so `Constant` nodes too), subgraph attributes (`g`, `graphs`: If, Loop,
Scan bodies, to any depth), model-local functions (their nodes and attribute defaults) and
training-info graphs.

The model is parsed with the `onnx` package's protobuf classes (the same wire format the
readers parse; protobuf's own nesting limit bounds the depth), without the `onnx.load` helpers,
which would try to read the external files themselves.
"""

from __future__ import annotations

from typing import Any, Iterator

from ..errors import Errno, NnError

_ORT_FORMAT_ID = b"ORTM"   # ONNX Runtime's flatbuffer format: identifier at bytes 4..8


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise NnError(Errno.UNSUPPORTED_OPERATION,
                      f"checking an ONNX model needs the 'onnx' package, which is not installed "
                      f"({error}); install it with: pip install wasinn[onnx]") from None
    return onnx


def _tensors_of_graph(graph: Any, where: str) -> Iterator[tuple[Any, str]]:
    for tensor in graph.initializer:
        yield tensor, f"{where}initializer {tensor.name!r}"
    for sparse in graph.sparse_initializer:
        yield from _tensors_of_sparse(sparse, f"{where}sparse initializer")
    for node in graph.node:
        yield from _tensors_of_node(node, where)


def _tensors_of_sparse(sparse: Any, where: str) -> Iterator[tuple[Any, str]]:
    yield sparse.values, f"{where} {sparse.values.name!r} (values)"
    yield sparse.indices, f"{where} {sparse.values.name!r} (indices)"


def _tensors_of_node(node: Any, where: str) -> Iterator[tuple[Any, str]]:
    label = f"{where}node {node.name or node.op_type!r} ({node.op_type})"
    for attribute in node.attribute:
        yield from _tensors_of_attribute(attribute, f"{label} attribute {attribute.name!r}")


def _tensors_of_attribute(attribute: Any, where: str) -> Iterator[tuple[Any, str]]:
    # Every field is looked at, whatever `type` claims: a reader may look at them too.
    if attribute.HasField("t"):
        yield attribute.t, where
    for tensor in attribute.tensors:
        yield tensor, where
    if attribute.HasField("sparse_tensor"):
        yield from _tensors_of_sparse(attribute.sparse_tensor, where)
    for sparse in attribute.sparse_tensors:
        yield from _tensors_of_sparse(sparse, where)
    if attribute.HasField("g"):
        yield from _tensors_of_graph(attribute.g, f"{where} subgraph: ")
    for graph in attribute.graphs:
        yield from _tensors_of_graph(graph, f"{where} subgraph: ")


def _all_tensors(model: Any) -> Iterator[tuple[Any, str]]:
    yield from _tensors_of_graph(model.graph, "")
    for function in model.functions:
        where = f"function {function.name!r}: "
        for node in function.node:
            yield from _tensors_of_node(node, where)
        for attribute in function.attribute_proto:
            yield from _tensors_of_attribute(attribute, f"{where}attribute default "
                                                        f"{attribute.name!r}")
    for index, info in enumerate(model.training_info):
        yield from _tensors_of_graph(info.initialization, f"training info {index} initialization: ")
        yield from _tensors_of_graph(info.algorithm, f"training info {index} algorithm: ")


def check_onnx_model(data: bytes | memoryview, backend: str) -> None:
    """invalid_argument unless `data` is an ONNX ModelProto whose tensors all hold their own
    bytes (no external data) — for `backend`'s messages."""
    onnx = _onnx()
    if bytes(data[4:8]) == _ORT_FORMAT_ID:
        raise NnError(Errno.INVALID_ARGUMENT,
                      f"{backend}: ONNX Runtime's .ort format is not accepted; "
                      "pass the .onnx model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)                # any buffer: no copy of the model
    except Exception as error:  # noqa: BLE001 - protobuf's DecodeError and friends
        # unparseable: runtime_error, as when the reader itself fails on a corrupt model
        raise NnError(Errno.RUNTIME_ERROR,
                      f"{backend} load failed: not a valid ONNX model ({type(error).__name__}: "
                      f"{str(error).strip() or 'cannot parse'})") from None
    external = onnx.TensorProto.EXTERNAL
    for tensor, where in _all_tensors(model):
        if tensor.data_location == external or len(tensor.external_data):
            location = next((entry.value for entry in tensor.external_data
                             if entry.key == "location"), "")
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"{backend}: the ONNX model keeps tensor data outside the model "
                          f"({where}, external location {location!r}); models loaded from "
                          "bytes must embed their data (onnx.save_model(..., "
                          "save_as_external_data=False))")

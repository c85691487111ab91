"""ONNX external data names host files: refused at `load` by every backend that reads ONNX
(ONNX Runtime, OpenVINO with ONNX bytes, autodetect), wherever in the model it hides."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from host_harness import Guest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

OPENVINO, ONNX, AUTODETECT = 0, 1, 5
OK, INVALID = 0, 1
SECRET = np.array([11.0, 22.0, 33.0, 44.0], np.float32)   # what the host file holds


@pytest.fixture()
def secret_file(tmp_path) -> Path:
    path = tmp_path / "host-secret.bin"
    path.write_bytes(SECRET.tobytes())
    return path


def _external(tensor: TensorProto, location: str, *, flag: bool = True,
              entries: bool = True) -> TensorProto:
    """Turn `tensor` into one whose bytes live in `location` (how onnx writes external data)."""
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    if flag:
        tensor.data_location = TensorProto.EXTERNAL
    if entries:
        for key, value in (("location", location), ("offset", "0"),
                           ("length", str(SECRET.nbytes))):
            tensor.external_data.add(key=key, value=value)
    return tensor


def _const(name: str) -> TensorProto:
    return numpy_helper.from_array(np.zeros(4, np.float32), name)


def _model(nodes, initializers=(), sparse=(), functions=(), inputs=("X",)) -> bytes:
    graph = helper.make_graph(
        nodes, "attack",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in inputs],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])],
        list(initializers), sparse_initializer=list(sparse))
    opsets = [helper.make_opsetid("", 17)]
    if functions:
        opsets.append(helper.make_opsetid("local", 1))
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    model.ir_version = 8
    return model.SerializeToString()


def initializer(location: str) -> bytes:
    return _model([helper.make_node("Add", ["X", "W"], ["Y"])],
                  [_external(_const("W"), location)])


def constant_node(location: str) -> bytes:
    return _model([helper.make_node("Constant", [], ["W"], value=_external(_const("w"), location)),
                   helper.make_node("Add", ["X", "W"], ["Y"])])


def if_subgraph(location: str) -> bytes:
    def branch(name: str, external: bool) -> onnx.GraphProto:
        tensor = _external(_const(name), location) if external else _const(name)
        return helper.make_graph(
            [helper.make_node("Constant", [], [f"{name}_out"], value=tensor)], name, [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [4])])
    condition = numpy_helper.from_array(np.array(True), "cond")
    return _model([helper.make_node("If", ["cond"], ["W"], then_branch=branch("then", True),
                                    else_branch=branch("else", False)),
                   helper.make_node("Add", ["X", "W"], ["Y"])], [condition])


def sparse_initializer(location: str) -> bytes:
    values = _external(numpy_helper.from_array(np.zeros(4, np.float32), "W"), location)
    indices = numpy_helper.from_array(np.arange(4, dtype=np.int64), "W_indices")
    sparse = helper.make_sparse_tensor(values, indices, [4])
    return _model([helper.make_node("Add", ["X", "W"], ["Y"])], sparse=[sparse])


def local_function(location: str) -> bytes:
    function = helper.make_function(
        "local", "AddSecret", ["A"], ["B"],
        [helper.make_node("Constant", [], ["S"], value=_external(_const("s"), location)),
         helper.make_node("Add", ["A", "S"], ["B"])],
        [helper.make_opsetid("", 17)])
    return _model([helper.make_node("AddSecret", ["X"], ["Y"], domain="local")],
                  functions=[function])


def flag_only(location: str) -> bytes:
    return _model([helper.make_node("Add", ["X", "W"], ["Y"])],
                  [_external(_const("W"), location, entries=False)])


def entries_only(location: str) -> bytes:
    return _model([helper.make_node("Add", ["X", "W"], ["Y"])],
                  [_external(_const("W"), location, flag=False)])


ATTACKS: dict[str, Callable[[str], bytes]] = {
    f.__name__: f for f in (initializer, constant_node, if_subgraph, sparse_initializer,
                            local_function, flag_only, entries_only)}


def _load_and_run(model: bytes, encoding: int) -> tuple[int, bytes | None]:
    """(load errno, output bytes when load succeeded and compute ran)."""
    guest = Guest()
    errno, graph = guest.load([model], encoding)
    if errno != OK:
        return errno, None
    errno, ctx = guest.init(graph)
    assert errno == OK
    assert guest.set_input(ctx, 0, [4], 1, np.zeros(4, np.float32).tobytes()) == OK
    if guest.call("compute", ctx) != OK:
        return OK, None
    return OK, guest.get_output(ctx, 0, 64)[1]


@pytest.mark.parametrize("encoding", [ONNX, OPENVINO, AUTODETECT], ids=["onnx", "openvino",
                                                                         "autodetect"])
@pytest.mark.parametrize("attack", ATTACKS)
def test_external_data_is_refused(attack, encoding, secret_file, capfd):
    if encoding == OPENVINO:
        pytest.importorskip("openvino")
    else:
        pytest.importorskip("onnxruntime")
    for location in (str(secret_file), f"../../../..{secret_file}", secret_file.name):
        errno, output = _load_and_run(ATTACKS[attack](location), encoding)
        assert (errno, output) == (INVALID, None), (location, output)
    assert "internal error" not in capfd.readouterr().err


def test_the_refusal_says_where(secret_file):
    from wasinn.nn import Errno, NnError
    from wasinn.nn.backends.onnx_checks import check_onnx_model

    with pytest.raises(NnError) as info:
        check_onnx_model(if_subgraph(str(secret_file)), "onnx")
    assert info.value.errno == Errno.INVALID_ARGUMENT
    assert "node 'If' (If) attribute 'then_branch' subgraph: node" in info.value.message
    assert str(secret_file) in info.value.message
    with pytest.raises(NnError, match="not a valid ONNX model"):
        check_onnx_model(b"\x08\x07\x12\xff\xff\xff", "onnx")
    with pytest.raises(NnError, match=r"\.ort format"):
        check_onnx_model(b"\x10\x00\x00\x00ORTM" + bytes(32), "onnx")


@pytest.mark.parametrize("encoding", [ONNX, OPENVINO, AUTODETECT], ids=["onnx", "openvino",
                                                                         "autodetect"])
def test_embedded_data_still_loads(encoding):
    """The control: the same models with their data inside load and compute."""
    if encoding == OPENVINO:
        pytest.importorskip("openvino")
    else:
        pytest.importorskip("onnxruntime")
    embedded = _model([helper.make_node("Constant", [], ["W"],
                                        value=numpy_helper.from_array(SECRET, "w")),
                       helper.make_node("Add", ["X", "W"], ["Y"])])
    errno, output = _load_and_run(embedded, encoding)
    assert errno == OK
    np.testing.assert_array_equal(np.frombuffer(output, np.float32), SECRET)

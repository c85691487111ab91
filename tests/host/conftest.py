"""Fixtures for the host tests: small real models built on the spot, and a wasinn runner."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from host_harness import run_wasinn


@pytest.fixture(scope="session")
def torch_model_bytes() -> bytes:
    """TorchScript with six inputs of six dtypes and a tuple of outputs (nested)."""
    torch = pytest.importorskip("torch")

    class Multi(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)

        def forward(self, a, b, c, d, e, f):  # f32[2,3] i64[4] f64[3] u8[5] i32[2] f16[2]
            return self.linear(a), (b * 2, c + 0.5), d // 2, e - 1, f * 2

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Multi().eval()), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def linear_bytes() -> bytes:
    """A TorchScript Linear(3 -> 2) with fixed weights, as bytes for `load`."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2).eval()), buffer)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def torch_linear_path(tmp_path_factory) -> Path:
    """A TorchScript Linear(3 -> 2) saved to a file, for --nn-preload."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("torch") / "model.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2).eval()), str(path))
    return path


@pytest.fixture(scope="session")
def openvino_ir(tmp_path_factory) -> tuple[Path, Path]:
    """OpenVINO IR with two inputs (f32 [1,4], i32 [3]) and two outputs, weights in .bin."""
    ov = pytest.importorskip("openvino")
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    a = ops.parameter([1, 4], np.float32, name="a")
    b = ops.parameter([3], np.int32, name="b")
    weights = ops.constant(rng.standard_normal((4, 5)).astype(np.float32))
    out0 = ops.relu(ops.matmul(a, weights, False, False))
    out1 = ops.multiply(b, ops.constant(np.array([3], np.int32)))
    model = ov.Model([out0, out1], [a, b], "two_by_two")
    folder = tmp_path_factory.mktemp("ir")
    ov.save_model(model, str(folder / "m.xml"), compress_to_fp16=False)
    return folder / "m.xml", folder / "m.bin"


@pytest.fixture(scope="session")
def onnx_model_bytes() -> bytes:
    """ONNX: X f32 [2,3] @ W -> Z f32 [2,2]; Y i64 [3] + Y -> Y2; U u8 [4] identity -> U2."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(6, dtype=np.float32).reshape(3, 2) / 10
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Z"]),
         helper.make_node("Add", ["Y", "Y"], ["Y2"]),
         helper.make_node("Identity", ["U"], ["U2"])],
        "multi",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("Y", TensorProto.INT64, [3]),
         helper.make_tensor_value_info("U", TensorProto.UINT8, [4])],
        [helper.make_tensor_value_info("Z", TensorProto.FLOAT, [2, 2]),
         helper.make_tensor_value_info("Y2", TensorProto.INT64, [3]),
         helper.make_tensor_value_info("U2", TensorProto.UINT8, [4])],
        [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture
def wasinn_cli():
    return run_wasinn


@pytest.fixture(scope="session")
def tflite_model_bytes() -> bytes:
    """A TFLite flatbuffer built with LiteRT's own schema: a f32 [2,3] (first dim dynamic) + a -> a2,
    b i32 [4] * b -> b2 (two inputs, two outputs, two dtypes)."""
    flatbuffers = pytest.importorskip("flatbuffers")
    schema = pytest.importorskip("ai_edge_litert.schema_py_generated")

    def tensor(name: str, shape: list[int], kind: int, buffer: int, signature=None):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, kind, buffer
        t.shapeSignature = signature
        return t

    def operator(code: int, inputs: list[int], output: int, options_type: int, options):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = code, inputs, [output]
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    codes = []
    for builtin in (schema.BuiltinOperator.ADD, schema.BuiltinOperator.MUL):
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        codes.append(code)
    graph = schema.SubGraphT()
    graph.tensors = [tensor("a", [2, 3], schema.TensorType.FLOAT32, 1, [-1, 3]),
                     tensor("b", [4], schema.TensorType.INT32, 2),
                     tensor("a2", [2, 3], schema.TensorType.FLOAT32, 3, [-1, 3]),
                     tensor("b2", [4], schema.TensorType.INT32, 4)]
    graph.inputs, graph.outputs = [0, 1], [2, 3]
    graph.operators = [
        operator(0, [0, 0], 2, schema.BuiltinOptions.AddOptions, schema.AddOptionsT()),
        operator(1, [1, 1], 3, schema.BuiltinOptions.MulOptions, schema.MulOptionsT())]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, codes, [graph]
    model.buffers = [schema.BufferT() for _ in range(5)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture
def requests_of():
    """`requests_of(worker)`: a list that gets the op of every request sent to that
    BackendWorker from then on (JSON or binary), for tests that count round trips. The
    worker is given back unwrapped when the test ends."""
    wrapped = []

    def install(worker) -> list[str]:
        ops: list[str] = []
        real_exchange = worker._exchange

        def counting(channel, op, *args, **kwargs):
            ops.append(op)
            return real_exchange(channel, op, *args, **kwargs)

        worker._exchange = counting
        wrapped.append(worker)
        return ops

    yield install
    for worker in wrapped:
        del worker._exchange

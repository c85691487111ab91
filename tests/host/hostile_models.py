"""Hostile models, made on the spot, for the confinement tests (tests/host/test_worker.py).

Each one is what an attacker would hand to `load`: TorchScript that reads and writes host
files, an ONNX model that crashes OpenVINO's reader, an ONNX Loop that never ends, a model
that makes the backend allocate 1 GiB.
"""

from __future__ import annotations

import io

import numpy as np


def torchscript_file_thief(read_path: str, write_path: str) -> bytes:
    """TorchScript whose forward returns the first 16 bytes of `read_path` (aten::from_file)
    and writes its input to `write_path` (aten::save)."""
    import torch

    code = f'''
import torch

class Thief(torch.nn.Module):
    def forward(self, x):
        torch.save(x, {write_path!r})
        return torch.from_file({read_path!r}, shared=False, size=16, dtype=torch.uint8)
'''
    return _script_from_source(code, "Thief")


def torchscript_file_reader(read_path: str) -> bytes:
    """TorchScript that only reads a host file (aten::from_file) and returns its bytes."""
    code = f'''
import torch

class Reader(torch.nn.Module):
    def forward(self, x):
        return torch.from_file({read_path!r}, shared=False, size=16, dtype=torch.uint8)
'''
    return _script_from_source(code, "Reader")


def torchscript_allocator(gib: int) -> bytes:
    """TorchScript that allocates (and touches) `gib` GiB in forward."""
    code = f'''
import torch

class Hog(torch.nn.Module):
    def forward(self, x):
        return torch.ones({gib} * (1 << 28), dtype=torch.float32).sum().reshape(1) + x.sum()
'''
    return _script_from_source(code, "Hog")


def _script_from_source(code: str, name: str) -> bytes:
    """torch.jit.script needs the class's source in a file: write it to a temp module."""
    import importlib.util
    import tempfile
    from pathlib import Path

    import torch

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"hostile_{name.lower()}.py"
        path.write_text(code)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        scripted = torch.jit.script(getattr(module, name)().eval())
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    return buffer.getvalue()


def onnx_conv_one_input() -> bytes:
    """The 67-byte ONNX model of issue 8: one Conv node with a single input (no weights).
    OpenVINO's ONNX reader dereferences the missing second input and dies with SIGSEGV."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Conv", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def onnx_endless_loop(iterations: int = 1 << 40) -> bytes:
    """ONNX: y = x + 1 repeated `iterations` times by a Loop node (runs "forever")."""
    import onnx
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "one"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1])],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trip", "cond", "x"], ["y"], body=body)],
        "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [helper.make_tensor("trip", TensorProto.INT64, [], [iterations]),
         helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def onnx_relu() -> bytes:
    """A harmless ONNX model: y = relu(x), x f32 [1, 3]."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def onnx_conv_net() -> bytes:
    """A small, valid ONNX network for the fuzz to mutate: Conv (with weights) -> Relu ->
    Reshape -> MatMul, x f32 [1, 1, 4, 4] -> y f32 [1, 2]. Its shape and type fields are what
    crashed OpenVINO's ONNX reader when mutated."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(8)
    weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 3, 3], rng.random(18).tolist())
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 8])
    dense = helper.make_tensor("m", TensorProto.FLOAT, [8, 2], rng.random(16).tolist())
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["f"]),
             helper.make_node("MatMul", ["f", "m"], ["y"])]
    graph = helper.make_graph(nodes, "convnet",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              [weights, shape, dense])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()

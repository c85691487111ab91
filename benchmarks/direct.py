"""The same inference called straight on the libraries, with no WASI-NN layer at all.

This is the floor the guest is measured against for per-inference time: numpy arrays handed to
OpenVINO's compiled model or to a TorchScript module in this very process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


def openvino_load(xml: Path) -> object:
    """Read the IR files and compile them for the CPU, as the host's backend does at `load`."""
    import openvino as ov

    core = ov.Core()
    weights = xml.with_suffix(".bin").read_bytes()
    model = core.read_model(xml.read_text(), ov.Tensor(np.frombuffer(weights, np.uint8).copy()))
    return core.compile_model(model, "CPU")


def openvino_infer(xml: Path, tensor: np.ndarray) -> Callable[[], object]:
    """One OpenVINO inference (set input, infer, read output) as a callable."""
    request = openvino_load(xml).create_infer_request()

    def infer() -> object:
        request.infer({0: tensor})
        return request.get_output_tensor(0).data.copy()

    return infer


def torch_load(model_path: Path) -> object:
    """Read the TorchScript file's bytes and load them, as the host's backend does at `load`."""
    import io

    import torch

    return torch.jit.load(io.BytesIO(model_path.read_bytes())).eval()


def torch_infer(model_path: Path, tensor: np.ndarray) -> Callable[[], object]:
    """One TorchScript inference as a callable (no autograd, like the host's backend)."""
    import torch

    model = torch_load(model_path)
    data = torch.from_numpy(tensor)

    def infer() -> object:
        with torch.no_grad():
            return model(data).numpy().copy()

    return infer


def tflite_infer(model_path: Path, tensor: np.ndarray) -> Callable[[], object]:
    """One TensorFlow Lite inference (LiteRT interpreter) as a callable."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_path.read_bytes())
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def infer() -> object:
        interpreter.set_tensor(input_index, tensor)
        interpreter.invoke()
        return interpreter.get_tensor(output_index).copy()

    return infer


def tflite_load(model_path: Path) -> object:
    """Read the .tflite bytes and build an interpreter with its tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_path.read_bytes())
    interpreter.allocate_tensors()
    return interpreter

"""ONNX backend through ONNX Runtime; inputs and outputs by index in the model's order."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import Errno, NnError
from ..types import ExecutionTarget
from .base import (Backend, Context, Graph, check_builders, check_index, model_bytes,
                   unsupported_target)
from .onnx_checks import check_onnx_model

_ORT_TYPES = {
    "tensor(float16)": "float16", "tensor(float)": "float32", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int32)": "int32", "tensor(int64)": "int64",
}


class OnnxContext(Context):
    def __init__(self, graph: "OnnxGraph") -> None:
        self._graph = graph
        self._feeds: dict[str, np.ndarray] = {}
        self._outputs: list[np.ndarray] = []

    def set_input(self, index: int, array: np.ndarray) -> None:
        inputs = self._graph.inputs
        check_index(index, len(inputs), "input")
        expected = _ORT_TYPES.get(inputs[index].type)
        if expected is not None and expected != array.dtype.name:
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"input {index} ({inputs[index].name}) of the model is {expected}, "
                          f"the tensor is {array.dtype.name}")
        self._feeds[inputs[index].name] = array

    def compute(self) -> None:
        missing = [i.name for i in self._graph.inputs if i.name not in self._feeds]
        if missing:
            raise NnError(Errno.INVALID_ARGUMENT, f"inputs not set: {missing}")
        self._outputs = self._graph.session.run(None, self._feeds)

    def get_output(self, index: int) -> np.ndarray:
        check_index(index, len(self._outputs), "output")
        return np.ascontiguousarray(self._outputs[index])


class OnnxGraph(Graph):
    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = session.get_inputs()

    def init_execution_context(self) -> Context:
        return OnnxContext(self)


class OnnxBackend(Backend):
    name = "onnx"
    extra = "onnx"
    module = "onnxruntime"

    def load(self, builders: Sequence[memoryview], target: ExecutionTarget) -> Graph:
        check_builders(builders, 1, self.name, "an .onnx model")
        ort = self.library()
        available = ort.get_available_providers()
        if target is ExecutionTarget.GPU:
            if "CUDAExecutionProvider" not in available:
                raise unsupported_target(self.name, target, ", ".join(available))
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        elif target is ExecutionTarget.TPU:
            raise unsupported_target(self.name, target, ", ".join(available))
        else:
            providers = ["CPUExecutionProvider"]
        data = model_bytes(builders[0])
        check_onnx_model(data, self.name)     # no external data: it would name host files
        options = ort.SessionOptions()
        # Only ONNX protobuf: never let ONNX Runtime pick another format from the bytes.
        options.add_session_config_entry("session.load_model_format", "ONNX")
        # InferenceSession takes bytes (or a path) and parses them during the call.
        return OnnxGraph(ort.InferenceSession(data, sess_options=options, providers=providers))


BACKEND = OnnxBackend()

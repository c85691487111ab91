"""TensorFlow Lite backend through ai-edge-litert (the successor of tflite_runtime).

The interpreter owns its tensors, so `set_input` copies into them (LiteRT's API has no way to
bind outside memory safely). An input shape that differs from the model's is accepted where
the model's signature allows it (-1 dims), by resizing; otherwise it is invalid_argument.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np

from ..errors import Errno, NnError
from ..types import ExecutionTarget
from .base import (Backend, Context, Graph, check_builders, check_index, model_bytes,
                   unsupported_target)


class TfLiteContext(Context):
    def __init__(self, graph: "TfLiteGraph") -> None:
        self._graph = graph
        self._reset()

    def _reset(self) -> None:
        """A fresh interpreter (also the recovery after a failed resize, which leaves the old
        one unusable)."""
        self._interpreter = self._graph.take_interpreter()
        self._interpreter.allocate_tensors()
        self._refresh()
        #: inputs set on this interpreter (its arena is not zeroed: the others hold old heap)
        self._set: set[int] = set()

    def _refresh(self) -> None:
        self._inputs = self._interpreter.get_input_details()
        self._outputs = self._interpreter.get_output_details()

    def set_input(self, index: int, array: np.ndarray) -> None:
        check_index(index, len(self._inputs), "input")
        detail = self._inputs[index]
        if np.dtype(detail["dtype"]) != array.dtype:
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"input {index} of the model is {np.dtype(detail['dtype']).name}, "
                          f"the tensor is {array.dtype.name}")
        if tuple(detail["shape"]) != array.shape:
            self._resize(index, detail, array.shape)
        self._interpreter.set_tensor(detail["index"], array)
        self._set.add(index)

    def _resize(self, index: int, detail: dict, shape: tuple[int, ...]) -> None:
        """Resize input `index` when the model allows it (dims of -1 in its signature)."""
        signature = [int(d) for d in detail.get("shape_signature", detail["shape"])]
        fits = len(signature) == len(shape) and all(
            want == -1 or want == got for want, got in zip(signature, shape))
        if not fits:
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"input {index} of the model has shape {signature} (-1: any), "
                          f"the tensor {list(shape)}")
        try:
            self._interpreter.resize_tensor_input(detail["index"], list(shape))
            self._interpreter.allocate_tensors()
        except Exception:
            self._reset()      # inputs set earlier on this context are gone with it
            raise
        self._refresh()
        self._set.clear()      # a new arena: inputs set before the resize must be set again

    def compute(self) -> None:
        if len(self._set) < len(self._inputs):
            missing = [i for i in range(len(self._inputs)) if i not in self._set]
            raise NnError(Errno.INVALID_ARGUMENT, f"compute before set_input of input(s) {missing}")
        self._interpreter.invoke()

    def get_output(self, index: int) -> np.ndarray:
        check_index(index, len(self._outputs), "output")
        return np.ascontiguousarray(self._interpreter.get_tensor(self._outputs[index]["index"]))


class TfLiteGraph(Graph):
    def __init__(self, interpreter_class: Any, model: bytes) -> None:
        self._interpreter_class = interpreter_class
        self._model = model
        self._lock = threading.Lock()
        # Built now so that a corrupt model fails at load, not at init; the first context then
        # takes it instead of building a second one (the usual guest has one context).
        self._spare: Any = self.make_interpreter()

    def make_interpreter(self) -> Any:
        return self._interpreter_class(model_content=self._model)

    def take_interpreter(self) -> Any:
        """The interpreter built at load if no context has it yet, else a new one."""
        with self._lock:
            spare, self._spare = self._spare, None
        return spare if spare is not None else self.make_interpreter()

    def init_execution_context(self) -> Context:
        return TfLiteContext(self)


class TfLiteBackend(Backend):
    name = "tensorflowlite"
    extra = "tflite"
    module = "ai_edge_litert.interpreter"

    def load(self, builders: Sequence[memoryview], target: ExecutionTarget) -> Graph:
        check_builders(builders, 1, self.name, "a .tflite flatbuffer")
        interpreter = self.library()
        if target not in (ExecutionTarget.CPU, ExecutionTarget.AUTO):
            raise unsupported_target(self.name, target, "cpu")
        # LiteRT keeps pointing into model_content (no copy of its own), so these must be bytes
        # that nobody can change: shared when they already are, else copied once.
        return TfLiteGraph(interpreter.Interpreter, model_bytes(builders[0]))


BACKEND = TfLiteBackend()

"""PyTorch backend: TorchScript models (torch.jit.save output, a zip archive).

A TorchScript archive is code: before and after `torch.jit.load` it is checked so that only
tensor math can run (no file, process, network or custom-class ops; see torchscript_checks).

Inputs become tensors over the caller's memory with `torch.frombuffer` (no copy); inference
runs under `torch.inference_mode`. Outputs may be a tensor or (nested) tuples/lists of
tensors; they are flattened in order, so output index i is the i-th tensor.
"""

from __future__ import annotations

import io
import warnings
from typing import Any, Sequence

import numpy as np

from ..errors import Errno, NnError
from ..types import ExecutionTarget
from .base import (Backend, Context, Graph, check_builders, check_index, model_bytes,
                   unsupported_target)
from .torchscript_checks import check_archive, check_module

# torch.frombuffer warns about read-only buffers (native mode passes bytes); we never write.
warnings.filterwarnings("ignore", message="The given buffer is not writable")


def _flatten(value: Any, out: list[Any]) -> list[Any]:
    if isinstance(value, (tuple, list)):
        for item in value:
            _flatten(item, out)
    elif isinstance(value, dict):
        for item in value.values():
            _flatten(item, out)
    else:
        out.append(value)
    return out


class TorchContext(Context):
    def __init__(self, graph: "TorchGraph") -> None:
        self._graph = graph
        self._inputs: dict[int, Any] = {}
        self._outputs: list[Any] = []

    def set_input(self, index: int, array: np.ndarray) -> None:
        torch = self._graph.torch
        if index < 0 or index > 64:
            raise NnError(Errno.INVALID_ARGUMENT, f"input index {index} out of range")
        if array.size == 0:
            tensor = torch.empty(array.shape, dtype=_torch_dtype(torch, array.dtype))
        else:
            tensor = torch.frombuffer(array, dtype=_torch_dtype(torch, array.dtype))
            tensor = tensor.reshape(array.shape)
        if self._graph.device != "cpu":
            tensor = tensor.to(self._graph.device)
        self._inputs[index] = tensor

    def compute(self) -> None:
        count = len(self._inputs)
        missing = [i for i in range(count) if i not in self._inputs]
        if missing:
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"inputs must be set at indices 0..{count - 1}; missing {missing}")
        torch = self._graph.torch
        with torch.inference_mode():
            result = self._graph.module(*(self._inputs[i] for i in range(count)))
        self._outputs = [t for t in _flatten(result, []) if isinstance(t, torch.Tensor)]

    def get_output(self, index: int) -> np.ndarray:
        check_index(index, len(self._outputs), "output")
        return np.ascontiguousarray(self._outputs[index].detach().cpu().numpy())


def _torch_dtype(torch: Any, dtype: np.dtype) -> Any:
    return {
        "float16": torch.float16, "float32": torch.float32, "float64": torch.float64,
        "uint8": torch.uint8, "int32": torch.int32, "int64": torch.int64,
    }[dtype.name]


class TorchGraph(Graph):
    def __init__(self, torch: Any, module: Any, device: str) -> None:
        self.torch = torch
        self.module = module
        self.device = device

    def init_execution_context(self) -> Context:
        return TorchContext(self)


class TorchBackend(Backend):
    name = "pytorch"
    extra = "pytorch"
    module = "torch"

    def load(self, builders: Sequence[memoryview], target: ExecutionTarget) -> Graph:
        check_builders(builders, 1, self.name, "a TorchScript archive")
        torch = self.library()
        if target is ExecutionTarget.GPU:
            if not torch.cuda.is_available():
                raise unsupported_target(self.name, target, "cpu; torch.cuda.is_available() is False")
            device = "cuda"
        elif target is ExecutionTarget.TPU:
            raise unsupported_target(self.name, target, "cpu")
        else:
            device = "cpu"
        # torch.jit.load calls read() on a file-like object and copies the result into its own
        # string; BytesIO over `bytes` shares them, so a native guest's bytes are copied only
        # there (as when calling torch directly), and guest memory once more (model_bytes).
        data = model_bytes(builders[0])
        check_archive(torch, data)        # loading runs __setstate__ code: check before it
        module = torch.jit.load(io.BytesIO(data), map_location=device)
        check_module(torch, module)       # every method's ops, before anything runs
        module.eval()
        return TorchGraph(torch, module, device)


BACKEND = TorchBackend()

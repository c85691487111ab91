"""OpenVINO backend: IR (xml + weights), and the ONNX / TFLite files OpenVINO reads.

Better than WasmEdge's backend in the ways that matter for speed: the model is compiled
once at `load` (WasmEdge recompiles on every set_input), an execution context owns one
infer request that is reused for every compute, and inputs are bound as `ov.Tensor`s that
share the caller's memory (no copy of the input tensor).
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from typing import Any, Sequence

import numpy as np

from ..errors import Errno, NnError
from ..types import ExecutionTarget
from .base import Backend, Context, Graph, check_index, unsupported_target
from .onnx_checks import check_onnx_model

_CORE: Any = None


def _core(ov: Any) -> Any:
    """One OpenVINO Core per process: creating it loads plugins, which is slow."""
    global _CORE
    if _CORE is None:
        _CORE = ov.Core()
    return _CORE


def _shareable(array: np.ndarray) -> np.ndarray:
    """`array` itself, or a writable alias of the same memory when it is read-only.

    `ov.Tensor(..., shared_memory=True)` refuses read-only arrays, yet read-only memory is
    common: `bytes` natively (`file.read()`), mmap'd named models. OpenVINO only reads input
    and weight tensors, so aliasing the memory as writable (no copy) is safe; the caller keeps
    the original object alive for as long as the alias is used.
    """
    if array.flags.writeable or array.nbytes == 0:
        return array
    raw = (ctypes.c_char * array.nbytes).from_address(array.ctypes.data)
    return np.frombuffer(raw, dtype=array.dtype).reshape(array.shape)


def _sniff_suffix(data: memoryview) -> str:
    """File suffix OpenVINO needs to pick a frontend for a single-part model."""
    head = bytes(data[:8])
    if head[4:8] == b"TFL3":
        return ".tflite"
    return ".onnx"


class OpenVinoContext(Context):
    def __init__(self, graph: "OpenVinoGraph") -> None:
        self._graph = graph
        self._request = graph.compiled.create_infer_request()
        #: index -> (address, shape, dtype, tensor, array) of the bound input
        self._inputs: dict[int, tuple[Any, ...]] = {}
        #: index -> the caller's array an output is written into (output_into)
        self._outputs_into: dict[int, np.ndarray] = {}

    def set_input(self, index: int, array: np.ndarray) -> None:
        bound = self._inputs.get(index)
        if bound is not None and bound[4] is array and bound[1] == array.shape:
            return   # the very array bound last time (the worker binding its segment again)
        graph = self._graph
        check_index(index, len(graph.input_types), "input")
        expected = graph.input_types[index]
        if expected is not None and expected != array.dtype:
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"input {index} of the model is {expected.name}, "
                          f"the tensor is {array.dtype.name}")
        key = (array.ctypes.data, array.shape, array.dtype)
        if bound is not None and bound[:3] == key:
            return   # the same memory is already bound (shared): nothing to do
        wanted = graph.input_shapes[index]
        if not wanted.compatible(graph.ov.PartialShape(list(array.shape))):
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"input {index} of the model has shape {wanted}, "
                          f"the tensor {list(array.shape)}")
        # shared_memory=True: OpenVINO reads the caller's buffer during infer (no copy).
        tensor = graph.ov.Tensor(_shareable(array), shared_memory=True)
        self._request.set_input_tensor(index, tensor)
        self._inputs[index] = (*key, tensor, array)

    def compute(self) -> None:
        # An unset input is whatever the infer request's buffer held: uninitialised host heap
        # that get_output would hand to the guest. Every input must be bound first.
        count = len(self._graph.input_types)
        if len(self._inputs) < count:       # keys are checked indices: equal means all set
            missing = [i for i in range(count) if i not in self._inputs]
            raise NnError(Errno.INVALID_ARGUMENT, f"compute before set_input of input(s) {missing}")
        self._request.infer()

    def get_output(self, index: int) -> np.ndarray:
        check_index(index, self._graph.output_count, "output")
        return np.ascontiguousarray(self._request.get_output_tensor(index).data)

    def output_into(self, index: int, array: np.ndarray) -> bool:
        """For an output of static shape: the infer request writes it into `array` (an
        `ov.Tensor` over that memory, as inputs are bound), measured free of cost."""
        graph = self._graph
        if not 0 <= index < graph.output_count:
            return False
        port = graph.compiled.outputs[index]
        if port.get_partial_shape().is_dynamic or _numpy_type(port) != array.dtype:
            return False
        shape = tuple(port.get_shape())
        if not array.flags.c_contiguous or not array.flags.writeable or \
                array.size != int(np.prod(shape, dtype=np.int64)):
            return False
        self._request.set_output_tensor(index, graph.ov.Tensor(array.reshape(shape),
                                                               shared_memory=True))
        self._outputs_into[index] = array     # the memory must outlive the binding
        return True


def _numpy_type(port: Any) -> np.dtype | None:
    """The numpy dtype of a port, or None when OpenVINO leaves it dynamic."""
    element = port.get_element_type()
    if element.is_dynamic():
        return None
    try:
        return np.dtype(element.to_dtype())
    except Exception:  # noqa: BLE001 - types numpy has no name for: let OpenVINO decide
        return None


def _weights(ov: Any, part: memoryview) -> tuple[Any, Any]:
    """An `ov.Tensor` for the weights, and the object that must live as long as the graph.

    OpenVINO's CPU plugin keeps pointing at some constants of the weights tensor after
    `compile_model` (measured: freeing the bytes crashed a later infer; overwriting them changed
    its results). So the memory must be the graph's for the graph's lifetime:
    - read-only memory (`bytes`, the read-only mmap of a named model) cannot change: it is
      shared, no copy, and the graph keeps a reference to it;
    - writable memory (guest memory, a bytearray) may be reused by the guest once `load`
      returns: it is copied once, here, at load time (a memcpy; ~1 ms for 14 MB, next to a
      compile of hundreds of ms).
    """
    array = np.frombuffer(part, dtype=np.uint8)
    if part.readonly:
        return ov.Tensor(_shareable(array), shared_memory=True), part
    owned = array.copy()
    return ov.Tensor(owned, shared_memory=True), owned


class OpenVinoGraph(Graph):
    def __init__(self, ov: Any, compiled: Any, keep_alive: Any = None) -> None:
        self.ov = ov
        self.compiled = compiled
        #: memory the compiled model may still reference (see `_weights`)
        self._keep_alive = keep_alive
        # Port objects are rebuilt by every `compiled.inputs` access: read them once.
        self.input_types = [_numpy_type(port) for port in compiled.inputs]
        self.input_shapes = [port.get_partial_shape() for port in compiled.inputs]
        self.output_count = len(compiled.outputs)

    def init_execution_context(self) -> Context:
        return OpenVinoContext(self)


class OpenVinoBackend(Backend):
    name = "openvino"
    extra = "openvino"
    module = "openvino"

    def _device(self, core: Any, target: ExecutionTarget) -> str:
        devices = list(core.available_devices)
        if target is ExecutionTarget.CPU:
            return "CPU"
        if target is ExecutionTarget.AUTO:
            return "AUTO"
        wanted = {ExecutionTarget.GPU: "GPU", ExecutionTarget.TPU: "NPU"}[target]
        if any(d.split(".")[0] == wanted for d in devices):
            return wanted
        raise unsupported_target(self.name, target, ", ".join(devices) or "none")

    def load(self, builders: Sequence[memoryview], target: ExecutionTarget) -> Graph:
        ov = self.library()
        core = _core(ov)
        device = self._device(core, target)
        keep_alive: Any = None
        if len(builders) == 2:
            xml = bytes(builders[0]).decode("utf-8", errors="replace")
            weights, keep_alive = _weights(ov, builders[1])
            model = core.read_model(xml, weights)
        elif len(builders) == 1 and bytes(builders[0][:64]).lstrip().startswith(b"<"):
            model = core.read_model(bytes(builders[0]).decode("utf-8", errors="replace"),
                                    ov.Tensor(np.zeros(0, np.uint8)))
        elif len(builders) == 1:
            model = self._read_file_model(core, builders[0])
        else:
            raise NnError(Errno.INVALID_ARGUMENT,
                          f"openvino expects 2 model parts (xml, weights) or 1 (ONNX/TFLite/IR "
                          f"without weights), got {len(builders)}")
        compiled = core.compile_model(model, device)
        # The ov.Model is kept too: its constants may be what the compiled model points at.
        return OpenVinoGraph(ov, compiled, (model, keep_alive))

    @staticmethod
    def _read_file_model(core: Any, data: memoryview) -> Any:
        """ONNX/TFLite bytes: OpenVINO's Python API reads these only from a file (load time).

        The file is unlinked right after reading; a mapping OpenVINO made of it stays valid
        (the inode lives while mapped) and the graph keeps the model that owns it.
        """
        suffix = _sniff_suffix(data)
        if suffix == ".onnx":
            # ONNX external data would be read from the host (relative to the temp file, or
            # any absolute path): refused before OpenVINO sees the model.
            check_onnx_model(data, "openvino")
        fd, path = tempfile.mkstemp(suffix=suffix, prefix="wasinn-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return core.read_model(path)
        finally:
            os.unlink(path)


BACKEND = OpenVinoBackend()

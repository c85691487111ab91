"""The ABI's integer codes as `IntEnum`s, mirroring the Rust crate's `GraphEncoding`, ... enums.

They are `IntEnum`s so that they pass straight to the raw layer (which takes plain ints) and
compare equal to the `GRAPH_ENCODING_*`-style constants.
"""

from __future__ import annotations

from enum import IntEnum

from . import _constants as c


class GraphEncoding(IntEnum):
    """The format of a model's bytes: which backend the host hands them to."""

    OPENVINO = c.GRAPH_ENCODING_OPENVINO
    ONNX = c.GRAPH_ENCODING_ONNX
    TENSORFLOW = c.GRAPH_ENCODING_TENSORFLOW
    PYTORCH = c.GRAPH_ENCODING_PYTORCH
    TENSORFLOWLITE = c.GRAPH_ENCODING_TENSORFLOWLITE
    AUTODETECT = c.GRAPH_ENCODING_AUTODETECT
    GGML = c.GRAPH_ENCODING_GGML


class ExecutionTarget(IntEnum):
    """The device a graph should run on (the host may refuse GPU/TPU: unsupported_operation)."""

    CPU = c.EXECUTION_TARGET_CPU
    GPU = c.EXECUTION_TARGET_GPU
    TPU = c.EXECUTION_TARGET_TPU
    AUTO = c.EXECUTION_TARGET_AUTO


class TensorType(IntEnum):
    """The element type of a tensor's bytes (crate 0.6 / WasmEdge >= 0.15 numbering)."""

    F16 = c.TENSOR_TYPE_F16
    F32 = c.TENSOR_TYPE_F32
    F64 = c.TENSOR_TYPE_F64
    U8 = c.TENSOR_TYPE_U8
    I32 = c.TENSOR_TYPE_I32
    I64 = c.TENSOR_TYPE_I64

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return c.TENSOR_TYPE_SIZES[self]


class Errno(IntEnum):
    """What an ABI call returned; every non-zero value becomes a `WasiNnError`."""

    SUCCESS = c.ERRNO_SUCCESS
    INVALID_ARGUMENT = c.ERRNO_INVALID_ARGUMENT
    INVALID_ENCODING = c.ERRNO_INVALID_ENCODING
    MISSING_MEMORY = c.ERRNO_MISSING_MEMORY
    BUSY = c.ERRNO_BUSY
    RUNTIME_ERROR = c.ERRNO_RUNTIME_ERROR
    UNSUPPORTED_OPERATION = c.ERRNO_UNSUPPORTED_OPERATION
    TOO_LARGE = c.ERRNO_TOO_LARGE
    NOT_FOUND = c.ERRNO_NOT_FOUND
    END_OF_SEQUENCE = c.ERRNO_END_OF_SEQUENCE
    CONTEXT_FULL = c.ERRNO_CONTEXT_FULL
    PROMPT_TOO_LONG = c.ERRNO_PROMPT_TOO_LONG
    MODEL_NOT_FOUND = c.ERRNO_MODEL_NOT_FOUND

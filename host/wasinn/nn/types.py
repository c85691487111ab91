"""The enums of the ABI and the tensor-type disambiguation between its two numberings.

Numbering follows WasmEdge (see ARCHITECTURE §2). Two tensor-type numberings are in use by
real modules: the wasi-nn crate 0.6 (f16 0, f32 1, f64 2, u8 3, i32 4, i64 5) and the older
crate 0.1–0.5 (f16 0, f32 1, u8 2, i32 3). The codes that conflict (2 and 3) differ in element
size, so the byte length of the data decides which one a call meant.
"""

from __future__ import annotations

import math
from enum import IntEnum

from .errors import Errno, NnError


class GraphEncoding(IntEnum):
    """Graph encodings, WasmEdge numbering (WAMR swaps 5 and 6; we follow WasmEdge)."""

    OPENVINO = 0
    ONNX = 1
    TENSORFLOW = 2
    PYTORCH = 3
    TENSORFLOWLITE = 4
    AUTODETECT = 5
    GGML = 6


class ExecutionTarget(IntEnum):
    """Execution targets, WasmEdge numbering."""

    CPU = 0
    GPU = 1
    TPU = 2
    AUTO = 3


class TensorType(IntEnum):
    """Tensor element types, crate 0.6 numbering — the one wasinn uses internally."""

    F16 = 0
    F32 = 1
    F64 = 2
    U8 = 3
    I32 = 4
    I64 = 5


# Plain strings, not numpy dtypes: this module is imported at start-up and numpy is not (see
# `wasinn.nn.core`); the numpy-backed code turns these into dtypes once, on first use.
DTYPE_NAMES: dict[TensorType, str] = {
    TensorType.F16: "<f2",
    TensorType.F32: "<f4",
    TensorType.F64: "<f8",
    TensorType.U8: "u1",
    TensorType.I32: "<i4",
    TensorType.I64: "<i8",
}

#: bytes per element, which is what tells the two numberings' codes 2 and 3 apart
ITEM_SIZES: dict[TensorType, int] = {
    TensorType.F16: 2, TensorType.F32: 4, TensorType.F64: 8,
    TensorType.U8: 1, TensorType.I32: 4, TensorType.I64: 8,
}

# Wire code -> candidate types, crate 0.6 first (the numbering wasinn's own guests use).
_CANDIDATES: dict[int, tuple[TensorType, ...]] = {
    0: (TensorType.F16,),
    1: (TensorType.F32,),
    2: (TensorType.F64, TensorType.U8),   # 0.6: f64, 0.1–0.5: u8
    3: (TensorType.U8, TensorType.I32),   # 0.6: u8,  0.1–0.5: i32
    4: (TensorType.I32,),
    5: (TensorType.I64,),
}


def element_count(dims: list[int]) -> int:
    """Number of elements of a tensor with these dimensions (1 for a scalar, [])."""
    return math.prod(dims)


def resolve_tensor_type(code: int, dims: list[int], data_len: int) -> TensorType:
    """Pick the tensor type a (code, dims, data_len) triple means, in either numbering.

    Raises invalid_argument when the code is unknown or when no candidate's element size
    matches `data_len ÷ elements`.
    """
    candidates = _CANDIDATES.get(code)
    if candidates is None:
        raise NnError(Errno.INVALID_ARGUMENT, f"unknown tensor type {code}")
    elements = element_count(dims)
    for candidate in candidates:
        if elements * ITEM_SIZES[candidate] == data_len:
            return candidate
    sizes = " or ".join(
        f"{c.name.lower()} needs {elements * ITEM_SIZES[c]}" for c in candidates)
    raise NnError(Errno.INVALID_ARGUMENT,
                  f"tensor data is {data_len} bytes but dims {list(dims)} with type code {code} "
                  f"({sizes} bytes)")


def parse_encoding(code: int) -> GraphEncoding:
    """Validate an encoding value from the wire (invalid_encoding when unknown)."""
    try:
        return GraphEncoding(code)
    except ValueError:
        raise NnError(Errno.INVALID_ENCODING, f"unknown graph encoding {code}") from None


def parse_target(code: int) -> ExecutionTarget:
    """Validate an execution target from the wire (invalid_argument when unknown)."""
    try:
        return ExecutionTarget(code)
    except ValueError:
        raise NnError(Errno.INVALID_ARGUMENT, f"unknown execution target {code}") from None

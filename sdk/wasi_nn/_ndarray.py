"""numpy interop, used only when the caller brings numpy (it is never imported otherwise).

An ndarray argument proves numpy is already loaded, so `sys.modules` gives it for free; an
ndarray *result* is asked for explicitly, and numpy is imported then.  The import is dynamic
on purpose: `wasinn build` must not see it, or every guest would carry numpy.
"""

from __future__ import annotations

import sys

from ._enums import TensorType

# numpy dtype names -> tensor types (the ABI's six element types).
_TENSOR_TYPES = {
    "float16": TensorType.F16, "float32": TensorType.F32, "float64": TensorType.F64,
    "uint8": TensorType.U8, "int32": TensorType.I32, "int64": TensorType.I64,
}
_DTYPES = {tensor_type: name for name, tensor_type in _TENSOR_TYPES.items()}


def is_ndarray(value) -> bool:
    """True for a numpy ndarray, without importing numpy."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def tensor_of(array) -> tuple[TensorType, list[int], object]:
    """(tensor type, dims, C-contiguous little-endian data) for an ndarray input.

    A C-contiguous array is passed as is (no copy); a strided view (e.g. a transpose) is made
    contiguous once, as the host needs the elements in row-major order.
    """
    numpy = sys.modules["numpy"]
    dtype = array.dtype
    tensor_type = _TENSOR_TYPES.get(dtype.name)
    if tensor_type is None:
        raise TypeError(f"no wasi-nn tensor type for dtype {dtype}; use one of "
                        f"{', '.join(_TENSOR_TYPES)}")
    if dtype.byteorder == ">":
        array = array.astype(dtype.newbyteorder("<"))
    if array.ndim == 0:
        raise ValueError("a wasi-nn tensor needs at least one dimension")
    return tensor_type, [int(n) for n in array.shape], numpy.ascontiguousarray(array)


def numpy_module():
    try:
        return __import__("numpy")
    except ImportError:
        raise ImportError("an ndarray result needs numpy: in a guest, import numpy in your "
                          "program so that `wasinn build` picks the numpy runtime") from None


def as_ndarray(buffer, shape, dtype):
    """A view of `buffer` (no copy) as an ndarray of `dtype` (a TensorType or numpy dtype)."""
    numpy = numpy_module()
    if isinstance(dtype, int) and not isinstance(dtype, bool):
        try:
            dtype = _DTYPES[TensorType(dtype)]
        except (ValueError, KeyError):
            raise ValueError(f"unknown tensor type {dtype}") from None
    result = numpy.frombuffer(buffer, dtype=numpy.dtype(dtype).newbyteorder("<"))
    if shape is not None:
        result = result.reshape(shape)  # ValueError if the element count does not match
    return result


def byte_size(shape, dtype) -> int | None:
    """Bytes of an array of `shape` and `dtype` (as :func:`as_ndarray` reads them), or None
    when that cannot be told (no shape, an unknown dtype, a dimension that is not a count):
    get_output sizes its first read with it instead of probing the host with a small buffer."""
    if shape is None:
        return None
    try:
        numpy = numpy_module()
        if isinstance(dtype, int) and not isinstance(dtype, bool):
            dtype = _DTYPES[TensorType(dtype)]
        size = numpy.dtype(dtype).itemsize
        for n in shape:
            if not isinstance(n, int) and not isinstance(n, numpy.integer) or n < 0:
                return None
            size *= int(n)
    except (TypeError, ValueError, KeyError, ImportError):
        return None
    return size

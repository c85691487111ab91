"""Backends by graph encoding. Each backend lives in its own module, imported on first use,
so `wasinn run` never pays for (or needs) a library the guest does not use.

Adding a backend: write one module with a `BACKEND` object (see `base.py`) and add its
encoding here.
"""

from __future__ import annotations

import importlib

from ..errors import Errno, NnError
from ..types import GraphEncoding
from .base import Backend, Context, Graph

_MODULES: dict[GraphEncoding, str] = {
    GraphEncoding.OPENVINO: "openvino",
    GraphEncoding.ONNX: "onnx",
    GraphEncoding.PYTORCH: "pytorch",
    GraphEncoding.TENSORFLOWLITE: "tflite",
    GraphEncoding.AUTODETECT: "autodetect",
    GraphEncoding.GGML: "ggml",
}


def backend_for(encoding: GraphEncoding) -> Backend:
    """The backend for `encoding`.

    Encodings the ABI defines but wasinn has no backend for (TensorFlow) are
    unsupported_operation with a reason; values outside the ABI never get here (the caller
    reports them as invalid_encoding).
    """
    module = _MODULES.get(encoding)
    if module is None:
        reason = {
            GraphEncoding.TENSORFLOW: "TensorFlow SavedModels are not supported; convert the "
                                      "model to TFLite or ONNX",
        }.get(encoding, f"no backend for encoding {encoding}")
        raise NnError(Errno.UNSUPPORTED_OPERATION, reason)
    return importlib.import_module(f"{__name__}.{module}").BACKEND


__all__ = ["Backend", "Context", "Graph", "backend_for"]

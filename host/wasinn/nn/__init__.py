"""The host core of wasi-nn: handle tables, enums, errors, named models and backends.

Shared by the wasm ABI glue (`wasinn.abi`) and native mode (`wasinn.native.raw`).
"""

from .core import WasiNn
from .errors import Errno, NnError, VALID_ERRNOS, errno_name
from .registry import ModelRegistry, NamedModel, PreloadError, parse_preload
from .types import ExecutionTarget, GraphEncoding, TensorType, resolve_tensor_type

__all__ = [
    "WasiNn", "Errno", "NnError", "VALID_ERRNOS", "errno_name", "ModelRegistry", "NamedModel",
    "PreloadError", "parse_preload", "ExecutionTarget", "GraphEncoding", "TensorType",
    "resolve_tensor_type",
]

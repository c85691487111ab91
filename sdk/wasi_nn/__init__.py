"""wasi_nn: the WASI-NN guest SDK for Python.

WASI-NN lets a WebAssembly program run neural-network inference on the host's ML backends
(OpenVINO, PyTorch, TensorFlow Lite, ONNX, ...): the guest hands over model bytes and tensors,
the host loads and computes. This package is the guest side, over the `wasi_ephemeral_nn` ABI.
It runs inside a wasinn-built module (on `_wasi_nn`), inside a component built with
`wasinn build --component` (on `wasi_nn._component_raw`, over WIT `wasi:nn`) and under plain
CPython (on `wasinn.native.raw`), unchanged.

Three levels, lowest first:

* the Rust crate's low-level API, for line-by-line ports: `load`, `init_execution_context`,
  `set_input(ctx, i, Tensor(dims, TENSOR_TYPE_F32, data))`, `compute`, `get_output`, the
  `GRAPH_ENCODING_*` / `EXECUTION_TARGET_*` / `TENSOR_TYPE_*` / `ERRNO_*` constants;
* the Pythonic API: `GraphBuilder(GraphEncoding.OPENVINO, ExecutionTarget.CPU)
  .build_from_files([xml, bin])` gives a `Graph`; `graph.init_execution_context()` a
  `GraphExecutionContext`; both are context managers; failures raise `WasiNnError`;
* helpers, imported on first use: `image_to_tensor`, `decode_image`, `resize`
  (from `wasi_nn.image`), `sort_results`, `top_k`, `softmax`, `format_results` (`wasi_nn.results`),
  `imagenet_labels` (`wasi_nn.labels`), `exit_now` (exit without interpreter teardown).
"""

from __future__ import annotations

from ._constants import *  # noqa: F403 - the crate's constants are part of the API
from ._context import GraphExecutionContext
from ._enums import Errno, ExecutionTarget, GraphEncoding, TensorType
from ._errors import WasiNnError
from ._graph import Graph, GraphBuilder
from ._lowlevel import (
    compute,
    compute_single,
    finalize_execution_context,
    fini_single,
    get_output,
    get_output_single,
    init_execution_context,
    load,
    load_by_name,
    load_by_name_with_config,
    output_info,
    set_input,
    unload,
)
from ._raw import RAW_NAME as raw_layer
from ._tensor import Tensor

__version__ = "0.1.0"

if raw_layer == "_wasi_nn":
    from . import _file_hint

    _file_hint.install()

# Helpers are imported lazily (PEP 562): start-up inside wasm only pays for what a guest uses.
_LAZY = {
    "image_to_tensor": "image", "decode_image": "image", "resize": "image", "Image": "image",
    "sort_results": "results", "top_k": "results", "format_results": "results",
    "softmax": "results",
    "imagenet_labels": "labels",
    "exit_now": "_exit",
    "image": None, "results": None, "labels": None, "llm": None,
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module_name = _LAZY[name] or name
        module = importlib.import_module(f"{__name__}.{module_name}")
        value = module if _LAZY[name] is None else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

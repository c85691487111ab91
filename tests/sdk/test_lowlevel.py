"""The low-level, crate-0.6-shaped API against the real native host and real backends."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

import wasi_nn
from wasi_nn import Errno, Tensor, WasiNnError

from .conftest import SHAPE, reference

OUT_BYTES = int(np.prod(SHAPE)) * 4


def test_constants_match_the_abi():
    assert [wasi_nn.GRAPH_ENCODING_OPENVINO, wasi_nn.GRAPH_ENCODING_ONNX,
            wasi_nn.GRAPH_ENCODING_TENSORFLOW, wasi_nn.GRAPH_ENCODING_PYTORCH,
            wasi_nn.GRAPH_ENCODING_TENSORFLOWLITE, wasi_nn.GRAPH_ENCODING_AUTODETECT,
            wasi_nn.GRAPH_ENCODING_GGML] == list(range(7))
    assert [wasi_nn.EXECUTION_TARGET_CPU, wasi_nn.EXECUTION_TARGET_GPU,
            wasi_nn.EXECUTION_TARGET_TPU, wasi_nn.EXECUTION_TARGET_AUTO] == list(range(4))
    assert [wasi_nn.TENSOR_TYPE_F16, wasi_nn.TENSOR_TYPE_F32, wasi_nn.TENSOR_TYPE_F64,
            wasi_nn.TENSOR_TYPE_U8, wasi_nn.TENSOR_TYPE_I32, wasi_nn.TENSOR_TYPE_I64] == list(range(6))
    assert [wasi_nn.ERRNO_SUCCESS, wasi_nn.ERRNO_INVALID_ARGUMENT, wasi_nn.ERRNO_INVALID_ENCODING,
            wasi_nn.ERRNO_MISSING_MEMORY, wasi_nn.ERRNO_BUSY, wasi_nn.ERRNO_RUNTIME_ERROR,
            wasi_nn.ERRNO_UNSUPPORTED_OPERATION, wasi_nn.ERRNO_TOO_LARGE,
            wasi_nn.ERRNO_NOT_FOUND] == list(range(9))
    assert [wasi_nn.ERRNO_END_OF_SEQUENCE, wasi_nn.ERRNO_CONTEXT_FULL,
            wasi_nn.ERRNO_PROMPT_TOO_LONG, wasi_nn.ERRNO_MODEL_NOT_FOUND] == [100, 101, 102, 103]
    # the enums are the same numbers
    assert wasi_nn.GraphEncoding.PYTORCH == wasi_nn.GRAPH_ENCODING_PYTORCH
    assert wasi_nn.TensorType.I64 == wasi_nn.TENSOR_TYPE_I64 and wasi_nn.TensorType.F16.itemsize == 2
    assert wasi_nn.Errno.MODEL_NOT_FOUND == 103


def test_tensor_is_a_small_value_type():
    data = bytearray(8)
    tensor = Tensor([1, 2], wasi_nn.TENSOR_TYPE_F32, data)
    assert tensor.data is data  # kept, not copied
    assert tensor == Tensor((1, 2), wasi_nn.TensorType.F32, bytes(8))
    assert tensor != Tensor([2, 1], wasi_nn.TENSOR_TYPE_F32, data)
    assert "8 bytes" in repr(tensor)


def _run(graph: int, x: np.ndarray, data) -> np.ndarray:
    ctx = wasi_nn.init_execution_context(graph)
    wasi_nn.set_input(ctx, 0, Tensor(list(x.shape), wasi_nn.TENSOR_TYPE_F32, data))
    wasi_nn.compute(ctx)
    out = bytearray(OUT_BYTES)
    assert wasi_nn.get_output(ctx, 0, out) == OUT_BYTES
    wasi_nn.finalize_execution_context(ctx)
    return np.frombuffer(out, dtype=np.float32).reshape(x.shape)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "array"])
def test_pytorch_line_by_line_like_the_rust_seed(raw, host, torchscript_model, input_tensor, kind):
    model = torchscript_model.read_bytes()
    graph = wasi_nn.load([model], wasi_nn.GRAPH_ENCODING_PYTORCH, wasi_nn.EXECUTION_TARGET_CPU)
    assert isinstance(graph, int) and host.live_graphs == 1
    data = {"bytes": input_tensor.tobytes(), "bytearray": bytearray(input_tensor.tobytes()),
            "memoryview": memoryview(input_tensor), "array": array("f", input_tensor.ravel())}[kind]
    np.testing.assert_array_equal(_run(graph, input_tensor, data), reference(input_tensor))
    wasi_nn.unload(graph)
    assert host.live_graphs == 0 and host.live_contexts == 0


def test_openvino_xml_and_weights(raw, host, openvino_model, input_tensor):
    xml, weights = openvino_model
    graph = wasi_nn.load([bytearray(xml.read_bytes()), bytearray(weights.read_bytes())],
                         wasi_nn.GRAPH_ENCODING_OPENVINO, wasi_nn.EXECUTION_TARGET_CPU)
    np.testing.assert_array_equal(_run(graph, input_tensor, bytearray(input_tensor.tobytes())),
                                  reference(input_tensor))
    wasi_nn.unload(graph)


def test_openvino_with_read_only_bytes_like_the_seed(raw, openvino_model, input_tensor):
    """What a line-by-line port does natively: `file.read()` gives bytes, which are read-only."""
    xml, weights = openvino_model
    graph = wasi_nn.load([xml.read_bytes(), weights.read_bytes()],
                         wasi_nn.GRAPH_ENCODING_OPENVINO, wasi_nn.EXECUTION_TARGET_CPU)
    np.testing.assert_array_equal(_run(graph, input_tensor, input_tensor.tobytes()),
                                  reference(input_tensor))


def test_load_by_name_and_with_config(raw, torchscript_model, input_tensor, monkeypatch):
    from wasinn.nn import ModelRegistry

    raw.configure(ModelRegistry.from_specs([f"tiny:PyTorch:CPU:{torchscript_model}"]))
    graph = wasi_nn.load_by_name("tiny")
    np.testing.assert_array_equal(_run(graph, input_tensor, input_tensor.tobytes()),
                                  reference(input_tensor))
    graph2 = wasi_nn.load_by_name_with_config(b"tiny", '{"n-gpu-layers": 0}')
    assert graph2 != graph
    with pytest.raises(WasiNnError) as caught:
        wasi_nn.load_by_name_with_config("tiny", "{not json")
    assert caught.value.errno == Errno.INVALID_ARGUMENT


def test_get_output_too_small_reports_the_size_needed(raw, torchscript_model, input_tensor):
    graph = wasi_nn.load([torchscript_model.read_bytes()], wasi_nn.GRAPH_ENCODING_PYTORCH,
                         wasi_nn.EXECUTION_TARGET_CPU)
    ctx = wasi_nn.init_execution_context(graph)
    wasi_nn.set_input(ctx, 0, Tensor(list(SHAPE), wasi_nn.TENSOR_TYPE_F32, input_tensor.tobytes()))
    wasi_nn.compute(ctx)
    with pytest.raises(WasiNnError) as caught:
        wasi_nn.get_output(ctx, 0, bytearray(16))
    error = caught.value
    assert error.errno == Errno.TOO_LARGE and error.name == "too_large"
    assert error.needed == OUT_BYTES and error.function == "get_output"
    assert str(error).startswith("get_output failed: too_large (7)")
    # the streaming extensions work on a whole-output backend too
    wasi_nn.compute_single(ctx)
    out = bytearray(OUT_BYTES)
    assert wasi_nn.get_output_single(ctx, 0, out) == OUT_BYTES
    wasi_nn.fini_single(ctx)


# -- every error path of the low-level API raises WasiNnError with the right errno ----------

def _ready_context(torchscript_model) -> int:
    graph = wasi_nn.load([torchscript_model.read_bytes()], wasi_nn.GRAPH_ENCODING_PYTORCH,
                         wasi_nn.EXECUTION_TARGET_CPU)
    return wasi_nn.init_execution_context(graph)


ERROR_CASES = {
    "load: garbage model": (lambda m: wasi_nn.load([b"not a model"], wasi_nn.GRAPH_ENCODING_PYTORCH,
                                                   wasi_nn.EXECUTION_TARGET_CPU),
                            "load", Errno.RUNTIME_ERROR),
    "load: unknown encoding": (lambda m: wasi_nn.load([b"x"], 42, wasi_nn.EXECUTION_TARGET_CPU),
                               "load", Errno.INVALID_ENCODING),
    "load: unknown target": (lambda m: wasi_nn.load([b"x"], wasi_nn.GRAPH_ENCODING_PYTORCH, 9),
                             "load", Errno.INVALID_ARGUMENT),
    "load_by_name: unknown": (lambda m: wasi_nn.load_by_name("nobody"), "load_by_name",
                              Errno.NOT_FOUND),
    "init: unknown graph": (lambda m: wasi_nn.init_execution_context(999),
                            "init_execution_context", Errno.INVALID_ARGUMENT),
    "set_input: unknown context": (lambda m: wasi_nn.set_input(
        999, 0, Tensor([1], wasi_nn.TENSOR_TYPE_F32, bytes(4))), "set_input", Errno.INVALID_ARGUMENT),
    "set_input: size mismatch": (lambda m: wasi_nn.set_input(
        _ready_context(m), 0, Tensor(list(SHAPE), wasi_nn.TENSOR_TYPE_F32, bytes(12))),
        "set_input", Errno.INVALID_ARGUMENT),
    "compute: unknown context": (lambda m: wasi_nn.compute(999), "compute", Errno.INVALID_ARGUMENT),
    "compute: no input bound": (lambda m: wasi_nn.compute(_ready_context(m)), "compute",
                                Errno.RUNTIME_ERROR),
    "get_output: before compute": (lambda m: wasi_nn.get_output(_ready_context(m), 0, bytearray(4)),
                                   "get_output", Errno.INVALID_ARGUMENT),
    "get_output: unknown context": (lambda m: wasi_nn.get_output(999, 0, bytearray(4)),
                                    "get_output", Errno.INVALID_ARGUMENT),
    "compute_single: unknown context": (lambda m: wasi_nn.compute_single(999), "compute_single",
                                        Errno.INVALID_ARGUMENT),
    "get_output_single: unknown": (lambda m: wasi_nn.get_output_single(999, 0, bytearray(4)),
                                   "get_output_single", Errno.INVALID_ARGUMENT),
    "fini_single: unknown context": (lambda m: wasi_nn.fini_single(999), "fini_single",
                                     Errno.INVALID_ARGUMENT),
    "unload: unknown graph": (lambda m: wasi_nn.unload(999), "unload", Errno.INVALID_ARGUMENT),
    "finalize: unknown context": (lambda m: wasi_nn.finalize_execution_context(999),
                                  "finalize_execution_context", Errno.INVALID_ARGUMENT),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_error_paths_raise_wasi_nn_error(raw, torchscript_model, case):
    call, function, errno = ERROR_CASES[case]
    with pytest.raises(WasiNnError) as caught:
        call(torchscript_model)
    error = caught.value
    assert error.errno == errno, str(error)
    assert isinstance(error.errno, Errno)
    assert error.name == errno.name.lower()
    assert error.function == function
    assert str(error).startswith(f"{function} failed: {error.name} ({int(errno)})")


def test_read_only_output_buffer_is_refused_clearly(raw, torchscript_model, input_tensor):
    """Not an ABI path: both raw layers refuse it before any host call, with TypeError."""
    ctx = _ready_context(torchscript_model)
    wasi_nn.set_input(ctx, 0, Tensor(list(SHAPE), wasi_nn.TENSOR_TYPE_F32, input_tensor.tobytes()))
    wasi_nn.compute(ctx)
    with pytest.raises(TypeError) as caught:
        wasi_nn.get_output(ctx, 0, bytes(OUT_BYTES))
    assert "read-only" in str(caught.value) or "writable" in str(caught.value)

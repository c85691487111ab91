"""The Pythonic API (GraphBuilder, Graph, GraphExecutionContext) against the real native host."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

import wasi_nn
from wasi_nn import Errno, ExecutionTarget, GraphBuilder, GraphEncoding, TensorType, WasiNnError

from .conftest import SHAPE, reference

OUT_BYTES = int(np.prod(SHAPE)) * 4


@pytest.fixture()
def graph(raw, torchscript_model):
    with GraphBuilder(GraphEncoding.PYTORCH, ExecutionTarget.CPU).build_from_files(
            [torchscript_model]) as graph:
        yield graph


class CallCounter:
    """Counts real calls into the raw layer's get_output (a spy: the real function still runs)."""

    def __init__(self, raw, monkeypatch):
        self.calls = []
        real = raw.get_output

        def counting(ctx, index, out):
            self.calls.append(memoryview(out).nbytes)
            return real(ctx, index, out)

        monkeypatch.setattr(raw, "get_output", counting)


def test_build_from_files_compute_and_read(graph, host, input_tensor):
    assert host.live_graphs == 1
    with graph.init_execution_context() as ctx:
        assert host.live_contexts == 1
        ctx.set_input(0, TensorType.F32, list(SHAPE), input_tensor.tobytes())
        ctx.compute()
        out = ctx.get_output(0)
        assert isinstance(out, bytearray) and len(out) == OUT_BYTES
        np.testing.assert_array_equal(np.frombuffer(out, np.float32).reshape(SHAPE),
                                      reference(input_tensor))
        scores = ctx.get_output_array(0)
        assert scores.typecode == "f" and len(scores) == OUT_BYTES // 4
        assert scores.tobytes() == bytes(out)
        view = ctx.get_output_view(0, "f")
        assert view.format == "f" and view.tobytes() == bytes(out)
        mine = bytearray(OUT_BYTES + 100)
        assert ctx.get_output_into(0, mine) == OUT_BYTES
        assert mine[:OUT_BYTES] == out
    assert host.live_contexts == 0


def test_with_blocks_accept_wasmedges_refusal_to_release(raw, host, torchscript_model,
                                                          monkeypatch):
    """WasmEdge's OpenVINO/PyTorch/TFLite/ONNX backends have no unload or finalize: its dispatch
    answers invalid_argument ("Only GGML, ... backends support unload"). WasmEdge cannot run
    here, so the host core is made to answer the same way; `with` blocks must still exit
    cleanly, while an explicit release keeps reporting the refusal."""
    from wasinn.nn import NnError

    def refuse(*_):
        raise NnError(Errno.INVALID_ARGUMENT, "Only GGML, BitNet and Whisper backends support it")

    monkeypatch.setattr(host, "unload", refuse)
    monkeypatch.setattr(host, "finalize_execution_context", refuse)
    builder = GraphBuilder(GraphEncoding.PYTORCH)
    with builder.build_from_bytes([torchscript_model.read_bytes()]) as graph:
        with graph.init_execution_context() as ctx:
            pass
    assert graph.closed and ctx.closed
    graph = builder.build_from_bytes([torchscript_model.read_bytes()])
    with pytest.raises(WasiNnError) as caught:
        graph.unload()
    assert caught.value.errno == Errno.INVALID_ARGUMENT and caught.value.function == "unload"
    # a refusal of another kind is still an error when the block itself succeeded
    def broken(*_):
        raise NnError(Errno.RUNTIME_ERROR, "backend crashed while releasing")

    monkeypatch.setattr(host, "unload", broken)
    with pytest.raises(WasiNnError) as caught:
        with builder.build_from_bytes([torchscript_model.read_bytes()]):
            pass
    assert caught.value.errno == Errno.RUNTIME_ERROR


def test_objects_release_their_host_handles_on_with_exit(raw, host, torchscript_model,
                                                        openvino_model, input_tensor):
    builder = GraphBuilder(GraphEncoding.PYTORCH)
    with builder.build_from_bytes([torchscript_model.read_bytes()]) as graph:
        with graph.init_execution_context() as a, graph.init_execution_context() as b:
            assert (host.live_graphs, host.live_contexts) == (1, 2)
        assert (host.live_graphs, host.live_contexts) == (1, 0)
        assert a.closed and b.closed
    assert (host.live_graphs, host.live_contexts) == (0, 0) and graph.closed
    # also when the block raises, and the block's exception is the one that propagates
    with pytest.raises(ZeroDivisionError):
        with builder.build_from_bytes(torchscript_model.read_bytes()) as graph:
            with graph.init_execution_context():
                1 / 0
    assert (host.live_graphs, host.live_contexts) == (0, 0)
    # explicit release is idempotent; a released object refuses further use with an errno
    graph = builder.build_from_bytes([torchscript_model.read_bytes()])
    ctx = graph.init_execution_context()
    ctx.finalize()
    ctx.finalize()
    graph.unload()
    graph.unload()
    assert (host.live_graphs, host.live_contexts) == (0, 0)
    with pytest.raises(WasiNnError) as caught:
        ctx.compute()
    assert caught.value.errno == Errno.INVALID_ARGUMENT and "finalized" in str(caught.value)
    with pytest.raises(WasiNnError) as caught:
        graph.init_execution_context()
    assert caught.value.errno == Errno.INVALID_ARGUMENT and "unloaded" in str(caught.value)


def test_get_output_learns_the_size_once_then_one_call(graph, raw, monkeypatch, input_tensor):
    counter = CallCounter(raw, monkeypatch)
    with graph.init_execution_context() as ctx:
        ctx.set_input(0, TensorType.F32, SHAPE, input_tensor)
        ctx.compute()
        first = ctx.get_output(0)
        # output (12288 B) is larger than the first guess: one too_large, one exact retry
        assert counter.calls == [wasi_nn._context.FIRST_GUESS, OUT_BYTES]
        counter.calls.clear()
        for _ in range(3):
            ctx.compute()
            assert ctx.get_output(0) == first
        assert counter.calls == [OUT_BYTES] * 3  # the hot path: exactly one call each
        counter.calls.clear()
        assert len(ctx.get_output_array(0)) == OUT_BYTES // 4
        assert counter.calls == [OUT_BYTES]


def test_get_output_without_a_reported_size_grows(graph, raw, monkeypatch, input_tensor):
    """A host that says too_large but not how much (no `needed`): the buffer doubles."""
    real = raw.get_output

    def silent(ctx, index, out):
        try:
            return real(ctx, index, out)
        except raw.Error as error:
            raise raw.Error(error.args[0], error.args[1]) from None

    monkeypatch.setattr(raw, "get_output", silent)
    with graph.init_execution_context() as ctx:
        ctx.set_input(0, TensorType.F32, SHAPE, input_tensor)
        ctx.compute()
        assert len(ctx.get_output(0)) == OUT_BYTES


def test_get_output_rereads_when_a_host_truncates_and_reports_the_full_size(
        graph, raw, monkeypatch, input_tensor):
    """WasmEdge's shared copy helper copies what fits, returns success and reports the whole
    size: the SDK must notice written > buffer and read again, never return truncated bytes."""
    real = raw.get_output
    calls = []

    def truncating(ctx, index, out):
        view = memoryview(out).cast("B")
        full = bytearray(1 << 20)
        written = real(ctx, index, full)
        view[:min(len(view), written)] = full[:min(len(view), written)]
        calls.append(len(view))
        return written

    monkeypatch.setattr(raw, "get_output", truncating)
    with graph.init_execution_context() as ctx:
        ctx.set_input(0, TensorType.F32, SHAPE, input_tensor)
        ctx.compute()
        out = ctx.get_output(0)
        assert np.array_equal(np.frombuffer(out, np.float32), reference(input_tensor).ravel())
        assert calls == [wasi_nn._context.FIRST_GUESS, OUT_BYTES]


def test_small_output_fits_the_first_guess(raw, openvino_model, tmp_path):
    ov = pytest.importorskip("openvino")
    from openvino import opset13 as ops

    x = ops.parameter([1, 10], np.float32, name="x")
    model = ov.Model([ops.softmax(x, 1)], [x], "softmax")
    ov.save_model(model, str(tmp_path / "s.xml"), compress_to_fp16=False)
    builder = GraphBuilder(GraphEncoding.OPENVINO, ExecutionTarget.CPU)
    # bytearray parts: OpenVINO's native backend needs writable buffers (see test_lowlevel)
    parts = [bytearray((tmp_path / "s.xml").read_bytes()), bytearray((tmp_path / "s.bin").read_bytes())]
    with builder.build_from_bytes(parts) as graph, graph.init_execution_context() as ctx:
        logits = array("f", range(10))
        ctx.set_input(0, TensorType.F32, [1, 10], logits)
        ctx.compute()
        probs = ctx.get_output_array(0)
        assert len(probs) == 10 and abs(sum(probs) - 1) < 1e-5
        assert wasi_nn.sort_results(probs)[0][0] == 9


def test_build_from_cache_and_config(raw, host, torchscript_model, input_tensor, caplog):
    from wasinn.nn import ModelRegistry

    raw.configure(ModelRegistry.from_specs([f"demo:PyTorch:CPU:{torchscript_model}"]))
    host = raw.host()
    builder = GraphBuilder(GraphEncoding.AUTODETECT, ExecutionTarget.CPU)
    with builder.build_from_cache("demo") as graph, graph.init_execution_context() as ctx:
        ctx.set_input(0, TensorType.F32, SHAPE, input_tensor)
        ctx.compute()
        np.testing.assert_array_equal(np.frombuffer(ctx.get_output(0), np.float32).reshape(SHAPE),
                                      reference(input_tensor))
    assert (host.live_graphs, host.live_contexts) == (0, 0)
    with builder.config({"ctx-size": 512}).build_from_cache("demo") as graph:
        assert host.live_graphs == 1
    with pytest.raises(WasiNnError) as caught:
        GraphBuilder(GraphEncoding.AUTODETECT).config("[1, 2]").build_from_cache("demo")
    assert caught.value.errno == Errno.INVALID_ARGUMENT and caught.value.function == "load_by_name_with_config"
    with pytest.raises(WasiNnError) as caught:
        builder.build_from_cache("missing")
    assert caught.value.errno == Errno.NOT_FOUND
    assert "missing" in str(caught.value)  # the host's explanation travels in the message


def test_pythonic_errors_carry_errno_and_name(graph):
    with graph.init_execution_context() as ctx:
        with pytest.raises(WasiNnError) as caught:
            ctx.set_input(0, TensorType.F32, SHAPE, bytes(12))
        error = caught.value
        assert error.errno is Errno.INVALID_ARGUMENT and error.name == "invalid_argument"
        assert str(error).startswith("set_input failed: invalid_argument (1)")
        with pytest.raises(WasiNnError) as caught:
            ctx.get_output(0)  # before compute
        assert caught.value.errno == Errno.INVALID_ARGUMENT
    with pytest.raises(WasiNnError) as caught:
        GraphBuilder(GraphEncoding.PYTORCH).build_from_bytes([b"junk"])
    assert caught.value.errno == Errno.RUNTIME_ERROR and caught.value.name == "runtime_error"


def test_wasi_nn_error_for_unknown_errno_and_pickling():
    import pickle

    error = wasi_nn.WasiNnError(77, "compute")
    assert error.errno == 77 and error.name == "unknown_errno"
    assert str(error) == "compute failed: unknown_errno (77)"
    again = pickle.loads(pickle.dumps(WasiNnError(7, "get_output", 40, "short")))
    assert (again.errno, again.needed, again.detail) == (Errno.TOO_LARGE, 40, "short")


def test_builder_rejects_unknown_enums():
    with pytest.raises(ValueError):
        GraphBuilder(42)
    with pytest.raises(ValueError):
        GraphBuilder(GraphEncoding.ONNX, 9)

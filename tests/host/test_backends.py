"""Each backend, through the real ABI (wasm module, guest memory), returns exactly what the
library returns when called directly — multi-input, multi-output, several dtypes."""

from __future__ import annotations

import io

import numpy as np
import pytest

from host_harness import Guest

OPENVINO, ONNX, PYTORCH, TFLITE, AUTODETECT = 0, 1, 3, 4, 5
TYPE_CODES = {"float16": 0, "float32": 1, "float64": 2, "uint8": 3, "int32": 4, "int64": 5}


def run_guest(parts: list[bytes], encoding: int, inputs: list[np.ndarray],
              n_outputs: int) -> list[bytes]:
    guest = Guest()
    errno, graph = guest.load(parts, encoding)
    assert errno == 0, "load failed"
    errno, ctx = guest.init(graph)
    assert errno == 0
    for index, array in enumerate(inputs):
        code = TYPE_CODES[array.dtype.name]
        assert guest.set_input(ctx, index, list(array.shape), code, array.tobytes()) == 0, index
    assert guest.call("compute", ctx) == 0
    outputs = []
    for index in range(n_outputs):
        errno, _, needed = guest.get_output(ctx, index, 0)       # learn the size (too_large)
        assert errno == 7
        errno, data, written = guest.get_output(ctx, index, needed)
        assert (errno, written) == (0, needed)
        outputs.append(data)
    assert guest.get_output(ctx, n_outputs, 1 << 16)[0] == 1      # one past the last output
    return outputs


# -- PyTorch ----------------------------------------------------------------------------------
def test_pytorch_matches_torch(torch_model_bytes):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    inputs = [
        rng.standard_normal((2, 3)).astype(np.float32),
        np.array([1, -2, 3, 1 << 40], np.int64),
        np.array([0.25, -1.5, 3.0], np.float64),
        np.array([0, 7, 200, 255, 3], np.uint8),
        np.array([-5, 9], np.int32),
        np.array([0.5, -3.25], np.float16),
    ]
    module = torch.jit.load(io.BytesIO(torch_model_bytes))
    with torch.inference_mode():
        a, (b, c), d, e, f = module(*(torch.from_numpy(x.copy()) for x in inputs))
    expected = [t.numpy() for t in (a, b, c, d, e, f)]
    got = run_guest([torch_model_bytes], PYTORCH, inputs, 6)
    for data, want in zip(got, expected):
        np.testing.assert_array_equal(np.frombuffer(data, want.dtype).reshape(want.shape), want)


# -- OpenVINO ---------------------------------------------------------------------------------
def _openvino_direct(model_path: str, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import openvino as ov

    compiled = ov.Core().compile_model(model_path, "CPU")
    result = compiled.create_infer_request().infer(inputs)
    return [result[out] for out in compiled.outputs]


def test_openvino_ir_matches_openvino(openvino_ir):
    xml, weights = openvino_ir
    inputs = [np.array([[0.5, -1.0, 2.0, 3.0]], np.float32), np.array([1, -2, 7], np.int32)]
    expected = _openvino_direct(str(xml), inputs)
    got = run_guest([xml.read_bytes(), weights.read_bytes()], OPENVINO, inputs, 2)
    for data, want in zip(got, expected):
        np.testing.assert_array_equal(np.frombuffer(data, want.dtype).reshape(want.shape), want)


def test_openvino_weights_buffer_may_be_reused_after_load(openvino_ir):
    """The plugin must own its weights after load: zeroing the guest's copy changes nothing."""
    xml, weights = openvino_ir
    inputs = [np.array([[0.5, -1.0, 2.0, 3.0]], np.float32), np.array([1, -2, 7], np.int32)]
    expected = _openvino_direct(str(xml), inputs)
    guest = Guest()
    errno, graph = guest.load([xml.read_bytes(), weights.read_bytes()], OPENVINO)
    assert errno == 0
    guest.memory.write(guest.store, b"\0" * (guest.size - 1024), 1024)   # wipe the model bytes
    guest._top = 1024
    _, ctx = guest.init(graph)
    assert guest.set_input(ctx, 0, [1, 4], 1, inputs[0].tobytes()) == 0
    assert guest.set_input(ctx, 1, [3], 4, inputs[1].tobytes()) == 0
    assert guest.call("compute", ctx) == 0
    _, data, _ = guest.get_output(ctx, 0, 1024)
    np.testing.assert_array_equal(np.frombuffer(data, np.float32), expected[0].ravel())
    _, data, _ = guest.get_output(ctx, 1, 1024)         # b * 3: the constant 3 lives in .bin
    np.testing.assert_array_equal(np.frombuffer(data, np.int32), expected[1].ravel())


def test_openvino_writes_a_static_output_into_the_array_it_is_given(openvino_ir):
    """Context.output_into (the worker's segments): after it, every compute writes that output
    into the caller's array, get_output returns a view of it, and the values are the
    library's; an array of the wrong type or size is refused (the output is then copied out
    as before)."""
    from wasinn.nn.backends import backend_for
    from wasinn.nn.types import ExecutionTarget, GraphEncoding

    xml, weights = openvino_ir
    graph = backend_for(GraphEncoding.OPENVINO).load(
        [memoryview(xml.read_bytes()), memoryview(weights.read_bytes())], ExecutionTarget.CPU)
    context = graph.init_execution_context()
    assert not context.output_into(0, np.zeros(5, np.int32))        # wrong dtype
    assert not context.output_into(0, np.zeros(4, np.float32))      # wrong size
    assert not context.output_into(2, np.zeros(5, np.float32))      # no such output
    into = np.full(5, -1.0, np.float32)
    assert context.output_into(0, into)
    b = np.array([1, -2, 7], np.int32)
    for a in (np.array([[0.5, -1.0, 2.0, 3.0]], np.float32), np.array([[1.0, 2, 3, 4]], np.float32)):
        context.set_input(0, a)
        context.set_input(1, b)
        context.compute()
        expected = _openvino_direct(str(xml), [a, b])
        np.testing.assert_array_equal(into, expected[0].ravel())
        output = context.get_output(0)
        assert output.ctypes.data == into.ctypes.data
        np.testing.assert_array_equal(context.get_output(1), expected[1])


def test_openvino_input_type_or_shape_mismatch_is_invalid(openvino_ir):
    xml, weights = openvino_ir
    guest = Guest()
    _, graph = guest.load([xml.read_bytes(), weights.read_bytes()], OPENVINO)
    _, ctx = guest.init(graph)
    assert guest.set_input(ctx, 0, [1, 4], 4, np.zeros(4, np.int32).tobytes()) == 1
    assert guest.set_input(ctx, 2, [1, 4], 1, np.zeros(4, np.float32).tobytes()) == 1
    assert guest.set_input(ctx, 0, [4], 1, np.zeros(4, np.float32).tobytes()) == 1      # shape
    assert guest.set_input(ctx, 0, [2, 2], 1, np.zeros(4, np.float32).tobytes()) == 1
    assert guest.set_input(ctx, 0, [1, 4], 1, np.zeros(4, np.float32).tobytes()) == 0   # still fine
    assert guest.set_input(ctx, 1, [3], 4, np.zeros(3, np.int32).tobytes()) == 0
    assert guest.call("compute", ctx) == 0


def test_openvino_reads_onnx_bytes(onnx_model_bytes, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_model_bytes)
    inputs = [np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2, 3], np.int64),
              np.array([1, 2, 3, 250], np.uint8)]
    expected = _openvino_direct(str(path), inputs)
    got = run_guest([onnx_model_bytes], OPENVINO, inputs, 3)
    for data, want in zip(got, expected):
        np.testing.assert_array_equal(np.frombuffer(data, want.dtype).reshape(want.shape), want)


@pytest.mark.fixtures
def test_openvino_reads_tflite_mobilenet(fixtures_dir):
    path = fixtures_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    image = np.random.default_rng(2).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    expected = _openvino_direct(str(path), [image])
    got = run_guest([path.read_bytes()], OPENVINO, [image], 1)
    np.testing.assert_array_equal(np.frombuffer(got[0], expected[0].dtype), expected[0].ravel())


# -- ONNX Runtime -----------------------------------------------------------------------------
def test_onnx_matches_onnxruntime(onnx_model_bytes):
    ort = pytest.importorskip("onnxruntime")
    inputs = [np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32),
              np.array([5, -6, 1 << 33], np.int64), np.array([9, 0, 255, 128], np.uint8)]
    session = ort.InferenceSession(onnx_model_bytes, providers=["CPUExecutionProvider"])
    expected = session.run(None, dict(zip(["X", "Y", "U"], inputs)))
    got = run_guest([onnx_model_bytes], ONNX, inputs, 3)
    for data, want in zip(got, expected):
        np.testing.assert_array_equal(np.frombuffer(data, want.dtype).reshape(want.shape), want)


def test_onnx_input_type_mismatch_is_invalid(onnx_model_bytes):
    guest = Guest()
    _, graph = guest.load([onnx_model_bytes], ONNX)
    _, ctx = guest.init(graph)
    assert guest.set_input(ctx, 0, [2, 3], 4, np.zeros(6, np.int32).tobytes()) == 1
    assert guest.call("compute", ctx) == 1                       # inputs not set


# -- TFLite -----------------------------------------------------------------------------------
def _tflite_direct(model: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    for detail, array in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


@pytest.mark.parametrize("encoding", [TFLITE, AUTODETECT])
def test_tflite_multi_input_output_matches_litert(tflite_model_bytes, encoding):
    inputs = [np.random.default_rng(6).standard_normal((2, 3)).astype(np.float32),
              np.array([1, -2, 300, 4], np.int32)]
    expected = _tflite_direct(tflite_model_bytes, inputs)
    got = run_guest([tflite_model_bytes], encoding, inputs, 2)
    for data, want in zip(got, expected):
        np.testing.assert_array_equal(np.frombuffer(data, want.dtype).reshape(want.shape), want)


@pytest.mark.fixtures
def test_tflite_wrong_shape_is_invalid_and_harmless(fixtures_dir):
    model = (fixtures_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    guest = Guest()
    _, graph = guest.load([model], TFLITE)
    _, ctx = guest.init(graph)
    image = bytes(224 * 224 * 3)
    assert guest.set_input(ctx, 0, [224, 224, 3], 3, image) == 1       # rank 3, model rank 4
    assert guest.set_input(ctx, 0, [1, 224, 672, 1], 3, image) == 1    # fixed dims differ
    assert guest.set_input(ctx, 0, [1, 224, 224, 3], 3, image) == 0    # context still good
    assert guest.call("compute", ctx) == 0


def test_tflite_type_mismatch_and_resize(tflite_model_bytes):
    guest = Guest()
    _, graph = guest.load([tflite_model_bytes], TFLITE)
    _, ctx = guest.init(graph)
    assert guest.set_input(ctx, 1, [4], 1, np.zeros(4, np.float32).tobytes()) == 1  # f32 vs i32
    assert guest.set_input(ctx, 2, [4], 4, np.zeros(4, np.int32).tobytes()) == 1    # no input 2
    assert guest.set_input(ctx, 0, [3, 4], 1, np.zeros(12, np.float32).tobytes()) == 1  # fixed dim
    a = np.arange(9, dtype=np.float32).reshape(3, 3)                # dynamic first dim: resized
    assert guest.set_input(ctx, 0, [3, 3], 1, a.tobytes()) == 0
    assert guest.set_input(ctx, 1, [4], 4, np.arange(4, dtype=np.int32).tobytes()) == 0
    assert guest.call("compute", ctx) == 0
    errno, data, written = guest.get_output(ctx, 0, 1024)
    assert (errno, written) == (0, 36)
    np.testing.assert_array_equal(np.frombuffer(data, np.float32).reshape(3, 3), a + a)


@pytest.mark.fixtures
@pytest.mark.parametrize("encoding", [TFLITE, AUTODETECT])
def test_tflite_mobilenet_matches_litert(fixtures_dir, encoding):
    model = (fixtures_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    image = np.random.default_rng(4).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    expected = _tflite_direct(model, [image])
    got = run_guest([model], encoding, [image], 1)
    np.testing.assert_array_equal(np.frombuffer(got[0], np.uint8), expected[0].ravel())


@pytest.mark.fixtures
def test_tflite_birds_with_crate_04_u8_type_code(fixtures_dir):
    """The prebuilt birds example (crate 0.4) sends type 2 for its u8 input."""
    model = (fixtures_dir / "models" / "aiy_vision_classifier_birds_V1_3.tflite").read_bytes()
    image = np.random.default_rng(5).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    expected = _tflite_direct(model, [image])[0]
    guest = Guest()
    _, graph = guest.load([model], TFLITE)
    _, ctx = guest.init(graph)
    assert guest.set_input(ctx, 0, [1, 224, 224, 3], 2, image.tobytes()) == 0
    assert guest.call("compute", ctx) == 0
    errno, data, written = guest.get_output(ctx, 0, 4096)
    assert (errno, written) == (0, 965)
    np.testing.assert_array_equal(np.frombuffer(data, np.uint8), expected.ravel())
    assert guest.set_input(ctx, 0, [1, 224, 224, 3], 1, image.tobytes()) == 1   # f32: wrong size


def _tflite_host_outputs(graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    context = graph.init_execution_context()
    for index, array in enumerate(inputs):
        context.set_input(index, array)
    context.compute()
    return [context.get_output(0).copy(), context.get_output(1).copy()]


def test_tflite_shares_immutable_bytes_and_copies_writable_memory(tflite_model_bytes):
    """LiteRT keeps pointing into the model it was given: `bytes` (a native guest's
    file.read()) are shared without a copy; a writable buffer the guest may reuse is copied."""
    from wasinn.nn.backends.tflite import BACKEND
    from wasinn.nn.types import ExecutionTarget

    inputs = [np.ones((2, 3), np.float32), np.array([1, 2, 3, 4], np.int32)]
    expected = _tflite_direct(tflite_model_bytes, inputs)
    shared = BACKEND.load([memoryview(tflite_model_bytes)], ExecutionTarget.CPU)
    assert shared._model is tflite_model_bytes     # shared, not copied
    writable = bytearray(tflite_model_bytes)
    copied = BACKEND.load([memoryview(writable)], ExecutionTarget.CPU)
    writable[:] = bytes(len(writable))                   # the guest reuses its buffer
    for graph in (shared, copied, copied):    # the second context of `copied` re-reads its model
        for got, want in zip(_tflite_host_outputs(graph, inputs), expected):
            np.testing.assert_array_equal(got, want)


def test_tflite_first_context_takes_the_interpreter_built_at_load(tflite_model_bytes):
    from wasinn.nn.backends.tflite import BACKEND
    from wasinn.nn.types import ExecutionTarget

    graph = BACKEND.load([memoryview(tflite_model_bytes)], ExecutionTarget.CPU)
    built_at_load = graph._spare
    first, second = graph.init_execution_context(), graph.init_execution_context()
    assert first._interpreter is built_at_load and second._interpreter is not built_at_load
    a = [np.full((2, 3), 2, np.float32), np.array([1, 2, 3, 4], np.int32)]
    b = [np.full((2, 3), 5, np.float32), np.array([4, 3, 2, 1], np.int32)]
    for context, inputs in ((first, a), (second, b)):      # independent tensors
        for index, array in enumerate(inputs):
            context.set_input(index, array)
    for context, inputs in ((first, a), (second, b)):
        context.compute()
        want = _tflite_direct(tflite_model_bytes, inputs)
        np.testing.assert_array_equal(context.get_output(0), want[0])
        np.testing.assert_array_equal(context.get_output(1), want[1])


# -- autodetect -------------------------------------------------------------------------------
def test_autodetect_picks_each_backend(torch_model_bytes, onnx_model_bytes, openvino_ir,
                                      tflite_model_bytes):
    from wasinn.nn.backends.autodetect import detect
    from wasinn.nn.types import GraphEncoding

    xml, weights = openvino_ir
    assert detect([memoryview(torch_model_bytes)]) is GraphEncoding.PYTORCH
    assert detect([memoryview(onnx_model_bytes)]) is GraphEncoding.ONNX
    assert detect([memoryview(tflite_model_bytes)]) is GraphEncoding.TENSORFLOWLITE
    assert detect([memoryview(xml.read_bytes()), memoryview(weights.read_bytes())]) \
        is GraphEncoding.OPENVINO
    inputs = [np.array([[0.5, -1.0, 2.0, 3.0]], np.float32), np.array([1, -2, 7], np.int32)]
    got = run_guest([xml.read_bytes(), weights.read_bytes()], AUTODETECT, inputs, 2)
    expected = _openvino_direct(str(xml), inputs)
    np.testing.assert_array_equal(np.frombuffer(got[1], np.int32), expected[1])
    onnx_inputs = [np.ones((2, 3), np.float32), np.array([1, 2, 3], np.int64),
                   np.array([1, 2, 3, 4], np.uint8)]
    assert len(run_guest([onnx_model_bytes], AUTODETECT, onnx_inputs, 3)) == 3


def test_missing_library_names_the_pip_extra(monkeypatch):
    from wasinn.nn import NnError
    from wasinn.nn.backends.base import Backend

    class Fake(Backend):
        name, extra, module = "fake", "fakeextra", "wasinn_no_such_library"

        def load(self, builders, target):
            self.library()

    with pytest.raises(NnError) as info:
        Fake().load([], 0)
    assert info.value.errno == 6 and "the 'fakeextra' extra of wasinn" in info.value.message


def test_install_hint_names_installable_requirements():
    from wasinn.nn.backends.base import install_hint

    assert install_hint("onnx") == ("pip install 'onnxruntime==1.32.0' 'onnx==1.23.2' "
                                    "(the 'onnx' extra of wasinn)")
    assert "pip install 'torch==2.13.0'" in install_hint("pytorch")
    assert "wasinn[" not in install_hint("openvino")


def test_model_bytes_shares_whole_bytes_and_copies_the_rest():
    from wasinn.nn.backends.base import model_bytes

    data = bytes(range(256)) * 4
    assert model_bytes(memoryview(data)) is data                       # no copy
    part = model_bytes(memoryview(data)[16:])
    assert part == data[16:] and part is not data
    writable = bytearray(data)
    copied = model_bytes(memoryview(writable))
    writable[0] = 255
    assert type(copied) is bytes and copied == data                     # unaffected by reuse

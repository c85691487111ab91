"""numpy interop of the SDK in native mode: ndarray in, ndarray out, image tensors as arrays."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from wasi_nn import ExecutionTarget, GraphBuilder, GraphEncoding, TensorType
from wasi_nn.image import image_to_tensor

from .conftest import SHAPE, reference


@pytest.fixture()
def context(raw, torchscript_model):
    with GraphBuilder(GraphEncoding.PYTORCH, ExecutionTarget.CPU).build_from_files(
            [torchscript_model]) as graph, graph.init_execution_context() as ctx:
        yield ctx


def test_set_input_takes_an_ndarray_and_get_output_returns_one(context, input_tensor) -> None:
    context.set_input(0, input_tensor)
    context.compute()
    out = context.get_output(0, shape=SHAPE)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == SHAPE
    np.testing.assert_array_equal(out, reference(input_tensor))
    flat = context.get_output(0, dtype=TensorType.F32)
    assert flat.shape == (int(np.prod(SHAPE)),)


def test_a_strided_view_is_sent_in_row_major_order(context, input_tensor) -> None:
    nhwc = np.ascontiguousarray(input_tensor.transpose(0, 2, 3, 1))
    view = nhwc.transpose(0, 3, 1, 2)  # NCHW again, but not contiguous
    assert not view.flags["C_CONTIGUOUS"]
    context.set_input(0, view)
    context.compute()
    np.testing.assert_array_equal(context.get_output(0, shape=SHAPE), reference(input_tensor))


def test_wrong_inputs_are_refused_before_the_host(context) -> None:
    with pytest.raises(TypeError, match="no wasi-nn tensor type"):
        context.set_input(0, np.zeros(SHAPE, dtype=np.complex64))
    with pytest.raises(ValueError, match="at least one dimension"):
        context.set_input(0, np.array(1.0, dtype=np.float32))
    with pytest.raises(TypeError, match="or \\(index, ndarray\\)"):
        context.set_input(0, TensorType.F32)
    context.set_input(0, np.zeros(SHAPE, dtype=np.float32))
    context.compute()
    with pytest.raises(ValueError):
        context.get_output(0, shape=(7, 7))  # element count does not match


def test_image_to_tensor_as_array_is_a_view_of_the_same_bytes(tmp_path) -> None:
    from PIL import Image

    path = tmp_path / "img.png"
    Image.fromarray(np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)).save(path)
    raw = image_to_tensor(str(path), 8, 12)
    arr = image_to_tensor(str(path), 8, 12, as_array=True)
    assert arr.shape == (1, 3, 8, 12) and arr.dtype == np.float32
    assert arr.tobytes() == bytes(raw)
    u8 = image_to_tensor(str(path), 8, 12, layout="NHWC", dtype="u8", as_array=True)
    assert u8.shape == (1, 8, 12, 3) and u8.dtype == np.uint8


def test_the_sdk_never_imports_numpy_by_itself() -> None:
    code = ("import sys, wasi_nn, wasi_nn.image, wasi_nn.results; "
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_get_output_with_a_shape_reads_once_at_that_size(context, input_tensor,
                                                          monkeypatch) -> None:
    """A shape tells the size: no first read into a small buffer that comes back too_large
    (a round trip to the backend worker in wasm). Shapes that do not tell it still work."""
    from wasi_nn import _context

    sizes: list[int] = []
    real = _context._r.get_output

    def counting(handle, index, buffer):
        sizes.append(len(buffer))
        return real(handle, index, buffer)

    monkeypatch.setattr(_context._r, "get_output", counting)
    context.set_input(0, input_tensor)
    context.compute()
    context.get_output(0, shape=SHAPE)
    assert sizes == [4 * int(np.prod(SHAPE))]
    for shape in ((-1,) + SHAPE[1:], (10**12,), ("x",)):   # unknown, absurd, not a count
        context._sizes.clear()
        sizes.clear()
        try:
            out = context.get_output(0, shape=shape)
        except (ValueError, TypeError):
            continue
        assert out.shape == SHAPE and sizes[0] == _context.FIRST_GUESS

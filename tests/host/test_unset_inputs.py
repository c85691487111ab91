"""compute before every input is set: invalid_argument, never the backend's uninitialised
buffers (host heap, host pointers) handed back through get_output."""

from __future__ import annotations

import numpy as np
import pytest

from host_harness import Guest

OPENVINO, TFLITE = 0, 4
OK, INVALID = 0, 1


def _context(parts: list[bytes], encoding: int) -> tuple[Guest, int]:
    guest = Guest()
    errno, graph = guest.load(parts, encoding)
    assert errno == OK
    errno, ctx = guest.init(graph)
    assert errno == OK
    return guest, ctx


def _refuses_until_all_set(guest: Guest, ctx: int, inputs: list[np.ndarray],
                           codes: list[int]) -> None:
    assert guest.call("compute", ctx) == INVALID               # nothing set
    assert guest.get_output(ctx, 0, 1 << 20)[0] == INVALID     # and nothing to read
    for index in reversed(range(len(inputs))):                 # all but input 0
        if index:
            assert guest.set_input(ctx, index, list(inputs[index].shape), codes[index],
                                   inputs[index].tobytes()) == OK
    assert guest.call("compute", ctx) == INVALID               # input 0 still unset
    assert guest.set_input(ctx, 0, list(inputs[0].shape), codes[0], inputs[0].tobytes()) == OK
    assert guest.call("compute", ctx) == OK


def test_openvino_ir_with_unset_inputs(openvino_ir):
    xml, weights = openvino_ir
    guest, ctx = _context([xml.read_bytes(), weights.read_bytes()], OPENVINO)
    _refuses_until_all_set(guest, ctx, [np.ones((1, 4), np.float32), np.arange(3, dtype=np.int32)],
                           [1, 4])


def test_openvino_real_model_with_no_input(fixtures_dir):
    """The road-segmentation IR: before the fix, compute succeeded and get_output returned
    hundreds of KB of uninitialised host memory."""
    pytest.importorskip("openvino")
    models = fixtures_dir / "models"
    guest, ctx = _context([(models / "road-segmentation-adas-0001.xml").read_bytes(),
                           (models / "road-segmentation-adas-0001.bin").read_bytes()], OPENVINO)
    assert guest.call("compute", ctx) == INVALID
    assert guest.get_output(ctx, 0, 1 << 23)[0] == INVALID


def test_tflite_with_unset_inputs(tflite_model_bytes):
    pytest.importorskip("ai_edge_litert")
    guest, ctx = _context([tflite_model_bytes], TFLITE)
    _refuses_until_all_set(guest, ctx, [np.ones((2, 3), np.float32), np.arange(4, dtype=np.int32)],
                           [1, 4])


def test_tflite_resize_asks_for_inputs_again(tflite_model_bytes):
    """Resizing input 0 reallocates the interpreter's arena: input 1, set before, is gone."""
    pytest.importorskip("ai_edge_litert")
    guest, ctx = _context([tflite_model_bytes], TFLITE)
    b = np.arange(4, dtype=np.int32)
    assert guest.set_input(ctx, 1, [4], 4, b.tobytes()) == OK
    a = np.ones((5, 3), np.float32)                                # first dim is dynamic
    assert guest.set_input(ctx, 0, [5, 3], 1, a.tobytes()) == OK
    assert guest.call("compute", ctx) == INVALID
    assert guest.set_input(ctx, 1, [4], 4, b.tobytes()) == OK
    assert guest.call("compute", ctx) == OK
    errno, data, _ = guest.get_output(ctx, 1, 64)
    assert errno == OK and np.frombuffer(data, np.int32).tolist() == (b * b).tolist()

"""What the SDK promises that only some targets can do: names for tensors and output dims/type
(the component target's WIT wasi:nn) are refused clearly on wasi_ephemeral_nn, here natively;
tests/examples/test_component.py checks them working inside a component."""

from __future__ import annotations

import pytest

import wasi_nn
from wasi_nn import Errno, TensorType, WasiNnError


def _unsupported(call, function: str) -> WasiNnError:
    with pytest.raises(WasiNnError) as caught:
        call()
    assert caught.value.errno == Errno.UNSUPPORTED_OPERATION
    assert caught.value.function == function
    return caught.value


def test_tensor_names_need_the_component_target(raw, host):
    tensor = wasi_nn.Tensor([1], TensorType.F32, bytes(4))
    error = _unsupported(lambda: wasi_nn.set_input(0, "input", tensor), "set_input")
    assert "component target" in error.detail and "wasinn.native.raw" in error.detail
    _unsupported(lambda: wasi_nn.get_output(0, "output", bytearray(4)), "get_output")
    context = wasi_nn.GraphExecutionContext(0)
    _unsupported(lambda: context.get_output("output"), "get_output")
    assert host.live_contexts == 0  # refused before the host was asked


def test_output_info_needs_the_component_target(raw):
    error = _unsupported(lambda: wasi_nn.output_info(0, 0), "output_info")
    assert "does not report an output's dims or type" in error.detail
    _unsupported(lambda: wasi_nn.GraphExecutionContext(0).output_info(0), "output_info")

"""Fixtures for the SDK tests: the native raw layer with a fresh host, and tiny real models.

The models are built here, in a temporary folder, so the core suite needs no downloads:
a TorchScript module (PyTorch backend) and an OpenVINO IR (OpenVINO backend). Both compute
``relu(x * 2 - 1)`` over a [1, 3, 32, 32] f32 input, so their output (12288 bytes) is larger
than the SDK's first-guess buffer and exercises the size discovery of `get_output`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHAPE = (1, 3, 32, 32)


def reference(x: np.ndarray) -> np.ndarray:
    """What both tiny models compute, in f32."""
    return np.maximum(x * np.float32(2) - np.float32(1), np.float32(0)).astype(np.float32)


@pytest.fixture()
def raw():
    """`wasinn.native.raw` with a fresh process-wide host (so live counts start at zero)."""
    raw = pytest.importorskip("wasinn.native.raw", reason="native mode (wasinn.native.raw) absent")
    import wasi_nn

    if wasi_nn.raw_layer != "wasinn.native.raw":
        pytest.skip(f"wasi_nn is bound to {wasi_nn.raw_layer}, not the native layer")
    raw.configure()
    yield raw
    raw.configure()


@pytest.fixture()
def host(raw):
    """The host core (`wasinn.nn.WasiNn`) behind the native layer; has live_graphs/contexts."""
    return raw.host()


@pytest.fixture(scope="session")
def torchscript_model(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x * 2.0 - 1.0)

    path = tmp_path_factory.mktemp("torch") / "tiny.pt"
    traced = torch.jit.trace(Tiny().eval(), torch.zeros(SHAPE))
    traced.save(str(path))
    return path


@pytest.fixture(scope="session")
def openvino_model(tmp_path_factory) -> tuple[Path, Path]:
    ov = pytest.importorskip("openvino")
    from openvino import opset13 as ops

    x = ops.parameter(list(SHAPE), np.float32, name="input")
    y = ops.relu(ops.subtract(ops.multiply(x, ops.constant(np.float32(2))),
                              ops.constant(np.float32(1))))
    model = ov.Model([y], [x], "tiny")
    folder = tmp_path_factory.mktemp("openvino")
    xml = folder / "tiny.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml, folder / "tiny.bin"


@pytest.fixture(scope="session")
def input_tensor() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.uniform(-1, 2, SHAPE).astype(np.float32)

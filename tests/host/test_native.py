"""Native mode: `wasinn.native.raw` (the `_wasi_nn` API under CPython) and `wasinn run --native`."""

from __future__ import annotations

import textwrap
from array import array

import numpy as np
import pytest

from host_harness import run_wasinn
from wasinn.native import raw
from wasinn.nn import ModelRegistry, parse_preload


@pytest.fixture
def native(torch_linear_path, monkeypatch):
    monkeypatch.setenv("WASINN_NN_PRELOAD", f"demo:PyTorch:CPU:{torch_linear_path};"
                                            f"again:pytorch:cpu:{torch_linear_path}")
    raw.configure()
    yield raw
    raw.configure(ModelRegistry())


def _expected(path, x):
    import torch

    with torch.inference_mode():
        return torch.jit.load(str(path))(torch.from_numpy(x)).numpy()


def test_raw_cycle_with_preloaded_model(native, torch_linear_path):
    graph = native.load_by_name("demo")
    assert native.load_by_name(b"again") != graph
    ctx = native.init_execution_context(graph)
    x = array("f", [1.0, 2.0, 3.0])
    native.set_input(ctx, 0, [1, 3], 1, x)
    native.compute(ctx)
    out = bytearray(8)
    assert native.get_output(ctx, 0, out) == 8
    np.testing.assert_array_equal(np.frombuffer(out, np.float32),
                                  _expected(torch_linear_path, np.array([[1, 2, 3]], np.float32)).ravel())
    out = array("f", [0.0] * 4)      # any writable buffer, bigger is fine
    assert native.get_output_single(ctx, 0, out) == 8
    native.finalize_execution_context(ctx)
    native.unload(graph)


def test_raw_errors_match_the_contract(native):
    graph = native.load_by_name("demo")
    ctx = native.init_execution_context(graph)
    native.set_input(ctx, 0, [1, 3], 1, bytes(12))
    native.compute(ctx)
    with pytest.raises(native.Error) as info:
        native.get_output(ctx, 0, bytearray(3))
    assert info.value.args == (7, "get_output", 8)
    with pytest.raises(TypeError, match="read-only"):     # refused before the host, as in wasm
        native.get_output(ctx, 0, bytes(16))
    with pytest.raises(native.Error) as info:
        native.load_by_name("absent")
    assert info.value.args == (8, "load_by_name") and "absent" in str(info.value)
    with pytest.raises(native.Error) as info:
        native.set_input(ctx, 0, [1, 4], 1, bytes(12))
    assert info.value.args == (1, "set_input")
    with pytest.raises(native.Error) as info:
        native.load([b"x"], 42, 0)
    assert info.value.args == (2, "load")
    with pytest.raises(native.Error) as info:
        native.load([b"x"], 2, 0)                 # TensorFlow: a known encoding, no backend
    assert info.value.args == (6, "load") and "TFLite" in info.value.message
    with pytest.raises(native.Error) as info:
        native.load_by_name_with_config("demo", "{oops")
    assert info.value.args == (1, "load_by_name_with_config")
    assert native.load_by_name_with_config("demo", '{"threads": 2}') >= 0
    with pytest.raises(native.Error):
        native.compute(12345)


def test_raw_inputs_are_not_copied(native):
    """The backend sees the caller's own memory (zero-copy set_input natively too)."""
    from wasinn.nn.backends import pytorch

    graph = native.load_by_name("demo")
    ctx = native.init_execution_context(graph)
    data = np.array([1, 2, 3], np.float32)
    native.set_input(ctx, 0, [1, 3], 1, data)
    context = native.host()._contexts[ctx].context
    assert isinstance(context, pytorch.TorchContext)
    assert context._inputs[0].data_ptr() == data.ctypes.data


def test_run_native_package(tmp_path, torch_linear_path):
    package = tmp_path / "guest"
    package.mkdir()
    (package / "helper.py").write_text("FACTOR = 2\n")
    (package / "main.py").write_text(textwrap.dedent("""
        import sys
        from array import array
        from helper import FACTOR
        from wasinn.native import raw

        graph = raw.load_by_name(sys.argv[1])
        ctx = raw.init_execution_context(graph)
        raw.set_input(ctx, 0, [1, 3], 1, array("f", [1, 2, 3]))
        raw.compute(ctx)
        out = array("f", [0, 0])
        raw.get_output(ctx, 0, out)
        print(sys.argv[0], " ".join(repr(v) for v in out))
        sys.exit(5 * FACTOR)
    """))
    result = run_wasinn("run", "--native", "--nn-preload", f"demo:PyTorch:CPU:{torch_linear_path}",
                        str(package), "demo")
    assert result.returncode == 10, result.stderr
    expected = _expected(torch_linear_path, np.array([[1, 2, 3]], np.float32)).ravel()
    name, *values = result.stdout.decode().split()
    assert name == "guest"
    np.testing.assert_array_equal(np.array([float(v) for v in values], np.float32), expected)


def test_run_native_uses_env_preload_without_option(tmp_path, torch_linear_path):
    package = tmp_path / "envguest"
    package.mkdir()
    (package / "main.py").write_text("from wasinn.native import raw\nprint(raw.load_by_name('e'))\n")
    result = run_wasinn("run", "--native", str(package),
                        env={"WASINN_NN_PRELOAD": f"e:PyTorch:CPU:{torch_linear_path}"})
    assert (result.returncode, result.stdout) == (0, b"0\n"), result.stderr
    result = run_wasinn("run", "--native", str(package), env={"WASINN_NN_PRELOAD": "broken"})
    assert result.returncode == 2 and b"bad --nn-preload 'broken'" in result.stderr


def test_run_native_exit_codes(tmp_path):
    package = tmp_path / "crash"
    package.mkdir()
    (package / "main.py").write_text("raise RuntimeError('guest bug')\n")
    result = run_wasinn("run", "--native", str(package))
    assert result.returncode == 1 and b"guest bug" in result.stderr
    (package / "main.py").write_text("import os; print(os.environ['K'])\n")
    result = run_wasinn("run", "--native", "--env", "K=v", str(package))
    assert (result.returncode, result.stdout) == (0, b"v\n")
    result = run_wasinn("run", "--native", str(tmp_path / "missing"))
    assert result.returncode == 2 and b"no main.py" in result.stderr


def test_registry_parsing_and_env_separator(torch_linear_path, openvino_ir):
    xml, weights = openvino_ir
    registry = ModelRegistry.from_env(f"a:PyTorch:CPU:{torch_linear_path};"
                                      f" ;m:OpenVINO:CPU:{xml},{weights}")
    assert registry.names() == ["a", "m"]
    model = registry.get("m")
    assert model.paths == [xml, weights] and model.encoding == 0
    assert parse_preload(f"x:TensorflowLite:AUTO:{xml}").target == 3
    assert parse_preload(f"x:autodetect:gpu:{xml}").encoding == 5


def test_openvino_accepts_read_only_bytes_natively(openvino_ir):
    """`file.read()` gives bytes (read-only): weights and inputs must still be shared, not refused."""
    import openvino as ov

    xml, weights = openvino_ir
    raw.configure(ModelRegistry())
    graph = raw.load([xml.read_bytes(), weights.read_bytes()], 0, 0)
    ctx = raw.init_execution_context(graph)
    a = np.array([[0.5, -1.0, 2.0, 3.0]], np.float32)
    b = np.array([1, -2, 7], np.int32)
    raw.set_input(ctx, 0, [1, 4], 1, a.tobytes())
    raw.set_input(ctx, 1, [3], 4, b.tobytes())
    raw.compute(ctx)
    out = bytearray(64)
    n = raw.get_output(ctx, 0, out)
    expected = ov.Core().compile_model(str(xml), "CPU")([a, b])
    np.testing.assert_array_equal(np.frombuffer(out[:n], np.float32), expected[0].ravel())


def test_openvino_named_model_from_mmap(openvino_ir):
    """--nn-preload maps files read-only; the OpenVINO IR must load from that mapping."""
    xml, weights = openvino_ir
    raw.configure(ModelRegistry([parse_preload(f"ir:OpenVINO:CPU:{xml},{weights}")]))
    graph = raw.load_by_name("ir")
    ctx = raw.init_execution_context(graph)
    raw.set_input(ctx, 0, [1, 4], 1, np.ones((1, 4), np.float32))
    raw.set_input(ctx, 1, [3], 4, np.ones(3, np.int32))
    raw.compute(ctx)
    assert raw.get_output(ctx, 1, bytearray(12)) == 12
    raw.configure(ModelRegistry())


def test_verbose_load_line_matches_the_wasm_trace_format(torch_linear_path, capfd):
    """Native `--verbose` names the encoding and shows the buffer's own address (no copy)."""
    raw.configure(ModelRegistry(), verbose=True)
    try:
        model = bytearray(torch_linear_path.read_bytes())
        address = np.frombuffer(model, dtype=np.uint8).ctypes.data
        graph = raw.load([model], 3, 0)
        with pytest.raises(raw.Error):
            raw.load([bytearray(b"not a model")], 3, 1)
    finally:
        raw.configure(ModelRegistry())
    lines = capfd.readouterr().err.splitlines()
    assert lines[0].startswith(
        f"wasi-nn: load builders=[{address:#x}+{len(model)}] encoding=pytorch -> {graph} (")
    assert lines[1].startswith("wasi-nn: load builders=[0x")
    assert "encoding=pytorch target=gpu -> " in lines[1]

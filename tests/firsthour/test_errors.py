"""Errors that explain themselves: the host's reason reaches the user in wasm mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from firsthour_helpers import wasinn

GUESTS = Path(__file__).parent / "guests"
WIDTH = 2000            # 8000 bytes of output: more than the SDK's first guess, so it probes


@pytest.fixture(scope="module")
def relu_onnx(tmp_path_factory) -> Path:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "relu.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def explain_wasm(runtime, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("explain") / "explain.wasm"
    result = wasinn("build", str(GUESTS / "explain"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_success_with_a_size_probe_prints_no_error_line(explain_wasm, relu_onnx):
    ran = wasinn("run", "--dir", f"/m:{relu_onnx.parent}", str(explain_wasm), "/m/relu.onnx",
                 str(WIDTH))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"{WIDTH} 0.0 2.0\n"
    assert "wasi-nn" not in ran.stderr and "too_large" not in ran.stderr


def test_compute_failure_reason_reaches_stderr_and_detail(explain_wasm, relu_onnx):
    ran = wasinn("run", "--dir", f"/m:{relu_onnx.parent}", str(explain_wasm), "/m/relu.onnx",
                 "200")
    assert ran.returncode == 3, ran.stderr
    lines = [line for line in ran.stderr.splitlines() if line.startswith("wasinn: wasi-nn")]
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("wasinn: wasi-nn compute: runtime_error: ")
    assert "Expected: 2000" in lines[0] and "Got: 200" in lines[0]      # ONNX Runtime's words
    assert ran.stdout.startswith("errno=runtime_error detail=")
    assert "Expected: 2000" in ran.stdout


def test_native_mode_gives_the_same_detail(relu_onnx):
    ran = wasinn("run", "--native", str(GUESTS / "explain"), str(relu_onnx), "200")
    assert ran.returncode == 3, ran.stderr
    assert ran.stdout.startswith("errno=runtime_error detail=") and "Expected: 2000" in ran.stdout


def test_verbose_trace_carries_the_reason_once(explain_wasm, relu_onnx):
    ran = wasinn("run", "-v", "--dir", f"/m:{relu_onnx.parent}", str(explain_wasm),
                 "/m/relu.onnx", "200")
    assert ran.returncode == 3
    assert sum("compute" in line and "Expected: 2000" in line
               for line in ran.stderr.splitlines()) == 1


def test_file_outside_every_preopen_gets_a_dir_hint(runtime, tmp_path):
    guest = tmp_path / "g"
    guest.mkdir()
    (guest / "main.py").write_text("import sys, wasi_nn\nopen(sys.argv[1])\n")
    wasm = tmp_path / "g.wasm"
    assert wasinn("build", str(guest), "-o", str(wasm)).returncode == 0
    (tmp_path / "data").mkdir()
    outside = wasinn("run", "--dir", f"/data:{tmp_path / 'data'}", str(wasm), "/elsewhere/x")
    assert outside.returncode == 1 and "FileNotFoundError" in outside.stderr
    assert "'/elsewhere/x' is outside every folder" in outside.stderr
    assert "the host gave it /data" in outside.stderr and "--dir GUEST:HOST" in outside.stderr
    inside = wasinn("run", "--dir", f"/data:{tmp_path / 'data'}", str(wasm), "/data/missing")
    assert inside.returncode == 1 and "FileNotFoundError" in inside.stderr
    assert "hint" not in inside.stderr                   # a plain missing file: no hint

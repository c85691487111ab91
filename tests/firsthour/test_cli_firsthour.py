"""The paper cuts of a first hour with wasinn, each as a user meets it (real CLI subprocesses)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from firsthour_helpers import wasinn

ECHO = "import os, sys\nprint(sys.argv[1:])\nprint(os.environ.get('FOO'), os.environ.get('BAR'))\n"


@pytest.fixture(scope="module")
def echo_wasm(runtime, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("echo")
    (folder / "echo").mkdir()
    (folder / "echo" / "main.py").write_text(ECHO)
    out = folder / "echo.wasm"
    assert wasinn("build", str(folder / "echo"), "-o", str(out)).returncode == 0
    return out


def test_version():
    result = wasinn("--version")
    assert result.returncode == 0 and result.stdout.startswith("wasinn 0.")


def test_new_makes_a_guest_that_builds_runs_and_classifies(runtime, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    made = wasinn("new", "my-guest", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert {p.name for p in (tmp_path / "my-guest").iterdir()} == {
        "main.py", "README.md", "pyproject.toml"}
    built = wasinn("build", "my-guest", "-o", "g.wasm", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    hello = wasinn("run", "g.wasm", "you", cwd=tmp_path)
    assert (hello.returncode, hello.stdout) == (0, "hello, you\n")
    # A real model: logits x*[1,2,3,4] for an all-ones input -> softmax -> class 3 first.
    from onnx import TensorProto, helper, numpy_helper
    import numpy as np

    weights = numpy_helper.from_array(np.array([[1, 2, 3, 4]], dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"])], "mul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "m.onnx"))
    ran = wasinn("run", "--dir", ".:.", "g.wasm", "m.onnx", "1,4", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    exps = np.exp(np.array([1, 2, 3, 4.0]) - 4)
    expected = [f"class {i}: {p:.4f}" for i, p in sorted(enumerate(exps / exps.sum()),
                                                          key=lambda pair: -pair[1])]
    assert ran.stdout.splitlines() == expected
    native = wasinn("run", "--native", "my-guest", "m.onnx", "1,4", cwd=tmp_path)
    assert native.stdout == ran.stdout


def test_new_refuses_bad_names_and_existing_folders(tmp_path):
    (tmp_path / "taken").mkdir()
    for name in ("taken", "a b", "1x", "class", str(tmp_path / "no" / "such")):
        result = wasinn("new", name, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.startswith("wasinn new: error:"), name


def test_inspect_reports_flavour_imports_and_bundle(runtime, tmp_path):
    guest = tmp_path / "g"
    guest.mkdir()
    # json and the SDK are imported so that the tree-shaken bundle holds what --modules lists
    (guest / "main.py").write_text("import json\nimport wasi_nn\nimport helper\n")
    (guest / "helper.py").write_text("print('hi')\n")
    for flags, flavour in (((), "full"), (("--portable",), "portable")):
        wasm = tmp_path / f"{flavour}.wasm"
        assert wasinn("build", *flags, str(guest), "-o", str(wasm)).returncode == 0
        report = wasinn("inspect", str(wasm))
        assert report.returncode == 0, report.stderr
        assert f"built by wasinn: yes, {flavour}" in report.stdout
        assert "entry 'main'" in report.stdout and "guest/third-party modules: helper, main" \
            in report.stdout
        assert "wasi_snapshot_preview1" in report.stdout
    portable = wasinn("inspect", str(tmp_path / "portable.wasm")).stdout
    assert "load_by_name_with_config" not in portable
    listed = wasinn("inspect", "--modules", str(tmp_path / "full.wasm")).stdout
    assert "json.decoder" in listed and "wasi_nn._context" in listed


def test_inspect_on_hostile_or_missing_input_is_one_line_exit_2(tmp_path):
    (tmp_path / "junk.wasm").write_bytes(b"\0asm\x01\0\0\0" + os.urandom(300))
    (tmp_path / "text.wasm").write_text("hello")
    for target in ("junk.wasm", "text.wasm", "missing.wasm", "."):
        result = wasinn("inspect", target, cwd=tmp_path)
        assert result.returncode in (0, 2), target
        assert "Traceback" not in result.stderr, target
        if result.returncode == 2:
            assert len(result.stderr.strip().splitlines()) == 1, target


def test_env_key_alone_inherits_and_double_dash_passes_through(echo_wasm):
    result = wasinn("run", "--env", "FOO", "--env", "BAR", str(echo_wasm), "--", "-x",
                    env_extra={"FOO": "from host"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "['--', '-x']\nfrom host None\n"
    bad = wasinn("run", "--env", "=x", str(echo_wasm))
    assert bad.returncode == 2 and "bad --env" in bad.stderr


def test_dir_mistakes_and_folder_given_to_run_have_hints(echo_wasm, tmp_path):
    swapped = wasinn("run", "--dir", f"/data:{tmp_path / 'nope'}", str(echo_wasm))
    assert swapped.returncode == 2 and "no such directory" in swapped.stderr
    wasmtime_order = wasinn("run", "--dir", ".::.", str(echo_wasm))
    assert wasmtime_order.returncode == 2
    assert "not Wasmtime's HOST::GUEST" in wasmtime_order.stderr
    (tmp_path / "models").mkdir()
    reversed_ = wasinn("run", "--dir", "models:/elsewhere", str(echo_wasm), cwd=tmp_path)
    assert "perhaps --dir /elsewhere:models" in reversed_.stderr
    (tmp_path / "model.onnx").write_bytes(b"x")
    a_file = wasinn("run", "--dir", f"/m:{tmp_path / 'model.onnx'}", str(echo_wasm))
    assert a_file.returncode == 2 and "is a file; --dir preopens folders" in a_file.stderr
    folder = wasinn("run", str(tmp_path))
    assert folder.returncode == 2 and "is a folder, not a module" in folder.stderr
    assert "wasinn run --native" in folder.stderr and "wasinn build" in folder.stderr


LIST_GUEST = """
import sys
from wasi_nn import ExecutionTarget, GraphBuilder, GraphEncoding, TensorType
with GraphBuilder(GraphEncoding.ONNX, ExecutionTarget.CPU).build_from_files([sys.argv[1]]) as g:
    with g.init_execution_context() as ctx:
        ctx.set_input(0, TensorType.F32, [1, 4], [1.0, 2.0, 3.0, 4.0])
        ctx.compute()
        print(list(ctx.get_output_array(0)))
        try:
            ctx.set_input(0, TensorType.F32, [1, 4], {"not": "a buffer"})
        except TypeError as error:
            print("refused:", error)
"""


def test_set_input_list_is_accepted_the_same_way_in_both_modes(runtime, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"])], "neg",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "neg.onnx"))
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "main.py").write_text(LIST_GUEST)
    assert wasinn("build", "g", "-o", "g.wasm", cwd=tmp_path).returncode == 0
    wasm = wasinn("run", "--dir", ".:.", "g.wasm", "neg.onnx", cwd=tmp_path)
    native = wasinn("run", "--native", "g", "neg.onnx", cwd=tmp_path)
    assert wasm.returncode == 0, wasm.stderr
    assert wasm.stdout.splitlines()[0] == "[-1.0, -2.0, -3.0, -4.0]"
    assert "refused: set_input: data must be a buffer" in wasm.stdout
    assert native.stdout == wasm.stdout


def test_sdk_ships_py_typed():
    import wasi_nn

    assert (Path(wasi_nn.__file__).parent / "py.typed").is_file()

"""`import wasi_nn` stays light: heavy or optional parts load only when used."""

from __future__ import annotations

import ast
import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(sorted(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(ast.literal_eval(out.stdout.strip().splitlines()[-1]))


# Inside wasm there is no host package; hide it so only the SDK's own imports are measured.
WASM_LIKE = "import sys; sys.modules['wasinn'] = None\n"


def test_import_loads_no_helpers_or_heavy_stdlib():
    loaded = _modules_after(WASM_LIKE + "import wasi_nn\nassert wasi_nn.raw_layer == 'missing'")
    for name in ("wasi_nn.image", "wasi_nn.results", "wasi_nn.labels", "wasi_nn._imagenet_labels",
                 "wasi_nn._image_fallback", "numpy", "PIL", "dataclasses", "json", "heapq",
                 "inspect"):
        assert name not in loaded, name


def test_without_any_raw_layer_abi_calls_explain_what_to_install():
    code = (WASM_LIKE + "import wasi_nn\ntry:\n    wasi_nn.compute(0)\n"
            "except ImportError as e:\n    print('IMPORTERROR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "IMPORTERROR wasi_nn has no raw layer" in out.stdout
    assert "wasinn.native.raw" in out.stdout


def test_helpers_load_on_first_use():
    loaded = _modules_after("import wasi_nn; wasi_nn.sort_results([1.0])")
    assert "wasi_nn.results" in loaded and "wasi_nn.image" not in loaded
    loaded = _modules_after("import wasi_nn; wasi_nn.imagenet_labels()")
    assert "wasi_nn._imagenet_labels" in loaded


def test_public_names():
    import wasi_nn

    for name in ("load", "load_by_name", "load_by_name_with_config", "init_execution_context",
                 "set_input", "compute", "get_output", "compute_single", "get_output_single",
                 "fini_single", "unload", "finalize_execution_context", "Tensor", "GraphBuilder",
                 "Graph", "GraphExecutionContext", "WasiNnError", "Errno", "GraphEncoding",
                 "ExecutionTarget", "TensorType", "image_to_tensor", "decode_image", "resize",
                 "sort_results", "top_k", "format_results", "imagenet_labels"):
        assert hasattr(wasi_nn, name), name
    assert "image_to_tensor" in dir(wasi_nn)

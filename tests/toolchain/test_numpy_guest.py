"""numpy inside a guest: the numpy runtime flavour against native numpy of the same version."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wasinn_toolchain import paths
from wasinn_toolchain.bundler import build_guest
from wasinn_toolchain.numpy_build import NUMPY_VERSION

GUEST = Path(__file__).parent / "numpy_guest"

pytestmark = pytest.mark.skipif(
    not paths.numpy_runtime_wasm().is_file(),
    reason="numpy flavour not built (python -m wasinn_toolchain.build_runtime --numpy)")


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def numpy_guest(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("numpy") / "numpy_guest.wasm"
    return build_guest(GUEST, out)


def test_a_numpy_guest_gets_the_numpy_flavour(numpy_guest) -> None:
    assert numpy_guest.runtime == paths.numpy_runtime_wasm()
    assert "numpy" in numpy_guest.third_party


def test_a_guest_without_numpy_keeps_the_plain_runtime(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "main.py").write_text("print('hi')\n")
    report = build_guest(tmp_path / "g", tmp_path / "g.wasm")
    assert report.runtime == paths.runtime_wasm()
    assert "numpy" not in report.third_party


def test_numpy_in_the_guest_prints_what_native_numpy_prints(numpy_guest) -> None:
    numpy = pytest.importorskip("numpy")
    if numpy.__version__ != NUMPY_VERSION:
        pytest.skip(f"native numpy {numpy.__version__} is not the guest's {NUMPY_VERSION}: "
                    "seeded streams and reprs could differ")
    native = _run([sys.executable, str(GUEST / "main.py")])
    assert native.returncode == 0, native.stderr
    wasm = _run([sys.executable, "-m", "wasinn", "run", str(numpy_guest.output)])
    assert wasm.returncode == 0, wasm.stderr
    assert wasm.stdout.splitlines()[0] == f"version {NUMPY_VERSION}"
    assert wasm.stdout == native.stdout


def test_a_guarded_numpy_import_keeps_the_plain_runtime(tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "main.py").write_text(
        "try:\n    import numpy\nexcept ImportError:\n    numpy = None\nprint(numpy)\n")
    report = build_guest(tmp_path / "g", tmp_path / "g.wasm", verbose=True)
    assert report.runtime == paths.runtime_wasm() and "numpy" not in report.third_party
    assert any("unguarded" in warning for warning in report.warnings)


@pytest.mark.skipif(shutil.which("wasm-tools") is None, reason="wasm-tools not installed")
def test_the_numpy_flavours_need_only_widely_supported_features() -> None:
    for portable in (False, True):
        subprocess.run(["wasm-tools", "validate", "--features",
                        "mvp,mutable-global,sign-extension,saturating-float-to-int,bulk-memory",
                        str(paths.numpy_runtime_wasm(portable))], check=True)

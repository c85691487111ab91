"""The pool probe guest (`guests/pool_probe`), built once per test session with the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GUESTS = Path(__file__).resolve().parent / "guests"


def build_guest(name: str, out_dir: Path) -> Path:
    """`wasinn build guests/NAME`; skips cleanly when the guest runtime is not built."""
    from wasinn_toolchain import paths

    if not paths.runtime_wasm().is_file():
        pytest.skip(f"guest runtime not built; run {paths.BUILD_COMMAND}")
    output = out_dir / f"{name}.wasm"
    result = subprocess.run([sys.executable, "-m", "wasinn", "build", str(GUESTS / name),
                             "-o", str(output)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return output

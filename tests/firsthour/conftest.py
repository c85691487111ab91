"""Fixtures for issue 9's tests (the first hour of a new user): the built runtime, a CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def runtime() -> Path:
    """The built guest runtime, or a clean skip saying how to build it."""
    from wasinn_toolchain import paths

    wasm = paths.runtime_wasm()
    if not wasm.is_file() or not paths.runtime_wasm(portable=True).is_file():
        pytest.skip(f"guest runtime not built ({wasm}); run {paths.BUILD_COMMAND}")
    return wasm


def wasinn(*args: str, cwd: Path | None = None, timeout: float = 300,
           env_extra: dict[str, str] | None = None,
           input: bytes | None = None) -> subprocess.CompletedProcess:
    """`python -m wasinn ARGS` as a user runs it (text output)."""
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "wasinn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, input=input)

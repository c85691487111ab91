"""Fixtures for issue 9's tests (the first hour of a new user): the built runtime, a CLI."""

from __future__ import annotations

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

"""Shared test fixtures: paths to the real models and images, and the built guest runtime."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture(scope="session", autouse=True)
def private_module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep the precompiled modules of this run's many temporary guests out of the user's cache
    (subprocesses inherit the variable)."""
    folder = tmp_path_factory.mktemp("wasinn-module-cache")
    previous = os.environ.get("WASINN_CACHE_DIR")
    os.environ["WASINN_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("WASINN_CACHE_DIR", None)
    else:
        os.environ["WASINN_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """`../shared/fixtures`, or a clean skip when the folder is absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is absent")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO

"""scripts/quickstart, the README's first command (run with --skip-setup: setup already ran)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from _example_runs import REPO

QUICKSTART = REPO / "scripts" / "quickstart"


def _quickstart(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(QUICKSTART), "--skip-setup", *args], capture_output=True,
                          text=True, timeout=600, env={**os.environ, **(env or {})}, check=False)


@pytest.mark.fixtures
def test_quickstart_prints_banana_first(fixtures_dir: Path, runtime: Path) -> None:
    result = _quickstart()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-5].startswith("   1.) [954](") and lines[-5].endswith(")banana")
    assert (REPO / "build" / "mobilenet.wasm").is_file()


@pytest.mark.fixtures
def test_quickstart_classifies_a_given_image(fixtures_dir: Path, runtime: Path) -> None:
    result = _quickstart(str(fixtures_dir / "images" / "dog.jpg"))
    assert result.returncode == 0, result.stderr
    assert "retriever" in result.stdout.splitlines()[-5]


def test_quickstart_without_fixtures_says_what_is_missing(tmp_path: Path) -> None:
    result = _quickstart(env={"WASINN_FIXTURES": str(tmp_path)})
    assert result.returncode == 1
    assert "the project's fixtures are missing" in result.stderr
    assert "WASINN_FIXTURES" in result.stderr


def test_quickstart_with_a_missing_image_says_so(fixtures_dir: Path) -> None:
    result = _quickstart(str(fixtures_dir / "no-such-picture.jpg"))
    assert result.returncode == 1
    assert "quickstart: no such image:" in result.stderr

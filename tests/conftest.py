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


# -- the tiny GGUF language model (GGML backend tests) -------------------------------------
TINY_GGUF_TOOL = REPO.parent / "shared" / "tools" / "tiny_gguf"
LLAMA_CPP_PYTHON = "llama_cpp_python-0.3.36"


def wasinn_cache_dir() -> Path:
    """`~/.cache/wasinn` (or `$XDG_CACHE_HOME/wasinn`): what scripts/setup fills and tests reuse."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wasinn"


def llama_cpp_converter() -> Path | None:
    """llama.cpp's `convert_hf_to_gguf.py` from the llama-cpp-python sdist scripts/setup unpacks
    (or `$WASINN_LLAMA_CPP_SRC`, a folder holding it)."""
    folders = [os.environ.get("WASINN_LLAMA_CPP_SRC", ""),
               str(wasinn_cache_dir() / "src" / LLAMA_CPP_PYTHON / "vendor" / "llama.cpp")]
    for folder in filter(None, folders):
        script = Path(folder) / "convert_hf_to_gguf.py"
        if script.is_file():
            return script
    return None


@pytest.fixture(scope="session")
def tiny_gguf() -> Path:
    """The tiny Zen-of-Python GGUF (../shared/tools/tiny_gguf), made once and cached: about a
    minute on first use. Skips cleanly when the tool, llama-cpp-python, the converter or the
    training packages are absent."""
    import hashlib
    import importlib.util
    import subprocess
    import sys

    maker = TINY_GGUF_TOOL / "make_tiny_gguf.py"
    if not maker.is_file():
        pytest.skip("../shared/tools/tiny_gguf is absent")
    missing = [m for m in ("llama_cpp", "torch", "transformers", "sentencepiece")
               if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the tiny GGUF model needs {', '.join(missing)} (pip install -e '.[ggml,test]')")
    converter = llama_cpp_converter()
    if converter is None:
        pytest.skip("llama.cpp's convert_hf_to_gguf.py is absent (scripts/setup unpacks it)")
    digest = hashlib.sha256(maker.read_bytes()).hexdigest()[:12]
    model = wasinn_cache_dir() / "tiny_gguf" / f"zen-f32-{digest}.gguf"
    if not model.is_file():
        model.parent.mkdir(parents=True, exist_ok=True)
        partial = model.with_suffix(f".{os.getpid()}.part")
        result = subprocess.run(
            [sys.executable, str(maker), "--converter", str(converter), "--out", str(partial)],
            capture_output=True, text=True, timeout=900)
        if result.returncode != 0 or not partial.is_file():
            pytest.fail(f"make_tiny_gguf.py failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        partial.replace(model)    # atomic: parallel sessions never see half a model
    return model

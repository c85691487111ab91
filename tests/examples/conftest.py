"""Fixtures for the end-to-end example tests: the CLI, the runtime, built guests, models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from _example_runs import EXAMPLES, build


@pytest.fixture(scope="session")
def runtime() -> Path:
    """The built guest runtime, or a clean skip saying how to build it."""
    from wasinn_toolchain import paths

    wasm = paths.runtime_wasm()
    if not wasm.is_file():
        pytest.skip(f"guest runtime not built ({wasm}); run {paths.BUILD_COMMAND}")
    return wasm


@pytest.fixture(scope="session")
def built(runtime: Path, tmp_path_factory: pytest.TempPathFactory):
    """`built(package_dir)` -> the package's .wasm, built once per test session."""
    out_dir = tmp_path_factory.mktemp("built")
    cache: dict[Path, Path] = {}

    def get(package: Path) -> Path:
        package = package.resolve()
        if package not in cache:
            cache[package] = build(package, out_dir / f"{package.name}.wasm")
        return cache[package]

    return get


@pytest.fixture(scope="session")
def prepare_models():
    """The examples' `prepare_models` script, imported as a module."""
    spec = importlib.util.spec_from_file_location("prepare_models",
                                                  EXAMPLES / "prepare_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def real_models(fixtures_dir: Path, prepare_models) -> dict[str, Path]:
    """Every example's real model prepared from ../shared/fixtures: name -> model folder."""
    prepare_models.prepare(list(prepare_models.PREPARERS), fixtures_dir)
    return {name: prepare_models.model_dir(name) for name in prepare_models.PREPARERS}


def exact_native_images() -> bool:
    """True when native mode decodes with the same C code as the guest (bit-equal tensors)."""
    from wasi_nn.image import image_backend

    return image_backend().__name__ == "_wasinn_image"

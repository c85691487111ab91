"""The numpy flavour's build script: its cross file and its command line (no compiling here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasinn_toolchain import build_runtime, numpy_build, numpy_parts


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
    from wasinn_toolchain.bundler import NUMPY_C_IMPORTS, NUMPY_RANDOM_C_IMPORTS

    source = paths.build_dir() / "numpy" / "src" / "numpy"
    if not source.is_dir():
        pytest.skip("the numpy flavour was not built here (no numpy sources)")
    found: set[str] = set()
    pyx = re.compile(r"^\s*(?:from|import)\s+([a-z_][\w.]*)(?:\s+(?:c?import|as)\b|\s*$)", re.M)
    c_api = re.compile(r'(?:PyImport_ImportModule|npy_cache_import_runtime|IMPORT_GLOBAL)'
                       r'\(\s*"([\w.]+)"')
    for path in source.rglob("*.pyx"):
        if "tests" not in path.parts and "_examples" not in path.parts:
            assert path.parent.name == "random", path   # NUMPY_RANDOM_C_IMPORTS assumes it
            found.update(pyx.findall(path.read_text(errors="replace")))
    from_c: set[str] = set()
    for pattern in ("*.c", "*.cpp", "*.h"):
        for path in source.rglob(pattern):
            text = path.read_text(errors="replace")
            from_c.update(c_api.findall(text))
            if "PyDateTime_IMPORT" in text:
                from_c.add("datetime")
    found |= from_c
    stdlib = {name for name in found if name.split(".")[0] in sys.stdlib_module_names}
    stdlib -= {"ctypes", "cffi"}       # optional: numpy guards them, the runtime has no ctypes
    known = set(NUMPY_C_IMPORTS) | set(NUMPY_RANDOM_C_IMPORTS)
    assert stdlib <= known, sorted(stdlib - known)
    stdlib_from_c = {name for name in from_c if name.split(".")[0] in sys.stdlib_module_names}
    assert stdlib_from_c <= set(NUMPY_C_IMPORTS), sorted(stdlib_from_c - set(NUMPY_C_IMPORTS))
    # The numpy modules its C imports by name are bundled even though no Python imports them
    # (the Cython modules' numpy imports are followed from the numpy.random package's).
    numpy_from_c = {name for name in from_c if name.split(".")[0] == "numpy"}
    numpy_from_c -= set(numpy_build.MODULES.values()) | {"numpy._core._multiarray_umath"}
    numpy_from_c -= {"numpy._core._simd", "numpy._core._rational_tests"}  # test-only builds
    missing = numpy_from_c - set(numpy_parts.C_IMPORTS)
    assert not missing, sorted(missing)

"""Which parts of numpy a guest gets: numpy_parts' rules, then real numpy guests built and run.

The guests here use the numpy flavour (skipped when it is not built); the rule tests need nothing.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from wasinn_toolchain import numpy_parts, paths
from wasinn_toolchain.bundle_format import read_bundle
from wasinn_toolchain.bundler import BuildError, build_guest
from wasinn_toolchain.wasm_module import read_appended_bundle

needs_numpy_flavour = pytest.mark.skipif(
    not paths.numpy_runtime_wasm().is_file(),
    reason="numpy flavour not built (python -m wasinn_toolchain.build_runtime --numpy)")
MODULES = {"numpy", "numpy.random", "numpy.lib", "numpy.lib.stride_tricks", "numpy.linalg"}


def test_attributes_of_numpy_names_are_the_submodules_a_module_uses() -> None:
    tree = ast.parse(
        "import numpy as np\nimport numpy.linalg as la\n"
        "def f():\n    return np.random.default_rng(0), np.lib.stride_tricks.as_strided\n"
        "x = np.zeros(3); y = la.norm; z = np.fft.fft\n")
    uses = numpy_parts.attribute_uses(tree, MODULES)
    assert set(uses) == {"numpy.random", "numpy.lib", "numpy.lib.stride_tricks", "numpy.fft"}
    assert uses["numpy.random"] == 4 and uses["numpy.fft"] == 5
    # no numpy import, no numpy names: `np` may be anything
    assert numpy_parts.attribute_uses(ast.parse("np.random.x\n"), MODULES) == {}


def test_docstrings_go_but_numpys_placeholders_and_asserts_stay() -> None:
    tree = numpy_parts.strip_docstrings(ast.parse(
        '"""module"""\nclass C:\n    """class"""\ndef f():\n    """doc"""\n    assert False\n'
        'def g():\n    """${ARRAY_FUNCTION_LIKE}"""\n'))
    namespace: dict = {}
    exec(compile(tree, "<test>", "exec"), namespace)
    assert namespace.get("__doc__") is None and namespace["C"].__doc__ is None
    assert namespace["f"].__doc__ is None and namespace["g"].__doc__ == "${ARRAY_FUNCTION_LIKE}"
    with pytest.raises(AssertionError):
        namespace["f"]()


def _guest(root: Path, source: str, pyproject: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.py").write_text(source)
    if pyproject:
        (root / "pyproject.toml").write_text(pyproject)
    return root


def _run(wasm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wasinn", "run", str(wasm), *args],
                          capture_output=True, text=True, timeout=300)


def _records(wasm: Path) -> dict[str, bytes]:
    return {m.name: m.code for m in read_bundle(read_appended_bundle(wasm.read_bytes())).modules}


@needs_numpy_flavour
def test_a_numpy_hello_guest_carries_only_what_import_numpy_needs(tmp_path: Path) -> None:
    src = _guest(tmp_path / "hello", "import numpy\nprint('hello', numpy.__version__)\n")
    report = build_guest(src, tmp_path / "hello.wasm")
    records = _records(report.output)
    for left_out in ("numpy.testing", "numpy.f2py", "numpy.typing", "numpy.polynomial",
                     "numpy.random", "numpy._pyinstaller", "doctest", "unittest", "pydoc"):
        assert left_out not in records
    assert {"numpy.linalg", "numpy.ma"} <= set(records)  # np.unique / np.median use np.ma
    # numpy was imported by the snapshot, so its code left the bundle
    assert len(records["numpy"].rstrip(b"\0")) < 1000 and records["numpy"].endswith(b"\0")
    assert report.output_size <= 20_000_000   # issue 11's figure (was 20.3 MB)
    proc = _run(report.output)
    assert proc.returncode == 0 and proc.stdout.startswith("hello 2."), proc.stderr


@needs_numpy_flavour
def test_a_dynamically_imported_numpy_module_needs_include(tmp_path: Path) -> None:
    source = "import importlib, sys\nimport numpy\nprint(importlib.import_module(sys.argv[1]))\n"
    plain = build_guest(_guest(tmp_path / "dyn", source), tmp_path / "dyn.wasm").output
    proc = _run(plain, "numpy.polynomial")
    assert proc.returncode == 1
    assert "No module named 'numpy.polynomial'" in proc.stderr
    assert 'include = ["numpy.polynomial"]' in proc.stderr and "--include numpy.polynomial" \
        in proc.stderr
    included = build_guest(
        _guest(tmp_path / "inc", source, '[tool.wasinn]\ninclude = ["numpy.polynomial"]\n'),
        tmp_path / "inc.wasm", snapshot=False).output
    proc = _run(included, "numpy.polynomial.legendre")   # a package brings its submodules
    assert proc.returncode == 0 and "numpy.polynomial.legendre" in proc.stdout, proc.stderr


@needs_numpy_flavour
def test_submodules_reached_as_attributes_work_and_random_is_fresh_per_run(
        tmp_path: Path) -> None:
    source = ("import numpy as np\nimport numpy.random\n"
              "print(np.polynomial.Polynomial([1, 2]).deriv().coef.tolist(),"
              " np.linalg.det(np.eye(2)), np.random.default_rng(1).integers(0, 100, 3).tolist())\n"
              "print(np.random.rand())\n")
    wasm = build_guest(_guest(tmp_path / "attrs", source), tmp_path / "attrs.wasm").output
    one, two = _run(wasm), _run(wasm)
    assert one.returncode == 0, one.stderr
    native = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True)
    assert one.stdout.splitlines()[0] == native.stdout.splitlines()[0]
    # np.random's legacy global state was seeded when the snapshot imported numpy.random
    assert one.stdout.splitlines()[1] != two.stdout.splitlines()[1]


@needs_numpy_flavour
@pytest.mark.parametrize("source", ["import numpy as np\nprint(np.fft.fft([1.0]))\n",
                                    "from numpy import fft\n", "import numpy.fft\n"])
def test_numpy_fft_is_refused_at_build_time_with_the_reason(tmp_path: Path, source: str) -> None:
    with pytest.raises(BuildError, match=r"main.py:\d+: cannot (use|import) 'numpy.fft'.*"
                                         "pocketfft"):
        build_guest(_guest(tmp_path / "fft", source), tmp_path / "fft.wasm", snapshot=False)


@needs_numpy_flavour
def test_includes_of_numpy_modules_are_checked(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="include: cannot bundle 'numpy.fft'"):
        build_guest(_guest(tmp_path / "inc", "import numpy\n"), tmp_path / "inc.wasm",
                    include=["numpy.fft"], snapshot=False)
    with pytest.raises(BuildError, match="include: no module named 'numpy.nope'"):
        build_guest(_guest(tmp_path / "inc", "import numpy\n"), tmp_path / "inc.wasm",
                    include=["numpy.nope"], snapshot=False)

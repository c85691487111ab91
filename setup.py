"""Package layout and the optional native extensions.

Three import packages live in three source folders (see docs/contracts.md). The C image module
that the guest runtime links in is also built here as a native extension, so that native mode
decodes and resizes with exactly the same code as the wasm guest (byte-identical tensors).
It needs Debian's `libstb-dev`; without it the build carries on and the SDK falls back to Pillow.
The host's C trampoline for wasi-nn calls (`wasinn.abi._fastcall`) needs only Python's headers;
without it the host uses the same trampoline written with ctypes.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOTS = {"sdk": "wasi_nn", "host": "wasinn", "toolchain": "wasinn_toolchain"}


def _packages() -> tuple[list[str], dict[str, str]]:
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder, top in ROOTS.items():
        for name in find_packages(folder, include=[top, f"{top}.*"]):
            packages.append(name)
            package_dir[name] = f"{folder}/{name.replace('.', '/')}"
    return packages, package_dir


class OptionalBuildExt(build_ext):
    """Build the optional extensions where they can be built; never fail the install over them."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # noqa: BLE001 - any compiler failure means "skip"
            print(f"warning: native _wasinn_image not built ({error}); "
                  "install Debian's libstb-dev for byte-identical native mode", file=sys.stderr)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:  # noqa: BLE001
            print(f"warning: {ext.name} not built: {error}", file=sys.stderr)


class BuildPyWithRuntime(build_py):
    """Ship the built guest runtime (platform-independent wasm) as package data of
    `wasinn_toolchain`, so an installed wheel builds guests with no checkout and no zig.

    The files come from `toolchain/build/` (`python -m wasinn_toolchain.build_runtime`); the
    names are `wasinn_toolchain.paths.RUNTIME_FILES`. Editable installs read the checkout's
    folder directly and copy nothing.
    """

    RUNTIME_FILES = ("wasinn-runtime.wasm", "wasinn-runtime-portable.wasm", "stdlib.bundle",
                     "stdlib.manifest.json")

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = Path(__file__).resolve().parent / "toolchain" / "build"
        missing = [name for name in self.RUNTIME_FILES if not (source / name).is_file()]
        if missing:
            print(f"warning: the guest runtime is not built ({', '.join(missing)} missing in "
                  f"{source}): this package will not build guests. Run "
                  "`python -m wasinn_toolchain.build_runtime` first.", file=sys.stderr)
            return
        target = Path(self.build_lib) / "wasinn_toolchain" / "runtime"
        target.mkdir(parents=True, exist_ok=True)
        for name in self.RUNTIME_FILES:
            shutil.copyfile(source / name, target / name)


packages, package_dir = _packages()

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={"wasinn_toolchain": ["*.txt", "wit/*.wit", "wit/deps/*/*.wit"],
                  "wasi_nn": ["py.typed"]},
    ext_modules=[
        Extension(
            "_wasinn_image",
            sources=["toolchain/runtime/image_module.c"],
            include_dirs=["/usr/include/stb", "toolchain/runtime"],
            extra_compile_args=["-O2"],
        ),
        # the host's trampoline for wasi_ephemeral_nn calls (wasinn/abi/fastcall.py falls
        # back to a ctypes one without it)
        Extension(
            "wasinn.abi._fastcall",
            sources=["host/csrc/fastcall_module.c"],
            extra_compile_args=["-O2"],
        ),
    ],
    cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyWithRuntime},
)

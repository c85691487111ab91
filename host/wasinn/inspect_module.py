"""`wasinn inspect MODULE`: what a .wasm is before running it.

Prints the size, whether `wasinn build` made it and for which runtime flavour (full: all twelve
`wasi_ephemeral_nn` functions, for wasinn's host and WasmEdge 0.15+; portable: the six every
runtime has, e.g. Wasmtime's CLI), its imports, its memory, and the bundled Python modules
grouped by origin. Reads the file only: nothing of the module runs, and bundled code objects
are never unmarshaled (marshal is not safe on untrusted bytes).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from .errors import HostError

PORTABLE_NN = frozenset({"load", "load_by_name", "init_execution_context", "set_input",
                         "compute", "get_output"})
MAX_FILE = 1 << 30


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "inspect", help="show a module's flavour, imports, size and bundled modules",
        description="Describe a .wasm without running it: wasinn flavour, imports, memory, "
                    "and the Python modules bundled in it.")
    parser.add_argument("module", metavar="MODULE")
    parser.add_argument("--modules", action="store_true",
                        help="list every bundled module, not only the counts per origin")
    parser.set_defaults(handler=run)


def _stdlib_names() -> frozenset[str]:
    """The runtime's stdlib module names (from the installed runtime's bundle), if present."""
    try:
        from wasinn_toolchain import paths
        from wasinn_toolchain.bundle_format import read_bundle

        return frozenset(m.name for m in read_bundle(paths.stdlib_bundle().read_bytes()).modules)
    except Exception:  # noqa: BLE001 - only a nicer grouping is lost
        return frozenset()


#: the start-up helper module every build adds (wasinn_toolchain.bundler.BOOT_MODULE; named
#: here so `inspect` does not import the bundler)
BOOT_MODULE = "_wasinn_boot"


def origin(name: str, stdlib: frozenset[str]) -> str:
    top = name.split(".")[0]
    if top == "wasi_nn":
        return "SDK"
    if name == BOOT_MODULE:
        return "wasinn start-up"
    if name in stdlib:
        return "stdlib"
    return "guest/third-party"


def describe(data: bytes, name: str, list_modules: bool = False) -> list[str]:
    """The report's lines (raises HostError for a file that is not a core wasm module)."""
    from wasinn_toolchain.bundle_format import read_bundle
    from wasinn_toolchain.wasm_module import WasmFormatError, import_entries, \
        read_appended_bundle

    try:
        imports = import_entries(data)
    except WasmFormatError as error:
        raise HostError(f"{name} is not a core wasm module: {error}") from None
    lines = [f"{name}: {len(data) / 1e6:.1f} MB core wasm module"]
    nn = {n for m, n, _ in imports if m == "wasi_ephemeral_nn"}
    try:
        bundle_bytes = read_appended_bundle(data)
    except WasmFormatError:
        bundle_bytes = None
    if bundle_bytes is None:
        lines.append("built by wasinn: no (no bundle; a plain module or the bare runtime)")
    else:
        flavour = ("portable (the six wasi_ephemeral_nn functions every runtime has: runs on "
                   "Wasmtime, WasmEdge, wasinn)" if nn <= PORTABLE_NN else
                   "full (all wasi_ephemeral_nn functions: wasinn's host, WasmEdge 0.15+; "
                   "Wasmtime's CLI refuses it)")
        lines.append(f"built by wasinn: yes, {flavour}")
    by_module = Counter(m for m, _, _ in imports)
    lines.append("imports: " + ", ".join(f"{m} ({count})" for m, count in sorted(by_module.items())))
    if nn:
        lines.append(f"  wasi_ephemeral_nn: {', '.join(sorted(nn))}")
    if bundle_bytes is not None:
        try:
            bundle = read_bundle(bundle_bytes)
        except Exception as error:  # noqa: BLE001 - a damaged bundle is reported, not raised
            lines.append(f"bundle: unreadable ({error})")
            return lines
        stdlib = _stdlib_names()
        groups = Counter(origin(m.name, stdlib) for m in bundle.modules)
        lines.append(f"bundle: {len(bundle_bytes) / 1e6:.1f} MB, entry '{bundle.entry}', "
                     f"{len(bundle.modules)} modules ("
                     + ", ".join(f"{count} {group}" for group, count in sorted(groups.items()))
                     + ")")
        guest = sorted(m.name for m in bundle.modules
                       if origin(m.name, stdlib) == "guest/third-party")
        shown = [m.name for m in sorted(bundle.modules, key=lambda m: m.name)] \
            if list_modules else guest
        label = "modules" if list_modules else "guest/third-party modules"
        lines.append(f"{label}: {', '.join(shown) or '(none)'}")
    return lines


def run(options: argparse.Namespace) -> int:
    path = Path(options.module)
    if path.is_dir():
        raise HostError(f"{path} is a folder; inspect a built module (wasinn build {path} "
                        "first)")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE + 1)
    except OSError as error:
        raise HostError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    if len(data) > MAX_FILE:
        raise HostError(f"{path} is larger than 1 GiB: not a guest module")
    print("\n".join(describe(data, path.name, options.modules)))
    return 0

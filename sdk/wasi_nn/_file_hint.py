"""A hint when a guest dies of FileNotFoundError for a path outside every preopened folder.

A wasm guest sees only the host folders given to it (`--dir`); for any other path WASI answers
"No such file or directory", just as for a missing file, which sent users looking for typos.
Installed by the SDK inside wasm only: after the usual traceback it adds one line when no
folder above the path is visible to the guest, naming the preopens where wasinn's host lists
them (`/.wasinn/preopens`).
"""

from __future__ import annotations

import os
import sys

from ._errors import HOST_FOLDER


def outside_preopens(path: str) -> bool:
    """True when neither the path nor any folder above it is visible to the guest."""
    current = os.path.normpath(path)
    while True:
        try:
            os.stat(current)
            return False
        except OSError:
            pass
        parent = os.path.dirname(current)
        if parent == current or not parent:
            if not os.path.isabs(current):
                try:
                    os.stat(".")
                    return False
                except OSError:
                    return True
            return True
        current = parent


def hint(path: str) -> str:
    try:
        with open(f"{HOST_FOLDER}/preopens", encoding="utf-8") as handle:
            preopens = [line for line in handle.read().splitlines() if line]
        given = (f"the host gave it {', '.join(preopens)}" if preopens
                 else "the host gave it no folder")
    except OSError:
        given = "it sees only the folders the host preopened"
    return (f"hint: {path!r} is outside every folder this wasm guest can see ({given}); "
            "give the folder with --dir GUEST:HOST (wasinn run, WasmEdge; e.g. --dir .:.) "
            "or --dir HOST::GUEST (wasmtime)")


def install() -> None:
    previous = sys.excepthook

    def excepthook(kind, value, traceback) -> None:
        previous(kind, value, traceback)
        filename = getattr(value, "filename", None)
        if isinstance(value, FileNotFoundError) and isinstance(filename, str):
            try:
                if outside_preopens(filename):
                    print(hint(filename), file=sys.stderr)
            except Exception:  # noqa: BLE001 - a hint must never hide the real error
                pass

    sys.excepthook = excepthook

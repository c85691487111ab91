"""What to try instead, for the mistakes new users make with `wasinn run` (one line each)."""

from __future__ import annotations

from pathlib import Path


def missing_dir(guest: str, host: str) -> str:
    """The message for `--dir GUEST:HOST` whose HOST folder does not exist."""
    message = f"--dir {guest}:{host}: no such directory {host!r}"
    if Path(host).exists():
        parent = str(Path(host).parent)
        return (f"--dir {guest}:{host}: {host!r} is a file; --dir preopens folders, e.g. "
                f"--dir {parent}:{parent} and pass the file's path as an argument")
    if host.startswith(":") or "::" in f"{guest}:{host}":
        return (message + "; wasinn takes --dir GUEST:HOST (WasmEdge's order, e.g. --dir .:.),"
                " not Wasmtime's HOST::GUEST")
    if Path(guest).is_dir():
        return (message + f"; the order is GUEST:HOST (guest path first), so perhaps "
                f"--dir {host}:{guest}")
    return message


def folder_as_module(path: Path) -> str:
    """The message for `wasinn run FOLDER`."""
    return (f"{str(path)!r} is a folder, not a module: build it first "
            f"(`wasinn build {path} -o {path.name or 'guest'}.wasm`), or run its main.py under "
            f"this Python with `wasinn run --native {path}`")

"""Checks on what a user (or a script fed hostile data) passes to `wasinn run` in wasm mode.

The OS hands Python arguments, environment values and paths as bytes, decoded with
`surrogateescape`, so bytes that are not UTF-8 arrive as lone surrogates (`'\\udcff'`).
WASI passes argv, the environment and preopened paths to the guest as UTF-8 text, and
wasmtime-py encodes them with a plain `.encode("utf-8")`: a lone surrogate would end the run
with a traceback. They are refused here instead, with one line that names the culprit
(`wasinn run: error: …`, exit 2). Native mode needs none of this: it hands the strings to
Python code as they are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from .runner import HostError


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def require_utf8(what: str, text: str) -> None:
    """HostError unless `text` is valid UTF-8 (no lone surrogates from undecodable bytes)."""
    if not _is_utf8(text):
        try:
            shown = os.fsencode(text).decode("utf-8", "backslashreplace")   # the OS's bytes
        except UnicodeEncodeError:                                          # not from the OS
            shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
        raise HostError(f"{what} '{shown}' is not valid UTF-8; WASI passes it to the guest "
                        "as UTF-8 text")


def check_wasm_run_input(module: Path, args: Sequence[str],
                         env: Iterable[tuple[str, str]],
                         dirs: Iterable[tuple[str, str]]) -> None:
    """Every string `wasinn run` hands to WASI or wasmtime must be valid UTF-8."""
    require_utf8("the module path", str(module))
    for position, arg in enumerate(args, start=1):
        require_utf8(f"guest argument {position}", arg)
    for key, value in env:
        require_utf8("--env name", key)
        require_utf8(f"--env {key!r} value" if _is_utf8(key) else "--env value", value)
    for guest, host in dirs:
        require_utf8("--dir guest path", guest)
        require_utf8("--dir host path", host)

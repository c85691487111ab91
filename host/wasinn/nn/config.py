"""Parsing the JSON config of `load_by_name_with_config` (WasmEdge's GGML-style options).

The config comes from the guest, so it is hostile until parsed. Python's `json` has two traps
that would otherwise surface as an "internal error" instead of invalid_argument:
- deep nesting (`[[[[…`) recurses in the C scanner until RecursionError;
- a long number (100 000 digits) hits CPython's int string-conversion limit (4300 digits),
  a ValueError that is not a JSONDecodeError.
Both are checked here, before or while parsing, and every failure is `NnError(INVALID_ARGUMENT)`
with a message that says what was wrong. Real configs are small flat objects
(`{"ctx-size": 512, "n-gpu-layers": 0}`), so the limits below never bite them.
"""

from __future__ import annotations

from typing import Any

from .errors import Errno, NnError

MAX_CONFIG_BYTES = 1 << 20
"""Longest config accepted (1 MiB): options, not data."""

MAX_DEPTH = 32
"""Deepest nesting of arrays/objects accepted."""

MAX_NUMBER_DIGITS = 1000
"""Longest number literal accepted (well under CPython's 4300-digit int limit)."""


def _invalid(message: str) -> NnError:
    return NnError(Errno.INVALID_ARGUMENT, f"config: {message}")


def _check_depth(text: str) -> None:
    """invalid_argument when brackets outside strings nest deeper than MAX_DEPTH.

    A linear scan, so a hostile config never reaches the recursive parser.
    """
    depth = 0
    in_string = escaped = False
    for position, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _invalid(f"nested deeper than {MAX_DEPTH} levels (at character {position})")
        elif char in "]}":
            depth -= 1


def _number(text: str, convert: Any) -> Any:
    if len(text) > MAX_NUMBER_DIGITS:
        raise _invalid(f"a number of {len(text)} characters (at most {MAX_NUMBER_DIGITS})")
    return convert(text)


def _no_constant(name: str) -> Any:
    raise _invalid(f"{name} is not valid JSON")


def parse_config(text: str | bytes | bytearray | memoryview) -> dict[str, Any]:
    """The config as a dict; `{}` for an empty or blank config.

    `text` may be the raw bytes from the guest (decoded as strict UTF-8). Raises
    `NnError(INVALID_ARGUMENT)` for anything that is not a small JSON object.
    """
    if not isinstance(text, str):
        raw = bytes(text)
        if len(raw) > MAX_CONFIG_BYTES:
            raise _invalid(f"{len(raw)} bytes long (at most {MAX_CONFIG_BYTES})")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _invalid(f"not valid UTF-8 (byte {error.start})") from None
    elif len(text) > MAX_CONFIG_BYTES:
        raise _invalid(f"{len(text)} characters long (at most {MAX_CONFIG_BYTES})")
    if not text.strip():
        return {}
    _check_depth(text)
    import json       # here, not at the top: a run without configs never pays for the import

    try:
        parsed = json.loads(text,
                            parse_int=lambda s: _number(s, int),
                            parse_float=lambda s: _number(s, float),
                            parse_constant=_no_constant)
    except NnError:
        raise
    except json.JSONDecodeError as error:
        raise _invalid(f"not valid JSON: {error}") from None
    except (ValueError, RecursionError) as error:    # belt and braces: limits above should hold
        raise _invalid(f"not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise _invalid(f"must be a JSON object, got {type(parsed).__name__}")
    return parsed

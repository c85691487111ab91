"""Parsing a guest's JSON config string (`load_by_name_with_config`, GGML's `set_input(1)`).

The text comes from the guest, so it is hostile input: it is bounded in size, nesting depth
and number length before anything looks at it, and every way it can be wrong is one
`NnError(invalid_argument)` with a message that says which.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import Errno, NnError

#: configs are a few hundred bytes; a megabyte is generous and keeps parsing cheap
MAX_CONFIG_BYTES = 1 << 20
#: the real configs are flat objects; deeper than this is an attack, not a config
MAX_DEPTH = 32
#: digits in one JSON number (a 10,000-digit integer costs quadratic time to convert)
MAX_NUMBER_DIGITS = 64


def _bounded_number(text: str) -> str:
    if len(text) > MAX_NUMBER_DIGITS:
        raise ValueError(f"a number of {len(text)} characters (at most {MAX_NUMBER_DIGITS})")
    return text


def _parse_int(text: str) -> int:
    return int(_bounded_number(text))


def _parse_float(text: str) -> float:
    return float(_bounded_number(text))


def _reject_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _depth(text: str) -> int:
    """The deepest bracket nesting outside strings (a cheap pre-check before the parser)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
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
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_config(text: str) -> dict:
    """The JSON object in `text` (`{}` for an empty or blank string).

    Raises `NnError(invalid_argument)` for text that is too long, not JSON, nested deeper
    than `MAX_DEPTH`, holds an over-long number or NaN/Infinity, or is not an object.
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise NnError(Errno.INVALID_ARGUMENT,
                      f"config is {len(text)} characters (at most {MAX_CONFIG_BYTES})")
    if not text.strip():
        return {}
    if _depth(text) > MAX_DEPTH:
        raise NnError(Errno.INVALID_ARGUMENT, f"config is nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                           parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise NnError(Errno.INVALID_ARGUMENT, f"config is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise NnError(Errno.INVALID_ARGUMENT,
                      f"config must be a JSON object, got {type(value).__name__}")
    return value

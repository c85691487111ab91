"""`load_by_name_with_config` with hostile configs: always invalid_argument with a reason, never
runtime_error / "internal error" (the traps are CPython's recursion and int-digit limits)."""

from __future__ import annotations

import pytest

from host_harness import Guest
from wasinn.nn import Errno, ModelRegistry, NnError, WasiNn, parse_preload
from wasinn.nn.config import parse_config

OK, INVALID = 0, 1

HOSTILE = {
    "deep array": "[" * 100_000 + "]" * 100_000,
    "deep object": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "deep, unclosed": "[" * 1_000_000,
    "100 000-digit int": '{"n": ' + "9" * 100_000 + "}",
    "100 000-digit float": '{"x": 1.' + "5" * 100_000 + "}",
    "negative huge int": '{"n": -' + "1" * 5_000 + "}",
    "NaN": '{"x": NaN}',
    "Infinity": '{"x": -Infinity}',
    "not an object": "[1, 2]",
    "string": '"ctx-size"',
    "truncated": '{"a": ',
    "too long": '{"a": "' + "x" * (1 << 20) + '"}',
}


@pytest.mark.parametrize("name", HOSTILE)
def test_parse_config_refuses_with_invalid_argument(name):
    with pytest.raises(NnError) as info:
        parse_config(HOSTILE[name])
    assert info.value.errno == Errno.INVALID_ARGUMENT
    assert info.value.message.startswith("config: ")


def test_parse_config_accepts_real_configs():
    assert parse_config("") == {} and parse_config("  \n") == {}
    assert parse_config(b'{"n-gpu-layers": 0, "ctx-size": 512, "stream-stdout": true}') == {
        "n-gpu-layers": 0, "ctx-size": 512, "stream-stdout": True}
    # brackets inside strings are not nesting; escaped quotes do not end a string
    assert parse_config('{"prompt": "[[[[{{{{ \\" ]]", "x": [[1], {"y": 2.5e3}]}') == {
        "prompt": '[[[[{{{{ " ]]', "x": [[1], {"y": 2500.0}]}
    nested = "[" * 30 + "]" * 30
    assert parse_config('{"a": ' + nested + "}")["a"] is not None
    with pytest.raises(NnError, match="UTF-8"):
        parse_config(b'{"a": "\xff"}')


def test_hostile_configs_through_the_abi(torch_linear_path, capfd):
    """What a guest sees: errno 1 for every hostile config, nothing on stderr, and the named
    model still loads with a good config afterwards."""
    registry = ModelRegistry([parse_preload(f"demo:PyTorch:CPU:{torch_linear_path}")])
    guest = Guest(WasiNn(registry))
    name = guest.put(b"demo")
    out = guest.alloc(4, 4)
    for label, text in HOSTILE.items():
        data = text.encode()
        config = guest.put(data)
        errno = guest.call("load_by_name_with_config", name, 4, config, len(data), out)
        assert errno == INVALID, label
    assert "internal error" not in capfd.readouterr().err
    good = b'{"ctx-size": 512}'
    assert guest.call("load_by_name_with_config", name, 4, guest.put(good), len(good), out) == OK

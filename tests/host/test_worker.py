"""The confined backend worker (issue 8): every attack fails cleanly, the host survives.

Real backends, real wasm guests (`guests/model_probe`, built once; it reads the model from
stdin, so it runs with no --dir at all), real hostile models (`hostile_models.py`).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import wasmtime

import hostile_models
from wasinn.nn import Errno, ModelRegistry, NnError, WasiNn
from wasinn.worker import BackendWorker
from wasinn.worker.sandbox import landlock_abi

HERE = Path(__file__).parent
HANG_LIMIT = 120   # a run still going after this long is a hang: the test fails, never waits

#: the file-system wall is Landlock; on a kernel without it these tests cannot pass (and
#: docs/host.md says what holds there instead)
needs_landlock = pytest.mark.skipif(landlock_abi() < 1, reason="the kernel has no Landlock")


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    """The model_probe guest built into a .wasm."""
    pytest.importorskip("wasinn_toolchain")
    from wasinn_toolchain.paths import runtime_wasm

    if not runtime_wasm().is_file():
        pytest.skip("the guest runtime is not built")
    out = tmp_path_factory.mktemp("probe") / "probe.wasm"
    result = subprocess.run([sys.executable, "-m", "wasinn", "build", str(HERE / "guests" / "model_probe"),
                             "-o", str(out)], capture_output=True, timeout=HANG_LIMIT)
    assert result.returncode == 0, result.stderr
    return out


def run_probe(probe: Path, model: bytes | list[bytes], encoding: int, input_spec: str, *options: str,
              repeat: int = 1, cwd: Path | None = None) -> tuple[int, dict | None, str]:
    """Run the probe guest on `model` (its parts); (exit code, its JSON line, stderr)."""
    parts = model if isinstance(model, list) else [model]
    result = subprocess.run(
        [sys.executable, "-m", "wasinn", "run", *options, str(probe), str(encoding),
         ",".join(str(len(p)) for p in parts), input_spec, str(repeat)],
        input=b"".join(parts), capture_output=True, timeout=HANG_LIMIT, cwd=cwd)
    lines = result.stdout.decode().strip().splitlines()
    report = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return result.returncode, report, result.stderr.decode()


def wat_module(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wasmtime.wat2wasm(text))
    return path


# -- a model file cannot reach the host ---------------------------------------------------
#: a host file every Linux has, outside /tmp (the worker's /tmp is a private tmpfs, so a file
#: there would be "not found" even without Landlock) and outside every library folder
HOST_FILE = Path("/etc/passwd")


@needs_landlock
def test_torchscript_cannot_read_or_write_host_files(probe, tmp_path):
    planted = tmp_path / "planted.pth"
    model = hostile_models.torchscript_file_thief(str(HOST_FILE), str(planted))
    code, report, stderr = run_probe(probe, model, 3, "f32:1,3", cwd=tmp_path)
    assert code == 0, stderr
    # refused at load (an op allow-list) or at compute (the sandbox): never an output
    assert report is not None and report.get("errno") in (1, 5), (report, stderr)
    assert not planted.exists()
    assert HOST_FILE.read_bytes()[:16].hex() not in json.dumps(report)


@needs_landlock
def test_torchscript_reader_gets_no_host_bytes(probe, tmp_path):
    code, report, stderr = run_probe(probe, hostile_models.torchscript_file_reader(str(HOST_FILE)),
                                     3, "f32:1,3", cwd=tmp_path)
    assert code == 0, stderr
    assert report is not None and "failed" in report and report["errno"] in (1, 5), report


@needs_landlock
def test_the_sandbox_alone_stops_file_access(tmp_path):
    """Even with no op checks at all, a TorchScript `from_file` run inside the confinement
    cannot open a host file: the archive is loaded and run below the backend (no allow-list)."""
    pytest.importorskip("torch")
    model = tmp_path / "reader.pt"
    model.write_bytes(hostile_models.torchscript_file_reader(str(HOST_FILE)))
    code = f"""
import io, json, torch
from wasinn.worker import sandbox
module = torch.jit.load(io.BytesIO(open({str(model)!r}, "rb").read()))
problems = sandbox.confine(None, None)
try:
    module(torch.ones(1, 3)); outcome = "read"
except Exception as error:
    outcome = str(error)
print(json.dumps({{"problems": problems, "outcome": outcome}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=HANG_LIMIT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.decode().strip().splitlines()[-1])
    # torch's threads make unshare(2) fail here; Landlock alone must deny the read
    assert "landlock" not in report["problems"], report
    assert "ermission denied" in report["outcome"] or "Errno 13" in report["outcome"], report


def test_openvino_crash_is_runtime_error_and_the_host_survives(probe):
    model = hostile_models.onnx_conv_one_input()
    assert len(model) == 67
    code, report, stderr = run_probe(probe, model, 0, "f32:1,1,4,4")
    assert code == 0, stderr
    assert report == {"failed": "load", "errno": 5}
    assert "backend worker died during load (killed by SIGSEGV" in stderr


def test_a_fresh_worker_serves_the_loads_after_a_crash(linear_bytes):
    pytest.importorskip("openvino")
    worker = BackendWorker()
    nn = WasiNn(worker=worker)
    try:
        good = nn.load([linear_bytes], 3, 0)
        first_pid = worker.pid
        with pytest.raises(NnError) as crashed:
            nn.load([hostile_models.onnx_conv_one_input()], 0, 0)
        assert crashed.value.errno == Errno.RUNTIME_ERROR
        assert "SIGSEGV" in crashed.value.message
        # what the dead worker held is gone, with a clear error ...
        with pytest.raises(NnError) as stale:
            nn.init_execution_context(good)
        assert stale.value.errno == Errno.RUNTIME_ERROR and "died" in stale.value.message
        # ... and the next load gets a new process that works
        graph = nn.load([linear_bytes], 3, 0)
        assert worker.pid != first_pid
        context = nn.init_execution_context(graph)
        nn.set_input(context, 0, [1, 3], 1, np.ones((1, 3), np.float32))
        nn.compute(context)
        assert len(nn.get_output(context, 0)) == 8
    finally:
        worker.close()


# -- preloads are immutable ----------------------------------------------------------------
@pytest.mark.parametrize("in_worker", [True, False], ids=["worker", "in-process"])
def test_preload_survives_truncation_and_rewrite(tmp_path, in_worker):
    torch = pytest.importorskip("torch")
    torch.manual_seed(5)
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2).eval()), str(path))
    registry = ModelRegistry.from_specs([f"m:PyTorch:CPU:{path}"])
    worker = BackendWorker() if in_worker else None
    nn = WasiNn(registry, worker=worker)
    try:
        graph = nn.load_by_name("m")
        x = np.array([[1.0, 2.0, 3.0]], np.float32)

        def infer() -> bytes:
            context = nn.init_execution_context(graph)
            nn.set_input(context, 0, [1, 3], 1, x)
            nn.compute(context)
            return bytes(nn.get_output(context, 0))

        before = infer()
        os.truncate(path, 0)
        assert infer() == before
        torch.manual_seed(99)
        torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2).eval()), str(path))
        assert infer() == before
    finally:
        if worker is not None:
            worker.close()


# -- caps count what is alive ------------------------------------------------------------
@pytest.mark.parametrize("in_worker", [True, False], ids=["worker", "in-process"])
def test_max_graphs_counts_graphs_that_contexts_keep_alive(linear_bytes, in_worker):
    worker = BackendWorker() if in_worker else None
    nn = WasiNn(max_graphs=1, worker=worker)
    try:
        graph = nn.load([linear_bytes], 3, 0)
        context = nn.init_execution_context(graph)
        nn.unload(graph)
        assert nn.live_graphs == 1
        with pytest.raises(NnError) as busy:
            nn.load([linear_bytes], 3, 0)
        assert busy.value.errno == Errno.BUSY
        nn.finalize_execution_context(context)
        assert nn.live_graphs == 0
        nn.load([linear_bytes], 3, 0)
    finally:
        if worker is not None:
            worker.close()


def test_load_init_unload_loop_hits_busy_through_the_cli(probe, linear_bytes):
    code, report, stderr = run_probe(probe, linear_bytes, 3, "f32:1,3", "--max-graphs", "1",
                                     repeat=5)
    assert code == 0, stderr
    assert report == {"failed": "load", "errno": 4}


def test_a_model_allocating_1_gib_is_stopped_by_the_memory_cap(probe):
    pytest.importorskip("torch")
    hog = hostile_models.torchscript_allocator(1)
    code, report, stderr = run_probe(probe, hog, 3, "f32:1", "--max-host-memory", "1G")
    assert code == 0, stderr
    assert report is not None and report.get("errno") == 5, (report, stderr)
    # the same model with room to spare computes: the cap, not the model, stopped it
    code, report, stderr = run_probe(probe, hog, 3, "f32:1", "--max-host-memory", "8G")
    assert code == 0 and report is not None and report.get("ok"), (report, stderr)


# -- --timeout is hard ----------------------------------------------------------------------
def _timed_run(args: list[str], **popen) -> tuple[int, str, float]:
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "wasinn", "run", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    try:
        _, err = process.communicate(timeout=HANG_LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, err.decode(), time.monotonic() - start


POLL_SLEEP_WAT = """(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    ;; one clock subscription (relative, 600 s) at 0; events at 64; nevents at 128
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 600000000000))
    (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))))"""

STDIN_READ_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 32)))))"""

START_LOOP_WAT = """(module
  (memory (export "memory") 1)
  (func $forever (loop $l (br $l)))
  (start $forever)
  (func (export "_start")))"""


def test_timeout_ends_a_poll_oneoff_sleep(tmp_path):
    code, err, _ = _timed_run(["--timeout", "1", str(wat_module(tmp_path, "sleep", POLL_SLEEP_WAT))])
    assert code == 124, err
    assert "timed out after 1 s" in err


def test_timeout_ends_a_blocked_stdin_read(tmp_path):
    read, write = os.pipe()
    try:
        code, err, _ = _timed_run(["--timeout", "1", str(wat_module(tmp_path, "stdin", STDIN_READ_WAT))],
                                  stdin=read)
    finally:
        os.close(read)
        os.close(write)
    assert code == 124, err


def test_timeout_covers_the_start_function(tmp_path):
    code, err, _ = _timed_run(["--timeout", "1", str(wat_module(tmp_path, "start", START_LOOP_WAT))])
    assert code == 124, err


@pytest.mark.parametrize("where", [(), ("--in-process",)], ids=["worker", "in-process"])
def test_timeout_kills_an_endless_onnx_loop_in_compute(probe, where):
    pytest.importorskip("onnxruntime")
    code, report, stderr = run_probe(probe, hostile_models.onnx_endless_loop(), 1, "f32:1",
                                     "--timeout", "3", *where)
    assert code == 124, stderr
    assert "timed out after 3 s" in stderr


def test_ctrl_c_ends_a_poll_oneoff_sleep(tmp_path):
    module = wat_module(tmp_path, "sleep", POLL_SLEEP_WAT)
    process = subprocess.Popen([sys.executable, "-m", "wasinn", "run", str(module)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=HANG_LIMIT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err


# -- the transport --------------------------------------------------------------------------
def test_worker_results_equal_in_process_results(openvino_ir):
    pytest.importorskip("openvino")
    xml, weights = (p.read_bytes() for p in openvino_ir)
    worker = BackendWorker()
    try:
        outputs = []
        for nn in (WasiNn(worker=worker), WasiNn()):
            graph = nn.load([xml, bytearray(weights)], 0, 0)
            context = nn.init_execution_context(graph)
            got = []
            for value in (1.0, 2.0, 2.0):     # the same shapes again: set_input rides along
                nn.set_input(context, 0, [1, 4], 1, np.full((1, 4), value, np.float32))
                nn.set_input(context, 1, [3], 4, np.arange(3, dtype=np.int32))
                nn.compute(context)
                got.append((bytes(nn.get_output(context, 0)), bytes(nn.get_output(context, 1))))
            outputs.append(got)
        assert outputs[0] == outputs[1]
        assert outputs[0][0] != outputs[0][1]
    finally:
        worker.close()


def test_the_steady_state_compute_is_binary_and_gives_in_process_results(openvino_ir):
    """Once the inputs ride along and the outputs come along (read after two computes in a
    row), each inference is one binary round trip (transport.FastCompute), and its results
    are the in-process ones."""
    pytest.importorskip("openvino")
    xml, weights = (p.read_bytes() for p in openvino_ir)
    worker = BackendWorker()
    sent = []
    real_exchange = worker._exchange
    worker._exchange = lambda channel, op, data, *rest: (
        sent.append((op, data[:1])), real_exchange(channel, op, data, *rest))[1]
    try:
        outputs = []
        for nn in (WasiNn(worker=worker), WasiNn()):
            context = nn.init_execution_context(nn.load([xml, bytearray(weights)], 0, 0))
            got = []
            for value in (1.0, 2.0, 3.0, 2.0):
                nn.set_input(context, 0, [1, 4], 1, np.full((1, 4), value, np.float32))
                nn.set_input(context, 1, [3], 4, np.arange(3, dtype=np.int32))
                nn.compute(context)
                got.append((bytes(nn.get_output(context, 0)), bytes(nn.get_output(context, 1))))
            outputs.append(got)
        assert outputs[0] == outputs[1] and outputs[0][0] != outputs[0][1]
        computes = [tag for op, tag in sent if op == "compute"]
        assert computes == [b"C"] * 4
        # once both outputs were read after two computes in a row, they come along: no
        # set_input and no get_output of their own
        assert [op for op, _ in sent[-2:]] == ["compute"] * 2
    finally:
        worker.close()


def test_a_binary_compute_keeps_the_errno_of_its_failure(openvino_ir):
    pytest.importorskip("openvino")
    xml, weights = (p.read_bytes() for p in openvino_ir)
    worker = BackendWorker()
    nn = WasiNn(worker=worker)
    try:
        context = nn.init_execution_context(nn.load([xml, bytearray(weights)], 0, 0))
        with pytest.raises(NnError) as unset:
            nn.compute(context)                # binary: nothing to bind or send along yet
        assert unset.value.errno == Errno.INVALID_ARGUMENT and "set_input" in unset.value.message
        assert worker.alive
    finally:
        worker.close()


@pytest.mark.parametrize("reply", [b"K\x00", b"K\x02" + bytes(8), b"K\x00" + (1 << 40).to_bytes(8, "little"),
                                   b"K\x00" + bytes(9)],
                         ids=["too-short", "bad-flag", "past-the-segment", "too-long"])
def test_a_malformed_binary_reply_is_a_runtime_error(reply):
    """The host checks a binary reply as it checks a JSON one: its length, its flag byte,
    and that every size fits the segment the host maps."""
    import socket
    import threading

    from wasinn.worker.client import ProxyContext, ProxyGraph
    from wasinn.worker.transport import Channel, Segment

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    worker = BackendWorker()
    worker._adopt(ours)
    peer = Channel(theirs)
    context = ProxyContext(ProxyGraph(worker, 1, "openvino"), 2)
    context._outputs[0] = Segment.create("test-output", 64)
    context._read.add(0)
    context._read_before.add(0)          # read after two computes in a row: it comes along

    def answer() -> None:
        data, _ = peer.receive_any()
        assert data[:1] == b"C"
        peer.send(reply)

    responder = threading.Thread(target=answer)
    responder.start()
    try:
        with pytest.raises(RuntimeError, match="malformed|outside its segment"):
            context.compute()
    finally:
        responder.join()
        worker._channel = None
        ours.close()
        theirs.close()


def test_fast_compute_messages_round_trip():
    from wasinn.worker.transport import FastCompute, indexes, mask

    assert mask([]) == 0 and mask([0, 3, 63]) == 1 | 8 | 1 << 63 and mask([64]) is None
    assert indexes(mask([5, 0, 63])) == [0, 5, 63]
    assert FastCompute.parse_request(FastCompute.request(7, mask([1]), mask([0, 2]))) == \
        (7, [1], [0, 2])
    assert FastCompute.parse_reply(FastCompute.reply(True, [10, 4096]), 2) == (True, (10, 4096))
    with pytest.raises(ValueError):
        FastCompute.parse_reply(FastCompute.reply(False, [10]), 2)


def test_one_worker_serves_many_guests_and_compiles_a_preload_once(torch_linear_path):
    registry = ModelRegistry.from_specs([f"demo:PyTorch:CPU:{torch_linear_path}"])
    worker = BackendWorker()
    try:
        for _ in range(3):
            nn = WasiNn(registry, worker=worker)
            context = nn.init_execution_context(nn.load_by_name("demo"))
            nn.set_input(context, 0, [1, 3], 1, np.ones((1, 3), np.float32))
            nn.compute(context)
            nn.close()
        assert registry.get("demo").reads == 1
    finally:
        worker.close()


def test_errors_keep_their_errno_across_the_process_boundary(linear_bytes):
    worker = BackendWorker()
    nn = WasiNn(worker=worker)
    try:
        context = nn.init_execution_context(nn.load([linear_bytes], 3, 0))
        nn.set_input(context, 0, [1, 3], 1, np.ones((1, 3), np.float32))
        nn.compute(context)
        with pytest.raises(NnError) as bad_index:
            nn.get_output(context, 7)
        assert bad_index.value.errno == Errno.INVALID_ARGUMENT
        assert "output index 7 out of range" in bad_index.value.message
        with pytest.raises(NnError) as garbage:
            nn.load([b"not a model"], 3, 0)
        assert garbage.value.errno == Errno.RUNTIME_ERROR and "pytorch load failed" in str(garbage.value)
        assert worker.alive
    finally:
        worker.close()


@needs_landlock
def test_a_confined_process_reads_a_model_memfd_by_path_but_no_host_file():
    """The contract for path-reading libraries (llama.cpp): /proc/self/fd/N of a model part
    opens inside the sandbox; host files, sockets and exec do not."""
    code = """
import json, sys
from wasinn.worker import sandbox, transport
fd, size = transport.immutable_copy("model", memoryview(b"GGUF" + bytes(range(60))))
problems = sandbox.confine(None, None)
data = open(f"/proc/self/fd/{fd}", "rb").read()
try:
    open("/etc/passwd", "rb").read(); host = "read"
except PermissionError:
    host = "denied"
import os, socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM); net = "socket"
except PermissionError:
    net = "denied"
try:
    os.execv("/bin/true", ["true"])
except PermissionError:
    execute = "denied"
print(json.dumps({"problems": problems, "model": data[:4].decode(), "size": len(data), "host": host,
                  "net": net, "exec": execute}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=HANG_LIMIT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"problems": {}, "model": "GGUF", "size": 64, "host": "denied",
                      "net": "denied", "exec": "denied"}


def test_model_path_is_none_outside_the_worker():
    from wasinn.worker.server import model_path

    assert model_path(memoryview(b"abc")) is None


def test_load_by_name_with_config_and_streaming_go_through_the_worker(torch_linear_path):
    """The optional contract methods (Graph.configure, Context.*_single) are forwarded."""
    registry = ModelRegistry.from_specs([f"demo:PyTorch:CPU:{torch_linear_path}"])
    worker = BackendWorker()
    try:
        outputs = []
        for nn in (WasiNn(registry, worker=worker), WasiNn(registry)):
            graph = nn.load_by_name_with_config("demo", '{"n_predict": 8}')
            context = nn.init_execution_context(graph)
            nn.set_input(context, 0, [1, 3], 1, np.ones((1, 3), np.float32))
            nn.compute_single(context)
            outputs.append(bytes(nn.get_output_single(context, 0)))
            nn.fini_single(context)
            with pytest.raises(NnError):            # fini_single ends the outputs
                nn.get_output_single(context, 0)
        assert outputs[0] == outputs[1] and len(outputs[0]) == 8
    finally:
        worker.close()


def test_rebinding_a_copying_backend_sees_every_new_input(fixtures_dir):
    """TFLite copies inputs at set_input: an input that rides along with compute must still
    be bound again, so each compute sees the new bytes."""
    pytest.importorskip("ai_edge_litert")
    model = (fixtures_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite").read_bytes()
    worker = BackendWorker()
    try:
        results = []
        for nn in (WasiNn(worker=worker), WasiNn()):
            context = nn.init_execution_context(nn.load([model], 4, 0))
            got = []
            for value in (0, 255, 0):
                nn.set_input(context, 0, [1, 224, 224, 3], 3,
                             np.full((1, 224, 224, 3), value, np.uint8))
                nn.compute(context)
                got.append(bytes(nn.get_output(context, 0)))
            results.append(got)
        assert results[0] == results[1]
        assert results[0][0] != results[0][1] and results[0][0] == results[0][2]
    finally:
        worker.close()


def test_a_killed_host_takes_its_worker_along(probe):
    """SIGKILL on the host while the worker runs an endless compute: the worker ends too."""
    pytest.importorskip("onnxruntime")
    model = hostile_models.onnx_endless_loop()
    process = subprocess.Popen([sys.executable, "-m", "wasinn", "run", "--verbose", str(probe), "1",
                                str(len(model)), "f32:1"],
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        process.stdin.write(model)
        process.stdin.close()
        pid = None
        for line in process.stderr:
            if b"backend worker started (pid " in line:
                pid = int(line.split(b"(pid ")[1].split(b",")[0])
            if b"wasi-nn: set_input" in line:       # compute comes next, and never ends
                break
        assert pid is not None
        process.kill()
        process.wait(timeout=HANG_LIMIT)
        for _ in range(HANG_LIMIT * 10):
            try:
                state = Path(f"/proc/{pid}/stat").read_text().split()[2]
            except FileNotFoundError:
                break
            if state == "Z":
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"worker {pid} still running after its host was killed")
    finally:
        if process.poll() is None:
            process.kill()


def test_the_cpu_cap_ends_an_endless_compute(probe):
    pytest.importorskip("onnxruntime")
    code, report, stderr = run_probe(probe, hostile_models.onnx_endless_loop(), 1, "f32:1",
                                     "--max-host-cpu", "2")
    assert code == 0, stderr
    assert report == {"failed": "compute", "errno": 5}
    assert "SIGXCPU: its CPU-time cap" in stderr or "SIGKILL" in stderr


@pytest.mark.parametrize("value", ["1K", "0", "lots"])
def test_a_worker_memory_cap_too_small_to_start_is_exit_2(value, tmp_path):
    result = subprocess.run([sys.executable, "-m", "wasinn", "run", "--max-host-memory", value,
                             str(tmp_path / "x.wasm")], capture_output=True, timeout=HANG_LIMIT)
    assert result.returncode == 2
    assert b"--max-host-memory" in result.stderr.splitlines()[-1]


def test_a_checkout_or_venv_under_tmp_stays_readable_in_the_worker(tmp_path):
    """The private tmpfs must not hide what the worker imports: with a library under /tmp
    (CI clones, venvs in /tmp) it goes on /dev/shm instead, and the library still imports."""
    from wasinn.worker import sandbox

    assert sandbox.private_tmp_for(["/usr/lib"]) == "/tmp"
    assert sandbox.private_tmp_for(["/usr/lib", "/tmp/venv/lib/site-packages"]) == "/dev/shm"
    library = tmp_path / "lib_under_tmp.py"
    library.write_text("VALUE = 42\n")
    assert str(library).startswith("/tmp/"), "pytest's tmp_path is expected under /tmp here"
    code = """
import json, sys
from wasinn.worker import sandbox
problems = sandbox.confine(None, None)
import lib_under_tmp
try:
    open("/etc/passwd", "rb").read(); host = "read"
except PermissionError:
    host = "denied"
print(json.dumps({"problems": problems, "value": lib_under_tmp.VALUE, "tmp": sandbox.private_tmp,
                  "host": host}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=HANG_LIMIT,
                            env=env, cwd="/")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"problems": {}, "value": 42, "tmp": "/dev/shm",
                                         "host": "denied"}


# -- the worker forked at start (the CLI's way) ---------------------------------------------
FORKED_WORKER_PROBE = r"""
import json, os, sys, threading
held = open(sys.argv[1], "rb")        # a descriptor of the host's that the worker must not keep
from wasinn.worker import BackendWorker

report = {}
gate = threading.Event()
busy = threading.Thread(target=gate.wait)
busy.start()
report["refused_with_threads"] = not BackendWorker().start_early()
gate.set()
busy.join()

worker = BackendWorker()
report["forked"] = worker.start_early()
report["pong"] = worker.call("ping", {})[0]
pid = worker.pid
report["fds"] = sorted(os.readlink(f"/proc/{pid}/fd/{n}") for n in os.listdir(f"/proc/{pid}/fd"))
report["sandbox"] = worker.sandbox_problems
report["session_leader"] = os.getsid(pid) == pid
worker.close()
report["gone"] = not os.path.exists(f"/proc/{pid}")
try:
    os.waitpid(-1, os.WNOHANG)
    report["children_left"] = True
except ChildProcessError:
    report["children_left"] = False
print(json.dumps(report))
"""


def test_a_forked_worker_is_confined_tidy_and_reaped(tmp_path):
    held = tmp_path / "host-secret.txt"
    held.write_text("the host's own file")
    result = subprocess.run([sys.executable, "-c", FORKED_WORKER_PROBE, str(held)],
                            capture_output=True, text=True, timeout=HANG_LIMIT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["refused_with_threads"]          # a fork next to other threads is unsafe
    assert report["forked"] and report["pong"] == "pong"
    assert not any(str(held) in target for target in report["fds"]), report["fds"]
    assert not any(target.startswith("/") and not target.startswith("/dev/null")
                   for target in report["fds"]), report["fds"]
    if landlock_abi() >= 1:
        assert report["sandbox"] == {}
    assert report["session_leader"]                # Ctrl-C at the terminal is the host's to handle
    assert report["gone"] and not report["children_left"]


def test_the_cli_forks_its_worker_and_gets_in_process_results(probe, linear_bytes, tmp_path):
    code, report, stderr = run_probe(probe, linear_bytes, 3, "f32:1,3", "--verbose",
                                     "--dir", f".:{tmp_path}")    # a folder: it may load
    assert code == 0, stderr
    assert "backend worker started (pid " in stderr and ", forked, ready in " in stderr
    code, trusted, stderr = run_probe(probe, linear_bytes, 3, "f32:1,3", "--in-process")
    assert code == 0, stderr
    assert report is not None and "failed" not in report and report == trusted


# -- polling for a reply that is due soon (transport.Cadence) -----------------------------
def test_cadence_polls_only_while_messages_come_quickly():
    from wasinn.worker.transport import POLL_WINDOW, Cadence

    cadence = Cadence()
    assert cadence.window() == 0.0                 # nothing known yet: sleep at once
    cadence.waited(POLL_WINDOW / 10, polled=False)
    assert cadence.window() == POLL_WINDOW
    cadence.waited(POLL_WINDOW / 10, polled=True)  # polling found it: go on polling
    assert cadence.window() == POLL_WINDOW
    cadence.waited(POLL_WINDOW * 10, polled=False) # a long compute: back to sleeping
    assert cadence.window() == 0.0
    cadence.waited(POLL_WINDOW / 10, polled=False)
    cadence.waited(POLL_WINDOW * 3, polled=True)   # in vain, on an idle machine: the other
    cadence.waited(POLL_WINDOW / 10, polled=False) # side had other work once; go on
    assert cadence.window() == POLL_WINDOW
    cadence.waited(POLL_WINDOW * 3, polled=True, contended=True)   # in vain on a busy one
    cadence.waited(POLL_WINDOW / 10, polled=False)
    assert [cadence.window() for _ in range(Cadence.BACKOFF)] == [0.0] * Cadence.BACKOFF
    assert cadence.window() == POLL_WINDOW         # then it tries again


def test_cadence_takes_its_window():
    from wasinn.worker.transport import REQUEST_POLL_WINDOW, Cadence

    cadence = Cadence(REQUEST_POLL_WINDOW)
    cadence.waited(REQUEST_POLL_WINDOW * 0.9, polled=False)   # quick by its own window
    assert cadence.window() == REQUEST_POLL_WINDOW


def test_forecast_sleeps_until_just_before_the_earliest_recent_reply():
    from wasinn.worker.transport import Forecast

    forecast = Forecast()
    assert forecast.plan() == (0.0, 0.0)                # nothing to go by: as before
    forecast.took(0.004)
    assert forecast.plan() == (0.0, 0.0)
    forecast.took(0.005)
    sleep, poll = forecast.plan()
    assert sleep == pytest.approx(0.004 - Forecast.LEAD)
    assert poll == pytest.approx(Forecast.LEAD + Forecast.MAX_POLL)
    for _ in range(Forecast.KEEP):                      # only the last few count
        forecast.took(0.020)
    assert forecast.plan()[0] == pytest.approx(0.020 - Forecast.LEAD)
    forecast.took(0.0001)                               # shorter than LEAD: poll at once
    assert forecast.plan()[0] == 0.0


def test_a_forecast_by_input_shapes_goes_by_its_fallback_until_it_has_its_own():
    """Per input shapes (client.ProxyContext): a new shape goes by all of the context's
    computes until it has two durations of its own; every duration teaches both."""
    from wasinn.worker.transport import Forecast

    general = Forecast()
    for seconds in (0.024, 0.004):                      # a long prompt, a short one
        general.took(seconds)
    short = Forecast(general)
    assert short.plan() == general.plan()
    short.took(0.0043)
    assert short.plan() == general.plan()               # one of its own: not yet
    short.took(0.0041)
    assert short.plan()[0] == pytest.approx(0.0041 - Forecast.LEAD)
    fresh = Forecast()                                  # the fallback learns from it too
    shaped = Forecast(fresh)
    shaped.took(0.006)
    shaped.took(0.005)
    assert fresh.plan()[0] == pytest.approx(0.005 - Forecast.LEAD)


@pytest.mark.parametrize("sleep_first", [0.0, 0.01, 0.2], ids=["none", "short", "past-it"])
def test_a_forecast_receive_gets_the_message_early_or_late(sleep_first):
    """Sleeping first never loses or delays a message that comes during the sleep."""
    import socket
    import threading

    from wasinn.worker.transport import Channel

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    channel, peer = Channel(ours), Channel(theirs)
    try:
        sender = threading.Timer(0.05, peer.send, args=({"n": 7},))
        sender.start()
        start = time.perf_counter()
        message, fds = channel.receive(poll_for=0.001, sleep_first=sleep_first)
        waited = time.perf_counter() - start
        sender.join()
        assert message == {"n": 7} and fds == []
        assert waited < 0.15                            # not held for the whole sleep
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize("delay", [0.0, 0.05], ids=["within-the-window", "after-it"])
def test_a_polled_receive_gets_early_and_late_messages(delay):
    import socket
    import threading

    from wasinn.worker.transport import Channel

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sender = Channel(theirs)
    timer = threading.Timer(delay, lambda: sender.send({"n": 7}))
    timer.start()
    message, fds = Channel(ours).receive(poll_for=0.001)
    timer.join()
    assert message == {"n": 7} and fds == []
    ours.close()
    theirs.close()


def test_the_worker_is_forked_early_only_for_guests_that_can_load_models(tmp_path,
                                                                          torch_linear_path):
    from wasinn.runner import RunOptions, _may_load_models

    plain = wat_module(tmp_path, "plain", '(module (func (export "_start")))')
    nn_user = wat_module(tmp_path, "nn", '''(module
        (import "wasi_ephemeral_nn" "load" (func (param i32 i32 i32 i32 i32) (result i32)))
        (func (export "_start")))''')
    fifo = tmp_path / "fifo.wasm"
    os.mkfifo(fifo)                     # no writer: a plain open would block forever
    folder = [(".", str(tmp_path))]
    named = ModelRegistry.from_specs([f"m:PyTorch:CPU:{torch_linear_path}"])
    assert not _may_load_models(RunOptions(plain, dirs=folder))
    assert _may_load_models(RunOptions(nn_user, dirs=folder))
    assert _may_load_models(RunOptions(nn_user, registry=named))
    assert not _may_load_models(RunOptions(nn_user))      # no way to reach a model: a hello
    assert not _may_load_models(RunOptions(tmp_path / "missing.wasm", dirs=folder))
    assert not _may_load_models(RunOptions(fifo, dirs=folder))


def test_load_by_name_costs_no_round_trip_for_a_backend_without_options(torch_linear_path,
                                                                         requests_of):
    worker = BackendWorker()
    ops = requests_of(worker)
    nn = WasiNn(ModelRegistry.from_specs([f"m:PyTorch:CPU:{torch_linear_path}"]), worker=worker)
    try:
        first, second = nn.load_by_name("m"), nn.load_by_name("m")
        assert first != second and ops == ["load"]     # compiled once, configure answered here
    finally:
        nn.close()
        worker.close()


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS makes no extra thread on one CPU")
def test_the_worker_starts_numpy_with_one_blas_thread_unless_the_user_chose(monkeypatch):
    """numpy's OpenBLAS pool busy-waits after it starts; the worker never uses it
    (wasinn.blas_threads), so it asks for one thread; a number the user set is kept."""
    def threads_after_numpy() -> int:
        worker = BackendWorker()
        try:
            worker.call("ping", {})            # the worker imports numpy before it serves
            return len(os.listdir(f"/proc/{worker.pid}/task"))
        finally:
            worker.close()

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    ours = threads_after_numpy()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert threads_after_numpy() == ours + 1
    assert os.environ["OPENBLAS_NUM_THREADS"] == "2"


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS makes no extra thread on one CPU")
def test_the_cli_host_starts_numpy_with_one_blas_thread_unless_the_user_chose(probe, monkeypatch):
    """`wasinn run` in wasm mode is wasinn's own process: its numpy gets one BLAS thread too
    (wasinn.blas_threads). Counted in a real `--in-process` run, while an endless ONNX loop
    computes (numpy and its OpenBLAS are loaded by then); a user's number is kept."""
    pytest.importorskip("onnxruntime")
    model = hostile_models.onnx_endless_loop()

    def host_threads_while_computing() -> int:
        process = subprocess.Popen(
            [sys.executable, "-m", "wasinn", "run", "--in-process", "--timeout", "60", str(probe),
             "1", str(len(model)), "f32:1"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.stdin.write(model)
            process.stdin.close()
            deadline = time.monotonic() + HANG_LIMIT
            while "openblas" not in Path(f"/proc/{process.pid}/maps").read_text():
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(1.0)                 # numpy imported, the model loaded: now computing
            assert process.poll() is None
            return len(os.listdir(f"/proc/{process.pid}/task"))
        finally:
            process.kill()
            process.wait()

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    ours = host_threads_while_computing()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert host_threads_while_computing() == ours + 1

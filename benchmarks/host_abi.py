"""Benchmark: the cost of wasinn's wasi_ephemeral_nn glue on the data path.

1. MobileNetV2 (the quantized TFLite fixture, read by OpenVINO) — per-inference time
   (set_input + compute + get_output) measured two ways with the SAME compiled model:
   - guest: a wasm module loops over the three imports; the host times the whole loop call;
   - native: the same OpenVINO infer request driven from Python (shared-memory input tensor,
     output copied into a buffer), i.e. what a native program would do.
   Target (ARCHITECTURE §6): guest ÷ native <= 1.05.
2. The host-side cost of a 14 MB `load` crossing: making the memory view of the guest, bounds-
   checking the builder array and creating the zero-copy view of the 14 MB part. Target < 5 ms.

The direct ratio is sensitive to machine load (compute time varies far more than the glue);
the "(native + glue) / native" line uses the glue time measured inside the same guest run
(loop time minus the time spent in the host core and backend), which is stable under load.

Run: python benchmarks/host_abi.py [--rounds 15] [--iterations 20]
Needs ../shared/fixtures and openvino.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np
import wasmtime

from wasinn.abi import EphemeralNn
from wasinn.abi.memory import GuestMemory
from wasinn.nn import WasiNn
from wasinn.runner import make_engine

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO.parent / "shared" / "fixtures" / "models" / "mobilenet_v2_1.0_224_quant.tflite"

GUEST_WAT = """
(module
  (import "wasi_ephemeral_nn" "load" (func $load (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "init_execution_context" (func $init (param i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "set_input" (func $set_input (param i32 i32 i32) (result i32)))
  (import "wasi_ephemeral_nn" "compute" (func $compute (param i32) (result i32)))
  (import "wasi_ephemeral_nn" "get_output" (func $get_output (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "load") (param i32 i32 i32 i32 i32) (result i32)
    (call $load (local.get 0) (local.get 1) (local.get 2) (local.get 3) (local.get 4)))
  (func (export "init") (param i32 i32) (result i32) (call $init (local.get 0) (local.get 1)))
  ;; run set_input + compute + get_output `n` times; returns the first non-zero errno
  (func (export "infer_loop") (param $ctx i32) (param $tensor i32) (param $out i32)
        (param $out_len i32) (param $written i32) (param $n i32) (result i32) (local $e i32)
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $e (call $set_input (local.get $ctx) (i32.const 0) (local.get $tensor)))
        (br_if $done (local.get $e))
        (local.set $e (call $compute (local.get $ctx)))
        (br_if $done (local.get $e))
        (local.set $e (call $get_output (local.get $ctx) (i32.const 0) (local.get $out)
                                        (local.get $out_len) (local.get $written)))
        (br_if $done (local.get $e))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $again)))
    (local.get $e)))
"""

PAGE = 65536


class TimedWasiNn(WasiNn):
    """WasiNn that adds up the time spent inside the data-path calls (backend + core), so the
    glue's own share of a guest inference can be separated from the (noisy) compute time."""

    inside_ns = 0

    def set_input(self, *args):  # type: ignore[override]
        start = time.perf_counter_ns()
        try:
            return super().set_input(*args)
        finally:
            self.inside_ns += time.perf_counter_ns() - start

    def compute(self, *args):  # type: ignore[override]
        start = time.perf_counter_ns()
        try:
            return super().compute(*args)
        finally:
            self.inside_ns += time.perf_counter_ns() - start

    def get_output(self, *args):  # type: ignore[override]
        start = time.perf_counter_ns()
        try:
            return super().get_output(*args)
        finally:
            self.inside_ns += time.perf_counter_ns() - start


class BenchGuest:
    def __init__(self, nn: WasiNn) -> None:
        engine = make_engine(cache=False)
        linker = wasmtime.Linker(engine)
        EphemeralNn(nn).define(linker)
        self.store = wasmtime.Store(engine)
        self.store.set_epoch_deadline(1)
        instance = linker.instantiate(self.store, wasmtime.Module(engine, GUEST_WAT))
        self.exports = instance.exports(self.store)
        self.memory = self.exports["memory"]
        self.top = 1024

    def put(self, data: bytes) -> int:
        ptr = (self.top + 7) // 8 * 8
        end = ptr + len(data)
        size = self.memory.data_len(self.store)
        if end > size:
            self.memory.grow(self.store, (end - size + PAGE - 1) // PAGE)
        self.memory.write(self.store, data, ptr)
        self.top = end
        return ptr

    def call(self, name: str, *args: int) -> int:
        return self.exports[name](self.store, *args)

    def u32(self, ptr: int) -> int:
        return struct.unpack("<I", bytes(self.memory.read(self.store, ptr, ptr + 4)))[0]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def bench_inference(rounds: int, iterations: int) -> tuple[float, float, float, float]:
    """Median ms per inference (guest, native, the glue's share of the guest's time) and the
    median of the per-round guest/native ratios (each round runs both back to back, so slow
    drifts of the machine cancel out in the ratio)."""
    nn = TimedWasiNn()
    guest = BenchGuest(nn)
    model = MODEL.read_bytes()
    model_ptr = guest.put(model)
    table = guest.put(struct.pack("<II", model_ptr, len(model)))
    out = guest.put(b"\0" * 8)
    assert guest.call("load", table, 1, 0, 0, out) == 0, "load failed"
    graph = guest.u32(out)
    assert guest.call("init", graph, out) == 0
    ctx = guest.u32(out)

    image = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    dims_ptr = guest.put(struct.pack("<4I", 1, 224, 224, 3))
    data_ptr = guest.put(image.tobytes())
    tensor = guest.put(struct.pack("<IIIII", dims_ptr, 4, 3, data_ptr, image.nbytes))
    out_ptr = guest.put(b"\0" * 1001)
    written = guest.put(b"\0" * 4)

    # Native: the same compiled model (the graph the guest loaded), driven directly.
    import openvino as ov

    compiled = nn._graphs[graph].graph.compiled
    request = compiled.create_infer_request()
    native_in = image.copy()
    native_out = bytearray(1001)

    def native_once() -> None:
        request.set_input_tensor(0, ov.Tensor(native_in, shared_memory=True))
        request.infer()
        output = request.get_output_tensor(0).data
        memoryview(native_out)[:] = output.reshape(-1)

    # warm up both, and check they agree
    assert guest.call("infer_loop", ctx, tensor, out_ptr, 1001, written, 3) == 0
    for _ in range(3):
        native_once()
    guest_out = bytes(guest.memory.read(guest.store, out_ptr, out_ptr + 1001))
    assert guest_out == bytes(native_out), "guest and native outputs differ"

    guest_samples, native_samples, glue_samples = [], [], []
    for _ in range(rounds):        # interleaved, so both see the same machine state
        nn.inside_ns = 0
        start = time.perf_counter()
        errno = guest.call("infer_loop", ctx, tensor, out_ptr, 1001, written, iterations)
        elapsed = time.perf_counter() - start
        guest_samples.append(elapsed / iterations)
        glue_samples.append((elapsed - nn.inside_ns / 1e9) / iterations)
        assert errno == 0
        start = time.perf_counter()
        for _ in range(iterations):
            native_once()
        native_samples.append((time.perf_counter() - start) / iterations)
    ratios = [g / n for g, n in zip(guest_samples, native_samples)]
    return (median_ms(guest_samples), median_ms(native_samples), median_ms(glue_samples),
            statistics.median(ratios))


def bench_load_crossing(rounds: int, size: int = 14 * 1024 * 1024) -> float:
    guest = BenchGuest(WasiNn())
    part = guest.put(np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8).tobytes())
    table = guest.put(struct.pack("<II", part, size))
    glue = EphemeralNn(WasiNn())
    samples = []
    for _ in range(rounds * 20):
        start = time.perf_counter()
        memory = GuestMemory(guest.memory, guest.store)
        (view,) = glue.read_builders(memory, table, 1)
        samples.append(time.perf_counter() - start)
        assert view.size == size and view.ctypes.data == memory.base + part   # zero-copy
    return median_ms(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--iterations", type=int, default=10)
    options = parser.parse_args()
    if not MODEL.is_file():
        print(f"skipped: {MODEL} is absent", file=sys.stderr)
        return 0
    guest_ms, native_ms, glue_ms, paired = bench_inference(options.rounds, options.iterations)
    crossing_ms = bench_load_crossing(options.rounds)
    ratio = guest_ms / native_ms
    print(f"{'figure':<52} {'median':>10} {'target':>9}  ok")
    print(f"{'MobileNetV2/OpenVINO per inference, native':<52} {native_ms:>7.3f} ms {'':>9}")
    print(f"{'MobileNetV2/OpenVINO per inference, wasm guest':<52} {guest_ms:>7.3f} ms {'':>9}")
    print(f"{'  guest / native (ratio of medians)':<52} {ratio:>10.3f} {'<= 1.05':>9}  "
          f"{'yes' if ratio <= 1.05 else 'NO'}")
    print(f"{'  guest / native (median of paired rounds)':<52} {paired:>10.3f} {'<= 1.05':>9}  "
          f"{'yes' if paired <= 1.05 else 'NO'}")
    print(f"{'  glue time per inference (3 calls, measured)':<52} {glue_ms * 1e3:>7.1f} us")
    glue_ratio = (native_ms + glue_ms) / native_ms
    print(f"{'  (native + glue) / native':<52} {glue_ratio:>10.3f} {'<= 1.05':>9}  "
          f"{'yes' if glue_ratio <= 1.05 else 'NO'}")
    print(f"{'14 MB load crossing (view + bounds checks)':<52} {crossing_ms:>7.3f} ms "
          f"{'< 5 ms':>9}  {'yes' if crossing_ms < 5 else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

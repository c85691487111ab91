"""A bounded backend fuzz: mutated ONNX, TFLite, OpenVINO IR and TorchScript models go
through the real confined worker; whatever the libraries do with them (errors, crashes,
aborts), every call ends in an errno and the host — this test process — never dies.

Bounded by a deadline (WASINN_FUZZ_SECONDS, default 30 s of mutating; a few more for worker
restarts), so it fits the CI budget; the seed makes every run reproducible.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass

import numpy as np
import pytest

import hostile_models
from wasinn.nn import VALID_ERRNOS, NnError, WasiNn
from wasinn.worker import BackendWorker

FUZZ_SECONDS = float(os.environ.get("WASINN_FUZZ_SECONDS", "30"))
SEED = int(os.environ.get("WASINN_FUZZ_SEED", "8"))


@dataclass
class Seed:
    name: str
    encoding: int
    parts: list[bytes]
    mutate: int                                  # which part to mutate
    inputs: list[tuple[list[int], int, np.dtype]]   # dims, tensor type, dtype per input
    #: False for a known crasher (issue 8's 67-byte Conv): sent as it is half the time
    valid: bool = True


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """Flip bytes, overwrite with boundary values, truncate, duplicate or splice a chunk.
    Mutations favour the first 4 KB, where headers, flatbuffer tables and the XML live."""
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not buffer:
            break
        limit = len(buffer) if rng.random() < 0.3 else min(len(buffer), 4096)
        where = rng.randrange(limit)
        action = rng.random()
        if action < 0.45:
            buffer[where] = rng.randrange(256)
        elif action < 0.65:
            value = rng.choice([0, 0xFF, 0x7F, 0x80]).to_bytes(1, "little") * rng.randint(1, 8)
            buffer[where:where + len(value)] = value
        elif action < 0.75:
            del buffer[rng.randrange(len(buffer)):]
        elif action < 0.9:
            size = rng.randint(1, 64)
            buffer[where:where] = buffer[where:where + size]
        else:
            del buffer[where:where + rng.randint(1, 64)]
    return bytes(buffer)


def _seeds(fixtures_dir, openvino_ir, linear_bytes) -> list[Seed]:
    seeds = [Seed("torchscript", 3, [linear_bytes], 0, [([1, 3], 1, np.float32)])]
    try:
        convnet = hostile_models.onnx_conv_net()
        seeds += [Seed("onnx/onnxruntime", 1, [convnet], 0, [([1, 1, 4, 4], 1, np.float32)]),
                  Seed("onnx/openvino", 0, [convnet], 0, [([1, 1, 4, 4], 1, np.float32)]),
                  Seed("onnx-crasher/openvino", 0, [hostile_models.onnx_conv_one_input()], 0,
                       [([1, 1, 4, 4], 1, np.float32)], valid=False)]
    except ImportError:
        pass
    xml, weights = (p.read_bytes() for p in openvino_ir)
    seeds += [Seed("ir-xml/openvino", 0, [xml, weights], 0,
                   [([1, 4], 1, np.float32), ([3], 4, np.int32)]),
              Seed("ir-bin/openvino", 0, [xml, weights], 1,
                   [([1, 4], 1, np.float32), ([3], 4, np.int32)])]
    tflite = fixtures_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    if tflite.is_file():
        data = tflite.read_bytes()
        seeds += [Seed("tflite/litert", 4, [data], 0, [([1, 224, 224, 3], 3, np.uint8)]),
                  Seed("tflite/openvino", 0, [data], 0, [([1, 224, 224, 3], 3, np.uint8)])]
    return seeds


def _exercise(nn: WasiNn, seed: Seed, parts: list[bytes]) -> None:
    """load -> init -> set inputs -> compute -> get_output; stops at the first refusal."""
    graph = nn.load(parts, seed.encoding, 0)
    context = nn.init_execution_context(graph)
    for index, (dims, tensor_type, dtype) in enumerate(seed.inputs):
        nn.set_input(context, index, dims, tensor_type, np.zeros(dims, dtype))
    nn.compute(context)
    nn.get_output(context, 0)
    nn.finalize_execution_context(context)
    nn.unload(graph)


def test_mutated_models_never_kill_the_host(fixtures_dir, openvino_ir, linear_bytes, capsys):
    pytest.importorskip("openvino")
    rng = random.Random(SEED)
    seeds = _seeds(fixtures_dir, openvino_ir, linear_bytes)
    worker = BackendWorker(max_memory=4 << 30)
    outcomes: dict[str, dict[str, int]] = {s.name: {"cases": 0, "ok": 0, "refused": 0}
                                           for s in seeds}
    deaths = 0
    try:
        nn = WasiNn(worker=worker)
        valid = [seed for seed in seeds if seed.valid]
        for seed in valid:                       # every valid seed works unmutated
            _exercise(nn, seed, seed.parts)
        deadline = time.monotonic() + FUZZ_SECONDS
        while time.monotonic() < deadline:
            # the crasher is rare: each worker death costs a restart (and backend re-imports)
            seed = rng.choices(seeds, weights=[1.0 if s.valid else 0.1 for s in seeds])[0]
            parts = list(seed.parts)
            if seed.valid or rng.random() < 0.5:
                parts[seed.mutate] = _mutate(rng, parts[seed.mutate])
            counts = outcomes[seed.name]
            counts["cases"] += 1
            nn = WasiNn(worker=worker)          # a fresh guest per case, as after a crash
            try:
                _exercise(nn, seed, parts)
                counts["ok"] += 1
            except NnError as error:
                assert int(error.errno) in VALID_ERRNOS
                counts["refused"] += 1
                deaths += "backend worker died" in error.message
            finally:
                nn.close()
        # still serving, on a fresh worker if the last case killed one
        nn = WasiNn(worker=worker)
        for seed in valid:
            _exercise(nn, seed, seed.parts)
    finally:
        worker.close()
    total = sum(c["cases"] for c in outcomes.values())
    with capsys.disabled():
        print(f"\nbackend fuzz: {total} mutated models, {deaths} worker deaths, 0 host deaths: "
              + ", ".join(f"{name} {c['cases']} ({c['ok']} ran)" for name, c in outcomes.items()))
    assert total > 0
    if "onnx-crasher/openvino" in outcomes and outcomes["onnx-crasher/openvino"]["cases"] > 6:
        assert deaths > 0        # the crasher did crash the worker, and the run went on

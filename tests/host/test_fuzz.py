"""Fuzz every wasi_ephemeral_nn import with random i32 tuples through a real wasm module.

No exception may escape into wasmtime (a call that traps would raise here), every return is
a valid errno, and the host keeps serving: a full valid cycle succeeds afterwards.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from host_harness import FUNCTIONS, Guest
from wasinn.nn import VALID_ERRNOS, WasiNn

CALLS_PER_FUNCTION = 10_000


def _argument(rng: random.Random, memory_size: int) -> int:
    """Biased i32s: small values (handles, indices, encodings), pointers near interesting
    places (0, the end of memory, the 32-bit wrap), and anything at all."""
    pick = rng.random()
    if pick < 0.35:
        return rng.randrange(0, 12)
    if pick < 0.55:
        return rng.randrange(0, memory_size + 64)
    if pick < 0.65:
        return memory_size - rng.randrange(0, 64)
    if pick < 0.75:
        return 0xFFFFFFFF - rng.randrange(0, 64)
    return rng.randrange(-(2**31), 2**31)


def _valid_cycle(guest: Guest, model: bytes) -> None:
    errno, graph = guest.load([model], 3)
    assert errno == 0
    errno, ctx = guest.init(graph)
    assert errno == 0
    assert guest.set_input(ctx, 0, [1, 3], 1, np.ones(3, np.float32).tobytes()) == 0
    assert guest.call("compute", ctx) == 0
    errno, data, written = guest.get_output(ctx, 0, 64)
    assert (errno, written) == (0, 8)


@pytest.mark.parametrize("name,arity", FUNCTIONS, ids=[n for n, _ in FUNCTIONS])
def test_fuzz_function(name: str, arity: int, linear_bytes: bytes) -> None:
    rng = random.Random(f"wasinn-{name}")
    guest = Guest(WasiNn(max_graphs=8, max_contexts=8))
    # Live handles for the small random values to hit, and noise in memory to read.
    _valid_cycle(guest, linear_bytes)
    noise = rng.randbytes(4096)
    guest.put(noise)
    size = guest.size
    seen: set[int] = set()
    for _ in range(CALLS_PER_FUNCTION):
        args = [_argument(rng, size) for _ in range(arity)]
        if name == "load" and args[2] in (0, 1, 3, 4, 5) and rng.random() < 0.97:
            args[2] = 77   # keep real backend compiles of noise rare: they are slow, not new
        errno = guest.call(name, *args)
        assert errno in VALID_ERRNOS, (name, args, errno)
        seen.add(errno)
    assert seen - {0}, f"{name}: fuzzing never hit an error path"
    # the host still serves correctly (after releasing what the fuzzing left live: the caps
    # on graphs/contexts are a feature, so make room through the ABI itself)
    for ctx in list(guest.nn._contexts):
        assert guest.call("finalize_execution_context", ctx) == 0
    for graph in list(guest.nn._graphs):
        assert guest.call("unload", graph) == 0
    _valid_cycle(guest, linear_bytes)

"""The same glue through wasmtime-py's generic `define_func` path (used when the fast
unchecked-callback path is unavailable): identical results and errnos."""

from __future__ import annotations

import random

import numpy as np
import pytest

from host_harness import FUNCTIONS, Guest
from wasinn.abi import fastcall
from wasinn.nn import VALID_ERRNOS


def test_fast_path_is_available_with_the_pinned_wasmtime():
    assert fastcall.available()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "fallback"])
def test_cycle_and_errors_on_both_paths(fast, linear_bytes):
    guest = Guest(fast=fast)
    errno, graph = guest.load([linear_bytes], 3)
    assert errno == 0
    errno, ctx = guest.init(graph)
    assert errno == 0
    assert guest.set_input(ctx, 0, [1, 3], 1, np.ones(3, np.float32).tobytes()) == 0
    assert guest.call("compute", ctx) == 0
    assert guest.get_output(ctx, 0, 4)[::2] == (7, 8)
    assert guest.get_output(ctx, 0, 8)[0] == 0
    assert guest.call("load", 0xFFFFFFF0, 0x20, 3, 0, 16) == 1
    assert guest.call("compute", 99) == 1
    assert Guest(fast=fast, export_memory=False).call("compute", 0) == 3


def test_fallback_fuzz(linear_bytes):
    rng = random.Random(7)
    guest = Guest(fast=False)
    for name, arity in FUNCTIONS:
        for _ in range(500):
            args = [rng.choice([rng.randrange(0, 8), rng.randrange(-(2**31), 2**31),
                                guest.size - rng.randrange(0, 16)]) for _ in range(arity)]
            if name == "load":
                args[2] = 99
            assert guest.call(name, *args) in VALID_ERRNOS
    assert guest.load([linear_bytes], 3)[0] == 0

"""The same glue through each of its three trampolines — wasmtime's unchecked callbacks in C
(`wasinn.abi._fastcall`), the same in ctypes (when the extension is not built), and
wasmtime-py's generic `define_func` path (when the unchecked API is unavailable): identical
results and errnos."""

from __future__ import annotations

import random

import numpy as np
import pytest

from host_harness import FUNCTIONS, Guest
from wasinn.abi import fastcall
from wasinn.nn import VALID_ERRNOS


PATHS = [(True, True), (True, False), (False, False)]
PATH_IDS = ["c-trampoline", "ctypes-trampoline", "fallback"]


def test_fast_path_is_available_with_the_pinned_wasmtime():
    assert fastcall.available()


def test_the_c_trampoline_is_built():
    """setup.py builds it wherever a C compiler and Python's headers are, as for the image
    module; without them the ctypes trampoline serves (tested below), and this test says so."""
    from wasinn.abi import _fastcall  # noqa: F401


def test_a_wasmtime_the_c_trampoline_does_not_know_falls_back_to_ctypes(monkeypatch, linear_bytes):
    """The C trampoline refuses a wasmtime layout it was not built for; the host then serves
    the same calls through the ctypes trampoline instead of failing every run."""
    from wasinn.abi import _fastcall

    def refuse(*args):
        raise ValueError("unexpected wasmtime layout")

    monkeypatch.setattr(fastcall, "_NATIVE", [])
    monkeypatch.setattr(_fastcall, "configure", refuse)
    guest = Guest(native=True)
    assert fastcall._NATIVE == [None]
    errno, graph = guest.load([linear_bytes], 3)
    assert errno == 0 and guest.init(graph)[0] == 0


@pytest.mark.parametrize("fast, native", PATHS, ids=PATH_IDS)
def test_cycle_and_errors_on_all_paths(fast, native, linear_bytes):
    guest = Guest(fast=fast, native=native)
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
    assert Guest(fast=fast, native=native, export_memory=False).call("compute", 0) == 3


@pytest.mark.parametrize("fast, native", PATHS, ids=PATH_IDS)
def test_ctrl_c_inside_a_call_traps_and_is_raised_on_all_paths(fast, native, linear_bytes):
    """A KeyboardInterrupt inside the host function stops the guest (a trap) and reaches the
    caller as itself, whichever trampoline ran it."""
    guest = Guest(fast=fast, native=native)

    def interrupted(*args):
        raise KeyboardInterrupt

    guest.nn.compute = interrupted
    with pytest.raises(KeyboardInterrupt):
        guest.call("compute", 0)
    del guest.nn.compute
    assert guest.call("compute", 99) == 1         # and the next call works as before


@pytest.mark.parametrize("fast, native", PATHS, ids=PATH_IDS)
def test_fuzz_on_all_paths(fast, native, linear_bytes):
    rng = random.Random(7)
    guest = Guest(fast=fast, native=native)
    for name, arity in FUNCTIONS:
        for _ in range(500):
            args = [rng.choice([rng.randrange(0, 8), rng.randrange(-(2**31), 2**31),
                                guest.size - rng.randrange(0, 16)]) for _ in range(arity)]
            if name == "load":
                args[2] = 99
            assert guest.call(name, *args) in VALID_ERRNOS
    assert guest.load([linear_bytes], 3)[0] == 0

"""wasi_nn.exit_now under plain CPython (there: sys.exit); tests/host/test_pool.py runs it in wasm,
where it skips the interpreter's teardown."""

from __future__ import annotations

import subprocess
import sys

import pytest

import wasi_nn

GUEST = """
import atexit, sys, wasi_nn
atexit.register(lambda: print("atexit ran", file=sys.stderr))
sys.stdout.write("buffered")
wasi_nn.exit_now(int(sys.argv[1]))
print("never printed")
"""


@pytest.mark.parametrize("code", [0, 3, 255])
def test_exit_now_flushes_and_runs_atexit(code):
    done = subprocess.run([sys.executable, "-c", GUEST, str(code)], capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (code, "buffered", "atexit ran\n")


def test_natively_it_is_sys_exit():
    """`wasinn run --native` runs the guest in the host's process: it must get SystemExit."""
    with pytest.raises(SystemExit) as exit_:
        wasi_nn.exit_now(4)
    assert exit_.value.code == 4


def test_a_failed_stdout_flush_is_status_120():
    code = ("import sys, wasi_nn\n"
            "class Broken:\n"
            "    def flush(self): raise OSError('the reader went away')\n"
            "sys.stdout = Broken(); wasi_nn.exit_now(0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 120


@pytest.mark.parametrize("code", [-1, 256, "1", 1.0, True, None])
def test_exit_now_refuses_a_wild_code(code):
    with pytest.raises(ValueError, match="exit code"):
        wasi_nn.exit_now(code)

"""Inputs stay bound until compute, even when the guest drops its own reference.

wasinn's host reads input tensors straight from guest memory at `compute` (no copy at
`set_input`), so the SDK must keep each bound buffer alive: otherwise a temporary tensor is
freed after `set_input`, its memory is reused, and inference silently runs on garbage.
This runs inside a real built guest, where freed memory really is reused.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .test_wasm import _runtime

pytestmark = pytest.mark.runtime

GUEST = textwrap.dedent('''
    import sys
    from array import array
    import wasi_nn
    from wasi_nn import ExecutionTarget, GraphBuilder, GraphEncoding, TensorType

    SHAPE = [int(d) for d in sys.argv[2].split(",")]
    COUNT = 1
    for d in SHAPE:
        COUNT *= d

    def temporary_tensor():
        return array("f", [1.5] * COUNT)        # the only reference is the argument

    def scribble():                               # reuse freed blocks of the same size
        return [array("f", [-7.0] * COUNT) for _ in range(200)]

    model = open(sys.argv[1], "rb").read()
    with GraphBuilder(GraphEncoding.PYTORCH, ExecutionTarget.CPU).build_from_bytes([model]) as graph:
        with graph.init_execution_context() as ctx:
            ctx.set_input(0, TensorType.F32, SHAPE, temporary_tensor())
            junk = scribble()
            ctx.compute()
            print("pythonic", sorted(set(ctx.get_output_array(0, "f"))))

        ctx = wasi_nn.init_execution_context(graph.handle)
        wasi_nn.set_input(ctx, 0, wasi_nn.Tensor(SHAPE, wasi_nn.TENSOR_TYPE_F32, temporary_tensor()))
        junk = scribble()
        wasi_nn.compute(ctx)
        out = array("f", bytes(4 * COUNT))
        wasi_nn.get_output(ctx, 0, out)
        print("lowlevel", sorted(set(out)))
        wasi_nn.finalize_execution_context(ctx)
''')


def test_temporary_inputs_survive_until_compute(tmp_path: Path, torchscript_model: Path):
    _runtime()
    from wasinn_toolchain.bundler import build_guest

    from .conftest import SHAPE

    (tmp_path / "guest").mkdir()
    (tmp_path / "guest" / "main.py").write_text(GUEST)
    wasm = tmp_path / "lifetime.wasm"
    build_guest(tmp_path / "guest", wasm)
    folder = torchscript_model.parent
    shape = ",".join(str(d) for d in SHAPE)
    done = subprocess.run([sys.executable, "-m", "wasinn", "run", "--dir", f"{folder}:{folder}",
                           str(wasm), str(torchscript_model), shape],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # The tiny model computes relu(2x - 1): 1.5 -> 2.0; scribbled memory (-7.0) would give 0.0.
    assert done.stdout.splitlines() == ["pythonic [2.0]", "lowlevel [2.0]"]

"""Portable-runtime guest: the Pythonic API where the host has no unload/finalize imports.

Usage: main.py TORCHSCRIPT
"""

import sys

import wasi_nn
from wasi_nn import Errno, GraphBuilder, GraphEncoding, TensorType, WasiNnError


def main(argv):
    import _wasi_nn

    print("portable:", _wasi_nn.PORTABLE)
    data = bytearray(4 * 3 * 32 * 32)
    with GraphBuilder(GraphEncoding.PYTORCH).build_from_files([argv[1]]) as graph:
        with graph.init_execution_context() as ctx:
            ctx.set_input(0, TensorType.F32, [1, 3, 32, 32], data)
            ctx.compute()
            print("output bytes:", len(ctx.get_output(0)))
    print("with blocks left cleanly")
    try:
        wasi_nn.unload(0)
    except WasiNnError as error:
        print("explicit unload:", error.name, error.errno == Errno.UNSUPPORTED_OPERATION)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

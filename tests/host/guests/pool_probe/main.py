"""A guest that probes what one pool call can leave behind for the next, and the pool's limits.

main.py leave   -> sets a global, writes /files/state.txt, an env var, and leaves a graph and
                   a context of the preloaded model "lin" open
main.py check   -> prints JSON: what of the above this call can see
main.py echo    -> stdin to stdout, argv and env X to stderr
main.py cat PATH -> the file's bytes on stdout
main.py exit N  -> exit code N
main.py sleep S -> sleeps S seconds in the host (WASI poll_oneoff), then prints "slept"
main.py infer V -> "lin" on [V, V, V], the two outputs on stdout
main.py spin    -> loops forever (timeouts)
main.py alloc N -> allocates N MiB
main.py crash   -> os.abort(): a wasm trap
main.py spam N  -> writes N MiB to stdout
main.py quick N -> buffered stdout, an atexit handler, an object with __del__, then
                   wasi_nn.exit_now(N)
"""

import builtins
import json
import os
import struct
import sys

import wasi_nn


def infer(value: float) -> list[float]:
    graph = wasi_nn.load_by_name("lin")
    ctx = wasi_nn.init_execution_context(graph)
    wasi_nn.set_input(ctx, 0, wasi_nn.Tensor([1, 3], wasi_nn.TENSOR_TYPE_F32,
                                             struct.pack("<3f", value, value, value)))
    wasi_nn.compute(ctx)
    out = bytearray(8)
    wasi_nn.get_output(ctx, 0, out)
    return list(struct.unpack("<2f", out))


def main(argv: list[str]) -> int:
    mode = argv[1]
    if mode == "leave":
        builtins.POOL_MARK = "left by an earlier call"
        with open("/files/state.txt", "w") as out:
            out.write("state")
        os.environ["POOL_LEAK"] = "1"
        graph = wasi_nn.load_by_name("lin")
        ctx = wasi_nn.init_execution_context(graph)
        print(json.dumps({"graph": graph, "context": ctx}))
    elif mode == "check":
        try:
            wasi_nn.init_execution_context(0)
            stale_graph = "usable"
        except wasi_nn.WasiNnError as error:
            stale_graph = error.name
        graph = wasi_nn.load_by_name("lin")
        print(json.dumps({"mark": hasattr(builtins, "POOL_MARK"),
                          "file": os.path.exists("/files/state.txt"),
                          "env": os.environ.get("POOL_LEAK"),
                          "stale_graph_0": stale_graph, "first_graph": graph,
                          "first_context": wasi_nn.init_execution_context(graph)}))
    elif mode == "echo":
        data = sys.stdin.buffer.read()
        sys.stdout.buffer.write(data)
        print(json.dumps({"argv": argv[2:], "X": os.environ.get("X")}), file=sys.stderr)
    elif mode == "cat":
        with open(argv[2], "rb") as file:
            sys.stdout.buffer.write(file.read())
    elif mode == "exit":
        print("exiting as asked", file=sys.stderr)
        return int(argv[2])
    elif mode == "sleep":
        import time

        time.sleep(float(argv[2]))
        print("slept")
    elif mode == "infer":
        print(json.dumps(infer(float(argv[2]))))
    elif mode == "spin":
        while True:
            pass
    elif mode == "alloc":
        block = bytearray(int(argv[2]) << 20)
        print(len(block))
    elif mode == "crash":
        os.abort()                      # wasi-libc's abort() is the wasm `unreachable` instruction
    elif mode == "quick":
        import atexit

        class Noisy:
            def __del__(self):
                print("teardown ran", file=sys.stderr)

        builtins.POOL_NOISY = Noisy()   # freed only by the interpreter's teardown
        atexit.register(lambda: print("atexit ran", file=sys.stderr))
        sys.stdout.write("buffered, no newline")
        wasi_nn.exit_now(int(argv[2]))
    elif mode == "spam":
        chunk = b"x" * (1 << 20)
        for _ in range(int(argv[2])):
            sys.stdout.buffer.write(chunk)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

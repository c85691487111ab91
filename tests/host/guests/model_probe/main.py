"""A guest that runs whatever model it is handed on stdin: the attacker's side of the tests.

    main.py ENCODING PART_SIZES INPUT [REPEAT]

stdin holds the model parts back to back (PART_SIZES, e.g. "1200,5000"); INPUT is
"f32:1,3" (input 0 filled with ones) or "-" (no set_input). Needs no --dir. Prints one JSON
line: {"ok": true, "size": n, "head": hex} or {"failed": step, "errno": n}.
"""

import json
import sys

import wasi_nn


def main() -> int:
    encoding, sizes, spec = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    repeat = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    data = sys.stdin.buffer.read()
    parts, offset = [], 0
    for size in (int(s) for s in sizes.split(",")):
        parts.append(data[offset:offset + size])
        offset += size
    step = "load"
    try:
        for _ in range(repeat):
            step = "load"
            graph = wasi_nn.load(parts, encoding, wasi_nn.EXECUTION_TARGET_CPU)
            step = "init_execution_context"
            context = wasi_nn.init_execution_context(graph)
            if spec != "-":
                kind, dims_text = spec.split(":")
                dims = [int(d) for d in dims_text.split(",")]
                count = 1
                for d in dims:
                    count *= d
                step = "set_input"
                tensor_type = {"f32": wasi_nn.TENSOR_TYPE_F32, "i64": wasi_nn.TENSOR_TYPE_I64}[kind]
                item = b"\x00\x00\x80\x3f" if kind == "f32" else (1).to_bytes(8, "little")
                wasi_nn.set_input(context, 0, wasi_nn.Tensor(dims, tensor_type, item * count))
            step = "compute"
            wasi_nn.compute(context)
            step = "get_output"
            out = bytearray(1 << 20)
            size = wasi_nn.get_output(context, 0, out)
    except wasi_nn.WasiNnError as error:
        print(json.dumps({"failed": step, "errno": error.errno}))
        return 0
    print(json.dumps({"ok": True, "size": size, "head": bytes(out[:64]).hex()}))
    return 0


sys.exit(main())

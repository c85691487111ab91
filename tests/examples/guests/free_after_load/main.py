"""Test guest: free the model bytes right after `load`, scribble over the heap, then infer.

A guest owns its memory: once `load` has returned, the bytes it passed may be freed and reused
(the examples do exactly that with `GraphBuilder.build_from_files`). A host that still reads
them later computes with garbage. The output is written raw for the test to compare.

    main.py ENCODING DIMS INPUT.bin OUTPUT.bin MODEL [MODEL...]
"""

import sys

import wasi_nn


def load(encoding: str, paths: list) -> int:
    parts = []
    for path in paths:
        with open(path, "rb") as file:
            parts.append(file.read())
    return wasi_nn.load(parts, getattr(wasi_nn, "GRAPH_ENCODING_" + encoding),
                        wasi_nn.EXECUTION_TARGET_CPU)  # `parts` is freed on return


def main(argv: list) -> int:
    encoding, dims, input_path, output_path = argv[1:5]
    graph = load(encoding, argv[5:])
    context = wasi_nn.init_execution_context(graph)
    # Reuse the freed memory: many small and large blocks of a recognisable pattern.
    scribbles = [bytes([i % 251]) * size for i, size in
                 enumerate([16, 32, 64, 256, 4096, 65536] * 400)]
    with open(input_path, "rb") as file:
        data = file.read()
    wasi_nn.set_input(context, 0, wasi_nn.Tensor([int(d) for d in dims.split(",")],
                                                 wasi_nn.TENSOR_TYPE_F32, data))
    wasi_nn.compute(context)
    output = bytearray(0)  # too small on purpose: too_large tells the size
    try:
        written = wasi_nn.get_output(context, 0, output)
    except wasi_nn.WasiNnError as error:
        output = bytearray(error.needed)
        written = wasi_nn.get_output(context, 0, output)
    with open(output_path, "wb") as file:
        file.write(memoryview(output)[:written])
    print(f"wrote {written} bytes after {len(scribbles)} scribbles")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

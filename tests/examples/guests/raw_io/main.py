"""Test guest: run a model on a tensor read from a file and write the raw output bytes.

No image code, no formatting: what goes in and comes out is bytes, so a test can compare
the guest's output with the same model run natively, bit for bit.

    main.py ENCODING TYPE DIMS INPUT.bin OUTPUT.bin MODEL [MODEL...]
"""

import sys

import wasi_nn


def main(argv: list) -> int:
    encoding, tensor_type, dims, input_path, output_path = argv[1:6]
    parts = []
    for path in argv[6:]:
        with open(path, "rb") as file:
            parts.append(file.read())
    with open(input_path, "rb") as file:
        data = file.read()
    graph = wasi_nn.load(parts, getattr(wasi_nn, "GRAPH_ENCODING_" + encoding),
                         wasi_nn.EXECUTION_TARGET_CPU)
    context = wasi_nn.init_execution_context(graph)
    tensor = wasi_nn.Tensor([int(d) for d in dims.split(",")],
                            getattr(wasi_nn, "TENSOR_TYPE_" + tensor_type), data)
    wasi_nn.set_input(context, 0, tensor)
    wasi_nn.compute(context)
    try:
        written = wasi_nn.get_output(context, 0, bytearray(0))
    except wasi_nn.WasiNnError as error:  # too_large tells the size the output needs
        output = bytearray(error.needed)
        written = wasi_nn.get_output(context, 0, output)
    else:
        output = bytearray(written)
    with open(output_path, "wb") as file:
        file.write(memoryview(output)[:written])
    print(f"wrote {written} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

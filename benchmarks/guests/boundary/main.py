"""Times the calls that move tensors across the guest/host boundary, one by one.

The same file runs as a core module (witx wasi_ephemeral_nn) and as a component (WIT wasi:nn);
`time.perf_counter` around the very same SDK calls makes the two comparable. Prints one JSON
object of medians in ms.

    main.py MODEL.xml MODEL.bin IMAGE REPEAT
"""

import json
import sys
import time

import wasi_nn
from wasi_nn.image import image_to_tensor


def median(values: list) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def main(argv: list) -> int:
    xml_path, weights_path, image_path, repeat = argv[1], argv[2], argv[3], int(argv[4])
    clock = time.perf_counter
    with open(xml_path, "rb") as file:
        xml = file.read()
    with open(weights_path, "rb") as file:
        weights = file.read()
    start = clock()
    graph = wasi_nn.load([xml, weights], wasi_nn.GRAPH_ENCODING_OPENVINO,
                         wasi_nn.EXECUTION_TARGET_CPU)
    load_ms = 1e3 * (clock() - start)
    context = wasi_nn.init_execution_context(graph)
    tensor = wasi_nn.Tensor([1, 3, 224, 224], wasi_nn.TENSOR_TYPE_F32,
                            bytes(image_to_tensor(image_path, 224, 224, preset="openvino")))
    output = bytearray(4 * 1001)
    set_input, compute, get_output = [], [], []
    for _ in range(repeat + 2):
        start = clock()
        wasi_nn.set_input(context, 0, tensor)
        middle = clock()
        wasi_nn.compute(context)
        end = clock()
        wasi_nn.get_output(context, 0, output)
        last = clock()
        set_input.append(middle - start)
        compute.append(end - middle)
        get_output.append(last - end)
    print(json.dumps({"load_ms": load_ms,
                      "set_input_ms": 1e3 * median(set_input[2:]),
                      "compute_ms": 1e3 * median(compute[2:]),
                      "get_output_ms": 1e3 * median(get_output[2:]),
                      "input_bytes": len(tensor.data), "output_bytes": len(output)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

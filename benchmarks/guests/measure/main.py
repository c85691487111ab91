"""A guest that times its own WASI-NN steps, so wasm and native mode can be compared fairly.

The same file runs inside a wasinn-built module and under plain CPython (native mode); each
number is taken with `time.perf_counter` around the very same SDK calls, so the ratio of the
two runs is the cost of being a wasm guest and nothing else. Prints one JSON object.

    main.py ENCODING PRESET DIMS TYPE OUTPUT_BYTES REPEAT IMAGE MODEL [MODEL...]

ENCODING is an SDK constant's suffix (OPENVINO, PYTORCH, TENSORFLOWLITE), PRESET an
`image_to_tensor` preset, DIMS like 1,3,224,224 (NCHW) or 1,224,224,3 (NHWC), TYPE F32 or U8.

REPEAT `stdin:N` is the stepped mode (benchmarks/timing.paired_steps, worker_bench.py): after
the load, every line read from stdin runs N inferences back to back and prints their times on
one line ({"infer_ms": [N values], "load_ms": the second load + init}), until stdin ends. A
benchmark can then interleave several guests' bursts finely enough that a machine whose speed
drifts within seconds treats them alike.
"""

import json
import sys
import time

import wasi_nn
from wasi_nn.image import image_to_tensor


def median(values: list) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def measure(encoding: str, preset: str, dims: list, tensor_type: str, output_bytes: int,
            repeat: int, image: str, models: list) -> dict:
    clock = time.perf_counter
    start = clock()
    parts = []
    for path in models:
        with open(path, "rb") as file:
            parts.append(file.read())
    read_s = clock() - start

    encoding_code = getattr(wasi_nn, "GRAPH_ENCODING_" + encoding)
    # The first load also pays for the host importing its backend library; the second one is
    # the load itself, comparable with the library called directly.
    start = clock()
    first = wasi_nn.load(parts, encoding_code, wasi_nn.EXECUTION_TARGET_CPU)
    wasi_nn.init_execution_context(first)
    first_load_s = clock() - start
    start = clock()
    graph = wasi_nn.load(parts, encoding_code, wasi_nn.EXECUTION_TARGET_CPU)
    context = wasi_nn.init_execution_context(graph)
    load_s = clock() - start

    height, width = (dims[1], dims[2]) if dims[3] in (1, 3) else (dims[2], dims[3])
    if isinstance(repeat, str):                    # stdin:N, the stepped mode
        stepped(context, image, height, width, preset, dims, tensor_type, output_bytes,
                int(repeat.split(":", 1)[1]), 1e3 * load_s)
        return {}
    decode = []
    for _ in range(repeat):
        start = clock()
        tensor_data = image_to_tensor(image, height, width, preset=preset)
        decode.append(clock() - start)

    tensor = wasi_nn.Tensor(dims, getattr(wasi_nn, "TENSOR_TYPE_" + tensor_type), tensor_data)
    output = bytearray(output_bytes)
    infer = [one_inference(context, tensor, output) for _ in range(repeat + 2)]
    infer = infer[2:]  # the first runs warm the backend's caches
    return {"read_ms": 1e3 * read_s, "first_load_ms": 1e3 * first_load_s, "load_ms": 1e3 * load_s,
            "decode_ms": 1e3 * median(decode), "infer_ms": 1e3 * median(infer)}


def one_inference(context, tensor, output: bytearray) -> float:
    """Seconds for one set_input + compute + get_output (what both modes time)."""
    start = time.perf_counter()
    wasi_nn.set_input(context, 0, tensor)
    wasi_nn.compute(context)
    wasi_nn.get_output(context, 0, output)
    return time.perf_counter() - start


def stepped(context, image: str, height: int, width: int, preset: str, dims: list,
            tensor_type: str, output_bytes: int, burst: int, load_ms: float) -> None:
    """The stepped mode: a burst of `burst` timed inferences per line of stdin."""
    tensor = wasi_nn.Tensor(dims, getattr(wasi_nn, "TENSOR_TYPE_" + tensor_type),
                            image_to_tensor(image, height, width, preset=preset))
    output = bytearray(output_bytes)
    while sys.stdin.readline():
        times = [1e3 * one_inference(context, tensor, output) for _ in range(burst)]
        print(json.dumps({"infer_ms": times, "load_ms": load_ms}), flush=True)


def main(argv: list) -> int:
    if len(argv) < 9:
        print(__doc__, file=sys.stderr)
        return 2
    encoding, preset, dims, tensor_type, output_bytes, repeat, image = argv[1:8]
    repeat = repeat if repeat.startswith("stdin:") else int(repeat)
    result = measure(encoding, preset, [int(d) for d in dims.split(",")], tensor_type,
                     int(output_bytes), repeat, image, argv[8:])
    if result:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Classify an image with MobileNetV2 through WASI-NN's OpenVINO backend.

The Python twin of the WasmEdge WASI-NN example ``openvino-mobilenet-image``: same arguments,
same printed lines, same tensor (BGR, 0–255 f32, NCHW, Triangle resize), so its output can be
compared line by line with the Rust-built module's::

    wasinn run --dir .:. mobilenet.wasm mobilenet.xml mobilenet.bin input.jpg

The model's output has 1001 classes with "background" at index 0; like the Rust program we
skip that entry, so class numbers are ImageNet's 0–999 (banana is 954).
"""

import sys
from array import array

import wasi_nn
from wasi_nn.image import image_to_tensor
from wasi_nn.labels import imagenet_labels
from wasi_nn.results import format_results, sort_results

USAGE = "usage: main.py MODEL.xml MODEL.bin IMAGE"


def run(xml_path: str, weights_path: str, image_path: str) -> None:
    with open(xml_path, "rb") as file:
        xml = file.read()
    print(f"Read graph XML, size in bytes: {len(xml)}")
    with open(weights_path, "rb") as file:
        weights = file.read()
    print(f"Read graph weights, size in bytes: {len(weights)}")

    graph = wasi_nn.load([xml, weights], wasi_nn.GRAPH_ENCODING_OPENVINO,
                         wasi_nn.EXECUTION_TARGET_CPU)
    print(f"Loaded graph into wasi-nn with ID: {graph}")
    context = wasi_nn.init_execution_context(graph)
    print(f"Created wasi-nn execution context with ID: {context}")

    tensor_data = image_to_tensor(image_path, 224, 224, preset="openvino")
    print(f"Read input tensor, size in bytes: {len(tensor_data)}")
    tensor = wasi_nn.Tensor([1, 3, 224, 224], wasi_nn.TENSOR_TYPE_F32, tensor_data)
    wasi_nn.set_input(context, 0, tensor)
    wasi_nn.compute(context)
    print("Executed graph inference")

    output = array("f", bytes(4 * 1001))
    wasi_nn.get_output(context, 0, output)
    results = sort_results(output, skip=1)
    print(format_results(results, imagenet_labels(1000), k=5))


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        run(argv[1], argv[2], argv[3])
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    except (wasi_nn.WasiNnError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

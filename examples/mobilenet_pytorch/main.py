"""Classify an image with an ImageNet TorchScript model through WASI-NN's PyTorch backend.

The Python twin of the WasmEdge WASI-NN example ``pytorch-mobilenet-image``: same arguments,
same printed lines, same tensor (RGB, ImageNet mean/std, NCHW, Triangle resize)::

    wasinn run --dir .:. mobilenet.wasm mobilenet.pt input.jpg

The model returns 1000 raw scores (logits), printed as they come, like the Rust program.
"""

import sys
from array import array

import wasi_nn
from wasi_nn.image import image_to_tensor
from wasi_nn.labels import imagenet_labels
from wasi_nn.results import format_results, sort_results

USAGE = "usage: main.py MODEL.pt IMAGE"


def run(model_path: str, image_path: str) -> None:
    with open(model_path, "rb") as file:
        weights = file.read()
    print(f"Read torchscript binaries, size in bytes: {len(weights)}")

    graph = wasi_nn.load([weights], wasi_nn.GRAPH_ENCODING_PYTORCH, wasi_nn.EXECUTION_TARGET_CPU)
    print(f"Loaded graph into wasi-nn with ID: {graph}")
    context = wasi_nn.init_execution_context(graph)
    print(f"Created wasi-nn execution context with ID: {context}")

    tensor_data = image_to_tensor(image_path, 224, 224, preset="pytorch")
    print(f"Read input tensor, size in bytes: {len(tensor_data)}")
    tensor = wasi_nn.Tensor([1, 3, 224, 224], wasi_nn.TENSOR_TYPE_F32, tensor_data)
    wasi_nn.set_input(context, 0, tensor)
    wasi_nn.compute(context)
    print("Executed graph inference")

    output = array("f", bytes(4 * 1000))
    wasi_nn.get_output(context, 0, output)
    print(format_results(sort_results(output), imagenet_labels(1000), k=5))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        run(argv[1], argv[2])
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    except (wasi_nn.WasiNnError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Classify an image with a model the host preloaded by name (WASI-NN "named models").

The Python twin of the WasmEdge WASI-NN example ``pytorch-mobilenet-image``'s named-model
program: the guest never reads the model file; the host loads it once, before the guest starts,
from ``--nn-preload NAME:ENCODING:TARGET:PATH``, and the guest asks for it by NAME::

    wasinn run --dir .:. --nn-preload demo:PyTorch:CPU:mobilenet.pt named.wasm demo input.jpg
"""

import sys
from array import array

import wasi_nn
from wasi_nn.image import image_to_tensor
from wasi_nn.labels import imagenet_labels
from wasi_nn.results import format_results, sort_results

USAGE = "usage: main.py MODEL_NAME IMAGE   (with --nn-preload MODEL_NAME:PyTorch:CPU:model.pt)"


def run(model_name: str, image_path: str) -> None:
    graph = wasi_nn.load_by_name(model_name)
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

"""Name the bird in a picture with the AIY birds classifier through WASI-NN's TFLite backend.

The Python twin of the WasmEdge WASI-NN example ``tflite-birds_v1-image``: a quantized model, so
the input is u8 (RGB, NHWC, 0–255, Triangle resize) and the 965 scores are u8 too, printed as
integers like the Rust program prints them::

    wasinn run --dir .:. birds.wasm lite-model_aiy_vision_classifier_birds_V1_3.tflite bird.jpg

The Rust program compiles the 965 names into its binary. They are also inside the model: a
TFLite file with metadata is a zip archive whose (uncompressed) members include the labels, so
this guest reads them from the bytes it already loaded — `zipfile` needs no zlib for that.
"""

import io
import sys
import zipfile
from array import array

import wasi_nn
from wasi_nn.image import image_to_tensor
from wasi_nn.results import sort_results

USAGE = "usage: main.py MODEL.tflite IMAGE"
LABELS_MEMBER = "probability-labels-en.txt"


def labels_inside(model: bytes) -> list[str]:
    """The class names stored in the model's metadata archive."""
    with zipfile.ZipFile(io.BytesIO(model)) as archive:
        return archive.read(LABELS_MEMBER).decode("utf-8").splitlines()


def run(model_path: str, image_path: str) -> None:
    with open(model_path, "rb") as file:
        weights = file.read()
    print(f"Read graph weights, size in bytes: {len(weights)}")

    graph = wasi_nn.load([weights], wasi_nn.GRAPH_ENCODING_TENSORFLOWLITE,
                         wasi_nn.EXECUTION_TARGET_CPU)
    print(f"Loaded graph into wasi-nn with ID: {graph}")
    context = wasi_nn.init_execution_context(graph)
    print(f"Created wasi-nn execution context with ID: {context}")

    tensor_data = image_to_tensor(image_path, 224, 224, preset="tflite")
    print(f"Read input tensor, size in bytes: {len(tensor_data)}")
    tensor = wasi_nn.Tensor([1, 224, 224, 3], wasi_nn.TENSOR_TYPE_U8, tensor_data)
    wasi_nn.set_input(context, 0, tensor)
    wasi_nn.compute(context)
    print("Executed graph inference")

    output = array("B", bytes(965))  # u8 scores: an array of ints, not f32 bytes
    wasi_nn.get_output(context, 0, output)
    labels = labels_inside(weights)
    # Rust's "{:.4}" ignores the precision for integers, so the scores print as 198, not 198.0.
    for rank, (index, score) in enumerate(sort_results(output)[:5], start=1):
        print(f"   {rank}.) [{index}]({score}){labels[index]}")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        run(argv[1], argv[2])
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    except (wasi_nn.WasiNnError, ValueError, KeyError, zipfile.BadZipFile) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

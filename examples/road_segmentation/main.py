"""Segment a road scene with road-segmentation-adas-0001 (OpenVINO) and save a coloured mask.

The Python twin of the WasmEdge WASI-NN example ``openvino-road-segmentation-adas``, with an
output of a different shape from the classifiers: a [1, 4, 512, 896] f32 map of per-pixel
probabilities for background, road, curb and lane mark. The Rust program dumps that tensor to
a file; this one also does the last step a person wants — the most likely class of every pixel,
painted in the viridis colours of the seed's picture, written as a BMP (see bmp.py for why)::

    wasinn run --dir .:. road.wasm road-segmentation-adas-0001.xml road-segmentation-adas-0001.bin road.jpg mask.bmp

It uses the Pythonic API (GraphBuilder, contexts as objects) rather than the low-level calls,
and numpy for the post-processing (so `wasinn build` gives it the numpy runtime flavour).
"""

import sys

import numpy as np

from wasi_nn import ExecutionTarget, GraphBuilder, GraphEncoding, WasiNnError
from wasi_nn.image import image_to_tensor

from bmp import encode_bmp

USAGE = "usage: main.py MODEL.xml MODEL.bin IMAGE [MASK.bmp]"
HEIGHT, WIDTH = 512, 896
CLASSES = ("background", "road", "curb", "mark")
# viridis at 0, 1/3, 2/3, 1 as (R, G, B): the colours of the seed's segmentation picture.
PALETTE = ((68, 1, 84), (49, 104, 142), (53, 183, 121), (253, 231, 37))
BGR_PALETTE = np.array([colour[::-1] for colour in PALETTE], dtype=np.uint8)


def argmax_classes(probabilities: np.ndarray) -> np.ndarray:
    """Index of the most likely class (first on ties) for every pixel of a [4, H, W] map."""
    return probabilities.argmax(axis=0).astype(np.uint8)


def colour_mask(classes: np.ndarray) -> np.ndarray:
    """[H, W, 3] B, G, R bytes for each pixel's class (BMP stores blue, green, red)."""
    # take() is BGR_PALETTE[classes] without fancy indexing's general machinery: 3x faster
    # natively, 5x in the wasm build of numpy (which has no SIMD kernels).
    return BGR_PALETTE.take(classes, axis=0)


def run(xml_path: str, weights_path: str, image_path: str, mask_path: str) -> None:
    print("Load graph ...", end="")
    graph = GraphBuilder(GraphEncoding.OPENVINO, ExecutionTarget.CPU).build_from_files(
        [xml_path, weights_path])
    print("done")

    print("Init execution context ...", end="")
    context = graph.init_execution_context()
    print("done")

    print("Set input tensor ...", end="")
    tensor = image_to_tensor(image_path, HEIGHT, WIDTH, preset="openvino", as_array=True)
    context.set_input(0, tensor)  # dtype and shape ([1, 3, H, W] f32) come from the array
    print("done")

    print("Perform graph inference ...", end="")
    context.compute()
    print("done")

    print("Retrieve the output ...", end="")
    output = context.get_output(0, shape=(len(CLASSES), HEIGHT, WIDTH))  # batch of 1
    print("done")
    print(f"The size of the output buffer is {output.nbytes} bytes")

    pixels = HEIGHT * WIDTH
    classes = argmax_classes(output)
    with open(mask_path, "wb") as file:
        file.write(encode_bmp(WIDTH, HEIGHT, colour_mask(classes).tobytes()))
    print(f"Wrote the {WIDTH}x{HEIGHT} segmentation mask to {mask_path}")
    counts = np.bincount(classes.ravel(), minlength=len(CLASSES))
    for k, name in enumerate(CLASSES):
        print(f"   {name}: {100 * int(counts[k]) / pixels:.2f}% of pixels")


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print(USAGE, file=sys.stderr)
        return 2
    mask_path = argv[4] if len(argv) == 5 else "segmentation.bmp"
    try:
        run(argv[1], argv[2], argv[3], mask_path)
    except OSError as error:
        print(f"\nerror: {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    except (WasiNnError, ValueError) as error:
        print(f"\nerror: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Segment a road scene with road-segmentation-adas-0001 (OpenVINO) and save a coloured mask.

The Python twin of the WasmEdge WASI-NN example ``openvino-road-segmentation-adas``, with an
output of a different shape from the classifiers: a [1, 4, 512, 896] f32 map of per-pixel
probabilities for background, road, curb and lane mark. The Rust program dumps that tensor to
a file; this one also does the last step a person wants — the most likely class of every pixel,
painted in the viridis colours of the seed's picture, written as a BMP (see bmp.py for why)::

    wasinn run --dir .:. road.wasm road-segmentation-adas-0001.xml road-segmentation-adas-0001.bin road.jpg mask.bmp

It uses the Pythonic API (GraphBuilder, contexts as objects) rather than the low-level calls.
"""

import sys
from array import array

from wasi_nn import ExecutionTarget, GraphBuilder, GraphEncoding, TensorType, WasiNnError
from wasi_nn.image import image_to_tensor

from bmp import encode_bmp

USAGE = "usage: main.py MODEL.xml MODEL.bin IMAGE [MASK.bmp]"
HEIGHT, WIDTH = 512, 896
CLASSES = ("background", "road", "curb", "mark")
# viridis at 0, 1/3, 2/3, 1 as (R, G, B): the colours of the seed's segmentation picture.
PALETTE = ((68, 1, 84), (49, 104, 142), (53, 183, 121), (253, 231, 37))


def argmax_classes(probabilities: memoryview, pixels: int) -> bytearray:
    """Index of the most likely class (first on ties, like numpy.argmax) for every pixel.

    The output is planar (all background scores, then all road scores, ...); zipping four
    memoryview slices walks the planes in step without copying them.
    """
    planes = [probabilities[k * pixels:(k + 1) * pixels] for k in range(len(CLASSES))]
    classes = bytearray(pixels)
    i = 0
    for a, b, c, d in zip(*planes):
        if a >= b:
            if a >= c:
                k = 0 if a >= d else 3
            else:
                k = 2 if c >= d else 3
        elif b >= c:
            k = 1 if b >= d else 3
        else:
            k = 2 if c >= d else 3
        classes[i] = k
        i += 1
    return classes


def colour_mask(classes: bytearray) -> bytearray:
    """B, G, R bytes for each pixel's class; `bytes.translate` does the lookup in C."""
    bgr = bytearray(3 * len(classes))
    for channel, component in enumerate((2, 1, 0)):  # BMP stores blue, green, red
        table = bytearray(256)
        for k, colour in enumerate(PALETTE):
            table[k] = colour[component]
        bgr[channel::3] = classes.translate(table)
    return bgr


def run(xml_path: str, weights_path: str, image_path: str, mask_path: str) -> None:
    print("Load graph ...", end="")
    graph = GraphBuilder(GraphEncoding.OPENVINO, ExecutionTarget.CPU).build_from_files(
        [xml_path, weights_path])
    print("done")

    print("Init execution context ...", end="")
    context = graph.init_execution_context()
    print("done")

    print("Set input tensor ...", end="")
    tensor_data = image_to_tensor(image_path, HEIGHT, WIDTH, preset="openvino")
    context.set_input(0, TensorType.F32, [1, 3, HEIGHT, WIDTH], tensor_data)
    print("done")

    print("Perform graph inference ...", end="")
    context.compute()
    print("done")

    print("Retrieve the output ...", end="")
    output = array("f", bytes(4 * len(CLASSES) * HEIGHT * WIDTH))
    size = context.get_output_into(0, output)
    print("done")
    print(f"The size of the output buffer is {size} bytes")

    pixels = HEIGHT * WIDTH
    classes = argmax_classes(memoryview(output), pixels)
    with open(mask_path, "wb") as file:
        file.write(encode_bmp(WIDTH, HEIGHT, colour_mask(classes)))
    print(f"Wrote the {WIDTH}x{HEIGHT} segmentation mask to {mask_path}")
    for k, name in enumerate(CLASSES):
        print(f"   {name}: {100 * classes.count(k) / pixels:.2f}% of pixels")


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

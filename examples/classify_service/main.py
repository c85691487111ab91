"""Classify images with a preloaded MobileNetV2: the guest behind `wasinn serve` and `wasinn map`.

The model is named, not read: the host compiles it once (`--nn-preload`) and every guest asks
for it with `load_by_name`, so a fresh guest per request or per image costs no compile::

    wasinn serve --nn-preload mobilenet:OpenVINO:CPU:mobilenet.xml,mobilenet.bin classify.wasm mobilenet
    curl --data-binary @banana.jpg http://127.0.0.1:8000/
    wasinn map --nn-preload mobilenet:OpenVINO:CPU:mobilenet.xml,mobilenet.bin \\
        --inputs 'images/*.jpg' --out results classify.wasm mobilenet {}

Arguments: MODEL_NAME [IMAGE ...]. Without an IMAGE (or with ``-``) the picture is read from
standard input. For each picture one JSON line is printed: the top 5 of the 1000 ImageNet
classes (the model's background class 0 skipped, as in ``examples/mobilenet_openvino``).
"""

import json
import sys

import wasi_nn
from wasi_nn.image import image_to_tensor
from wasi_nn.labels import imagenet_labels
from wasi_nn.results import sort_results

USAGE = "usage: main.py MODEL_NAME [IMAGE|- ...]   (with --nn-preload MODEL_NAME:OpenVINO:CPU:m.xml,m.bin)"


def classify(context, source, labels) -> dict:
    tensor = image_to_tensor(source, 224, 224, preset="openvino")
    context.set_input(0, wasi_nn.TensorType.F32, [1, 3, 224, 224], tensor)
    context.compute()
    scores = context.get_output_array(0)
    top = sort_results(scores, skip=1)[:5]
    return {"top5": [{"class": index, "label": labels[index], "score": round(score, 6)}
                     for index, score in top]}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    images = argv[2:] or ["-"]
    labels = imagenet_labels(1000)
    try:
        builder = wasi_nn.GraphBuilder(wasi_nn.GraphEncoding.OPENVINO, wasi_nn.ExecutionTarget.CPU)
        with builder.build_from_cache(argv[1]) as graph, graph.init_execution_context() as context:
            for image in images:
                source = sys.stdin.buffer.read() if image == "-" else image
                result = classify(context, source, labels)
                if image != "-":
                    result["image"] = image
                print(json.dumps(result))
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    except (wasi_nn.WasiNnError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Each request or image gets a fresh guest that the host discards after it exits: skip
    # CPython's teardown (~3 ms in wasm), keeping the atexit callbacks and the stdout flush.
    wasi_nn.exit_now(main(sys.argv))

"""SDK exercise guest: runs unchanged inside wasm and under plain CPython (native mode).

Usage: main.py OUT_DIR TORCHSCRIPT OV_XML OV_BIN IMAGE
Writes every tensor and output it makes into OUT_DIR (so the test can compare native and wasm
byte for byte) and prints one deterministic line per check.
"""

import os
import sys

import wasi_nn
from wasi_nn import Errno, ExecutionTarget, GraphBuilder, GraphEncoding, TensorType, WasiNnError


def read_writable(path):
    """The file into a bytearray (one read, no further copy; a writable buffer for any backend)."""
    buffer = bytearray(os.stat(path).st_size)
    with open(path, "rb") as file:
        file.readinto(buffer)
    return buffer


def save(out_dir, name, data):
    with open(os.path.join(out_dir, name), "wb") as file:
        file.write(data)


def main(argv):
    out_dir, torchscript, xml, weights, image = argv[1:6]
    print("raw layer:", "wasm" if wasi_nn.raw_layer == "_wasi_nn" else "native")

    # image helpers: every preset and the seed's interleaved layout
    for name, options in [("openvino", {"preset": "openvino"}),
                          ("openvino_nhwc", {"preset": "openvino", "layout": "NHWC"}),
                          ("pytorch", {"preset": "pytorch"}), ("tflite", {"preset": "tflite"})]:
        tensor = wasi_nn.image_to_tensor(image, 32, 32, **options)
        save(out_dir, f"image_{name}.bin", tensor)
        print("image", name, len(tensor))

    # low level, like the Rust crate
    data = wasi_nn.image_to_tensor(image, 32, 32, preset="pytorch")
    graph = wasi_nn.load([read_writable(torchscript)], wasi_nn.GRAPH_ENCODING_PYTORCH,
                         wasi_nn.EXECUTION_TARGET_CPU)
    ctx = wasi_nn.init_execution_context(graph)
    wasi_nn.set_input(ctx, 0, wasi_nn.Tensor([1, 3, 32, 32], wasi_nn.TENSOR_TYPE_F32, data))
    wasi_nn.compute(ctx)
    needed = 0
    try:
        wasi_nn.get_output(ctx, 0, bytearray(8))
    except WasiNnError as error:
        print("small buffer:", error.name, int(error.errno), error.needed)
        needed = error.needed
    out = bytearray(needed)
    written = wasi_nn.get_output(ctx, 0, out)
    save(out_dir, "lowlevel_pytorch.bin", out)
    print("low level written:", written)
    wasi_nn.finalize_execution_context(ctx)
    wasi_nn.unload(graph)

    # Pythonic, OpenVINO
    builder = GraphBuilder(GraphEncoding.OPENVINO, ExecutionTarget.CPU)
    with builder.build_from_bytes([read_writable(xml), read_writable(weights)]) as graph:
        with graph.init_execution_context() as context:
            context.set_input(0, TensorType.F32, [1, 3, 32, 32], data)
            for _ in range(3):
                context.compute()
                output = context.get_output(0)
            scores = context.get_output_array(0)
            save(out_dir, "pythonic_openvino.bin", output)
            print("pythonic bytes:", len(output), "floats:", len(scores),
                  "view:", context.get_output_view(0).nbytes)
            top = wasi_nn.top_k(scores, 3)
            print(wasi_nn.format_results(top, [f"class{i}" for i in range(len(scores))]))

    # errors become WasiNnError with the right errno
    checks = [
        ("garbage model", lambda: GraphBuilder(GraphEncoding.PYTORCH).build_from_bytes([b"junk"])),
        ("unknown context", lambda: wasi_nn.compute(4242)),
        ("unknown graph", lambda: wasi_nn.init_execution_context(4242)),
        ("unknown name", lambda: wasi_nn.load_by_name("nobody")),
        ("unknown encoding", lambda: wasi_nn.load([b"x"], 42, 0)),
    ]
    for label, call in checks:
        try:
            call()
            print(label, "-> no error")
        except WasiNnError as error:
            print(label, "->", error.name, int(error.errno), isinstance(error.errno, Errno))
    print("labels:", wasi_nn.imagenet_labels(1000)[954], len(wasi_nn.imagenet_labels(1001)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

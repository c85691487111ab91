"""Exercises the SDK on the component target: every promise, and each error path.

Prints one JSON object per check (`{"check": ..., ...}`); test_component.py asserts on them.
Usage: main.py MODEL.xml MODEL.bin IMAGE [raise|exit3|broken]
"""

import json
import sys

import wasi_nn
from wasi_nn import ExecutionTarget, GraphBuilder, GraphEncoding, TensorType, WasiNnError
from wasi_nn.image import image_to_tensor


def report(check: str, **values) -> None:
    print(json.dumps({"check": check, **values}), flush=True)


def failure(check: str, call) -> None:
    try:
        call()
    except WasiNnError as error:
        report(check, errno=int(error.errno), name=error.name, function=error.function,
               detail=error.detail, needed=error.needed)
    else:
        report(check, errno=0)


def lazily_imported() -> str:
    import textwrap  # only imported here, inside a function: must still be in the component

    return textwrap.dedent("  ok")


def main(argv: list[str]) -> int:
    xml_path, weights_path, image_path = argv[1:4]
    if argv[4:] == ["raise"]:
        raise RuntimeError("deliberate failure")
    if argv[4:] == ["exit3"]:
        sys.exit(3)
    if argv[4:] == ["broken"]:
        import broken  # noqa: F401  (failed when the component was built)
    report("raw_layer", value=wasi_nn.raw_layer)
    report("lazy_import", value=lazily_imported())
    tensor = image_to_tensor(image_path, 224, 224, preset="openvino")
    with open(xml_path, "rb") as file:
        xml = file.read()
    with open(weights_path, "rb") as file:
        weights = file.read()

    builder = GraphBuilder(GraphEncoding.OPENVINO, ExecutionTarget.CPU)
    with builder.build_from_bytes([xml, weights]) as graph:
        with graph.init_execution_context() as ctx:
            ctx.set_input("input", TensorType.F32, [1, 3, 224, 224], tensor)  # by name
            ctx.compute()
            by_name = ctx.get_output_array(0)
            report("output_info", value=list(ctx.output_info(0)[:2]) + [ctx.output_info(0)[2].name])
            ctx.set_input(0, TensorType.F32, [1, 3, 224, 224], tensor)  # by declared index
            ctx.compute()
            by_index = ctx.get_output_array(0)
            report("index_equals_name", value=list(by_index) == list(by_name),
                   best=max(range(len(by_index)), key=by_index.__getitem__))
            report("output_by_name", value=len(ctx.get_output("0")))
            failure("too_small", lambda: wasi_nn.get_output(ctx.handle, 0, bytearray(16)))
            failure("missing_output", lambda: ctx.get_output("nope"))
            failure("index_past_inputs",
                    lambda: ctx.set_input(1, TensorType.F32, [1, 3, 224, 224], tensor))
            ctx.set_input("missing-name", TensorType.F32, [1, 3, 224, 224], tensor)
            failure("missing_input_name", ctx.compute)
            for call in ("compute_single", "fini_single"):
                failure(call, getattr(ctx, call))
            failure("get_output_single", lambda: ctx.get_output_single(0))
        failure("unload", graph.unload)  # WIT drops the resource: this works
    failure("bad_model", lambda: builder.build_from_bytes([b"<net>not a model", b""]))
    failure("auto_target", lambda: wasi_nn.load([xml, weights], wasi_nn.GRAPH_ENCODING_OPENVINO,
                                                wasi_nn.EXECUTION_TARGET_AUTO))
    failure("openvino_tpu", lambda: wasi_nn.load([xml, weights], wasi_nn.GRAPH_ENCODING_OPENVINO,
                                                 wasi_nn.EXECUTION_TARGET_TPU))
    failure("wild_target", lambda: wasi_nn.load([xml, weights], 0, 77))
    failure("name_not_utf8", lambda: wasi_nn.load_by_name(b"\xff\xfe"))
    failure("pytorch_backend", lambda: wasi_nn.load([b"x"], wasi_nn.GRAPH_ENCODING_PYTORCH,
                                                    wasi_nn.EXECUTION_TARGET_CPU))
    failure("load_by_name", lambda: wasi_nn.load_by_name("no-such-model"))
    failure("load_by_name_with_config",
            lambda: wasi_nn.load_by_name_with_config("m", "{}"))
    failure("released_graph", graph.init_execution_context)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""End to end natively with a real classifier: the SDK's helpers find the banana."""

from __future__ import annotations

import pytest

import wasi_nn
from wasi_nn import ExecutionTarget, GraphBuilder, GraphEncoding, TensorType


@pytest.mark.fixtures
def test_quantized_mobilenet_finds_the_banana(raw, host, fixtures_dir):
    pytest.importorskip("ai_edge_litert")
    model = fixtures_dir / "models" / "mobilenet_v2_1.0_224_quant.tflite"
    tensor = wasi_nn.image_to_tensor(fixtures_dir / "images" / "banana.jpg", 224, 224,
                                     preset="tflite")
    assert len(tensor) == 224 * 224 * 3
    with GraphBuilder(GraphEncoding.TENSORFLOWLITE, ExecutionTarget.CPU).build_from_files(
            [model]) as graph, graph.init_execution_context() as ctx:
        ctx.set_input(0, TensorType.U8, [1, 224, 224, 3], tensor)
        ctx.compute()
        scores = ctx.get_output_array(0, "B")  # u8 scores, 1001 classes
        assert len(scores) == 1001
    assert (host.live_graphs, host.live_contexts) == (0, 0)
    best = wasi_nn.top_k(scores, 5, skip=1)
    labels = wasi_nn.imagenet_labels(1000)
    assert labels[best[0][0]] == "banana"
    line = wasi_nn.format_results(best, labels).splitlines()[0]
    assert line.startswith("   1.) [954](") and line.endswith(")banana")

"""Runs an ONNX Relu over N floats; prints the host's reason when compute fails."""
import sys
from array import array

from wasi_nn import ExecutionTarget, GraphBuilder, GraphEncoding, TensorType, WasiNnError

model, count = sys.argv[1], int(sys.argv[2])
with GraphBuilder(GraphEncoding.ONNX, ExecutionTarget.CPU).build_from_files([model]) as graph:
    with graph.init_execution_context() as ctx:
        ctx.set_input(0, TensorType.F32, [1, count], array("f", [-1.0, 2.0] * (count // 2)))
        try:
            ctx.compute()
        except WasiNnError as error:
            print(f"errno={error.name} detail={error.detail}")
            raise SystemExit(3)
        scores = ctx.get_output_array(0)            # 8000 bytes: the SDK's too_large probe
        print(len(scores), scores[0], scores[1])

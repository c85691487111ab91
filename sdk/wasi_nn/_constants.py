"""The integer constants of the `wasi_ephemeral_nn` ABI, spelled as in the Rust `wasi-nn` crate 0.6.

Every ABI call takes and returns plain 32-bit integers; these names let a Rust example such as
`wasi_nn::load(&[&xml, &weights], wasi_nn::GRAPH_ENCODING_OPENVINO, wasi_nn::EXECUTION_TARGET_CPU)`
translate line by line. The numbering is WasmEdge's (which WAMR differs from for encodings 5 and 6)
and the tensor types use the crate-0.6 numbering (WasmEdge >= 0.15); see ARCHITECTURE §2.
"""

# Graph encoding: the format of the model bytes handed to `load`.
GRAPH_ENCODING_OPENVINO = 0
GRAPH_ENCODING_ONNX = 1
GRAPH_ENCODING_TENSORFLOW = 2
GRAPH_ENCODING_PYTORCH = 3
GRAPH_ENCODING_TENSORFLOWLITE = 4
GRAPH_ENCODING_AUTODETECT = 5
GRAPH_ENCODING_GGML = 6

# Execution target: the device the host should run the graph on.
EXECUTION_TARGET_CPU = 0
EXECUTION_TARGET_GPU = 1
EXECUTION_TARGET_TPU = 2
EXECUTION_TARGET_AUTO = 3

# Tensor type: the element type of a tensor's bytes (crate 0.6 numbering).
TENSOR_TYPE_F16 = 0
TENSOR_TYPE_F32 = 1
TENSOR_TYPE_F64 = 2
TENSOR_TYPE_U8 = 3
TENSOR_TYPE_I32 = 4
TENSOR_TYPE_I64 = 5

# Errno: what every ABI function returns (0 = success); WasmEdge adds the 100+ codes.
ERRNO_SUCCESS = 0
ERRNO_INVALID_ARGUMENT = 1
ERRNO_INVALID_ENCODING = 2
ERRNO_MISSING_MEMORY = 3
ERRNO_BUSY = 4
ERRNO_RUNTIME_ERROR = 5
ERRNO_UNSUPPORTED_OPERATION = 6
ERRNO_TOO_LARGE = 7
ERRNO_NOT_FOUND = 8
ERRNO_END_OF_SEQUENCE = 100
ERRNO_CONTEXT_FULL = 101
ERRNO_PROMPT_TOO_LONG = 102
ERRNO_MODEL_NOT_FOUND = 103

# Size in bytes of one element of each tensor type (used to size output arrays).
TENSOR_TYPE_SIZES = {
    TENSOR_TYPE_F16: 2,
    TENSOR_TYPE_F32: 4,
    TENSOR_TYPE_F64: 8,
    TENSOR_TYPE_U8: 1,
    TENSOR_TYPE_I32: 4,
    TENSOR_TYPE_I64: 8,
}

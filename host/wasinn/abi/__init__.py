"""ABI glue between wasm guests and the host core. One module per ABI (like Wasmtime's
wasmtime-wasi-nn): today `wasi_ephemeral_nn` (core modules, WasmEdge-compatible)."""

from .ephemeral_nn import EphemeralNn, MODULE_NAME

__all__ = ["EphemeralNn", "MODULE_NAME"]

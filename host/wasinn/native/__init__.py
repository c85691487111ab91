"""Native mode: run a guest package under plain CPython with the host's backends in-process.

`raw` is the stand-in for the in-wasm `_wasi_nn` module; `run_native` is `wasinn run --native`.
"""

from .runner import run_native

__all__ = ["run_native"]

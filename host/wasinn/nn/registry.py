"""Named models for `load_by_name`: `--nn-preload NAME:ENCODING:TARGET:PATH[,PATH…]`.

The syntax is WasmEdge's (e.g. `demo:PyTorch:CPU:model.pt`,
`mobilenet:OpenVINO:CPU:m.xml,m.bin`); encodings and targets are case-insensitive. Each
model's files are read once, on first use, into memory the graph owns — a copy, not a
mapping of the file, so truncating or rewriting the file later can neither crash the host
(SIGBUS) nor change the graph (in wasm mode the copy is a sealed memfd in the backend
worker, see `wasinn.worker`) — and the compiled graph is shared by
every `load_by_name` of that name (graphs are immutable; contexts are per handle), so a guest
that loads the same name twice — or many guests in one process — pay for one compile.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Iterable

from .backends import Graph, backend_for
from .errors import Errno, NnError
from .types import ExecutionTarget, GraphEncoding

ENCODINGS: dict[str, GraphEncoding] = {
    "openvino": GraphEncoding.OPENVINO,
    "onnx": GraphEncoding.ONNX,
    "tensorflow": GraphEncoding.TENSORFLOW,
    "pytorch": GraphEncoding.PYTORCH,
    "tensorflowlite": GraphEncoding.TENSORFLOWLITE,
    "autodetect": GraphEncoding.AUTODETECT,
    "ggml": GraphEncoding.GGML,
}
TARGETS: dict[str, ExecutionTarget] = {t.name.lower(): t for t in ExecutionTarget}


class PreloadError(ValueError):
    """A malformed `--nn-preload` value; the message says what is wrong and shows the syntax."""


SYNTAX = "NAME:ENCODING:TARGET:PATH[,PATH...] (e.g. demo:PyTorch:CPU:model.pt)"


class NamedModel:
    """One `--nn-preload` entry. `reads` counts how often its files were read (tests check 1)."""

    def __init__(self, name: str, encoding: GraphEncoding, target: ExecutionTarget,
                 paths: list[Path], reads: int = 0) -> None:
        self.name = name
        self.encoding = encoding
        self.target = target
        self.paths = paths
        self.reads = reads
        self._graph: Graph | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"NamedModel(name={self.name!r}, encoding={self.encoding!r}, "
                f"target={self.target!r}, paths={self.paths!r}, reads={self.reads!r})")

    def graph(self) -> Graph:
        """The compiled graph, loaded on first call and shared afterwards."""
        with self._lock:
            if self._graph is None:
                try:
                    parts = [_read_file(p, self.name) for p in self.paths]
                except NnError as error:
                    if self.encoding is GraphEncoding.GGML:   # WasmEdge's model_not_found
                        raise NnError(Errno.MODEL_NOT_FOUND, error.message) from None
                    raise
                self.reads += 1
                self._graph = backend_for(self.encoding).load(parts, self.target)
            return self._graph


def _read_file(path: Path, name: str) -> memoryview:
    """The file's bytes, copied once into an immutable `bytes` the graph keeps (backends share
    read-only memory instead of copying it again)."""
    try:
        with open(path, "rb") as handle:
            return memoryview(handle.read())
    except OSError as error:
        raise NnError(Errno.NOT_FOUND,
                      f"model {name!r}: cannot read {path}: {error.strerror or error}") from None


def parse_preload(spec: str, base: Path | None = None) -> NamedModel:
    """Parse one `--nn-preload` value; raises PreloadError with a precise message."""
    pieces = spec.split(":", 3)
    if len(pieces) != 4 or not all(pieces):
        raise PreloadError(f"bad --nn-preload {spec!r}: expected {SYNTAX}")
    name, encoding_text, target_text, path_text = pieces
    encoding = ENCODINGS.get(encoding_text.lower())
    if encoding is None:
        raise PreloadError(f"bad --nn-preload {spec!r}: unknown encoding {encoding_text!r} "
                           f"(one of OpenVINO, PyTorch, TensorflowLite, ONNX, Autodetect, GGML)")
    if encoding is GraphEncoding.TENSORFLOW:
        raise PreloadError(f"bad --nn-preload {spec!r}: encoding {encoding_text} is not supported "
                           "by wasinn's host (TensorFlow: convert to TFLite or ONNX)")
    target = TARGETS.get(target_text.lower())
    if target is None:
        raise PreloadError(f"bad --nn-preload {spec!r}: unknown target {target_text!r} "
                           "(one of CPU, GPU, TPU, AUTO)")
    # A GGUF is one file, and WasmEdge takes the rest of the value as its path, commas and all.
    pieces = [path_text] if encoding is GraphEncoding.GGML else path_text.split(",")
    paths = [Path(p) for p in pieces]
    if base is not None:
        paths = [p if p.is_absolute() else base / p for p in paths]
    for path in paths:
        if not path.is_file():
            raise PreloadError(f"bad --nn-preload {spec!r}: no such file {str(path)!r}")
    return NamedModel(name, encoding, target, paths)


class ModelRegistry:
    """Named models by name; filled from `--nn-preload` or `WASINN_NN_PRELOAD`."""

    def __init__(self, models: Iterable[NamedModel] = ()) -> None:
        self._models: dict[str, NamedModel] = {}
        for model in models:
            self.add(model)

    def add(self, model: NamedModel) -> None:
        self._models[model.name] = model

    def add_spec(self, spec: str) -> NamedModel:
        model = parse_preload(spec)
        self.add(model)
        return model

    @classmethod
    def from_specs(cls, specs: Iterable[str]) -> "ModelRegistry":
        registry = cls()
        for spec in specs:
            registry.add_spec(spec)
        return registry

    @classmethod
    def from_env(cls, value: str | None = None) -> "ModelRegistry":
        """From `WASINN_NN_PRELOAD` (several specs separated by `;`)."""
        if value is None:
            value = os.environ.get("WASINN_NN_PRELOAD", "")
        return cls.from_specs(s for s in value.split(";") if s.strip())

    def names(self) -> list[str]:
        return sorted(self._models)

    def get(self, name: str) -> NamedModel:
        model = self._models.get(name)
        if model is None:
            known = ", ".join(self.names()) or "none; pass --nn-preload NAME:ENCODING:TARGET:PATH"
            raise NnError(Errno.NOT_FOUND, f"no model named {name!r} (preloaded: {known})")
        return model

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __len__(self) -> int:
        return len(self._models)

"""`autodetect` encoding: pick the backend from the model bytes themselves.

Signatures: TFLite flatbuffers carry the file identifier "TFL3" at offset 4; TorchScript
archives are zip files ("PK\\x03\\x04"); OpenVINO IR is XML (two parts: xml + weights); an
ONNX ModelProto is a protobuf whose first field is usually ir_version (tag 0x08).
"""

from __future__ import annotations

from typing import Sequence

from ..errors import Errno, NnError
from ..types import ExecutionTarget, GraphEncoding
from .base import Backend, Graph


def detect(builders: Sequence[memoryview]) -> GraphEncoding:
    """The encoding the model parts look like; invalid_encoding when nothing matches."""
    if not builders:
        raise NnError(Errno.INVALID_ARGUMENT, "autodetect needs at least one model part")
    head = bytes(builders[0][:64])
    if head.lstrip().startswith(b"<"):
        return GraphEncoding.OPENVINO
    if len(builders) == 1:
        if head[4:8] == b"TFL3":
            return GraphEncoding.TENSORFLOWLITE
        if head.startswith(b"PK\x03\x04"):
            return GraphEncoding.PYTORCH
        if head[:1] == b"\x08":
            return GraphEncoding.ONNX
    raise NnError(Errno.INVALID_ENCODING,
                  f"autodetect: {len(builders)} model part(s) starting with {head[:8]!r} "
                  "match no known format (OpenVINO IR, TFLite, TorchScript, ONNX)")


class AutodetectBackend(Backend):
    name = "autodetect"

    def load(self, builders: Sequence[memoryview], target: ExecutionTarget) -> Graph:
        from . import backend_for

        return backend_for(detect(builders)).load(builders, target)


BACKEND = AutodetectBackend()

"""`Tensor`: the crate's `wasi_nn::Tensor { dimensions, type_, data }` for `set_input`.

A tensor in WASI-NN is a shape (`dimensions`, u32 each), an element type and the raw bytes in
row-major order. The SDK never copies `data`: whatever buffer the caller gives (bytes,
bytearray, memoryview, array.array) is handed to the raw layer, which hands its address to the
host. This is a plain `__slots__` class rather than a `dataclass` because importing
`dataclasses` (and `inspect` behind it) would cost start-up time inside wasm.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence


class Tensor:
    """An input tensor: `dimensions` (e.g. ``[1, 3, 224, 224]``), `type` (a `TensorType`
    or `TENSOR_TYPE_*` int) and `data` (any buffer holding the elements' bytes)."""

    __slots__ = ("dimensions", "type", "data")

    def __init__(self, dimensions: Sequence[int], type: int, data) -> None:  # noqa: A002
        self.dimensions = dimensions
        self.type = type
        self.data = data

    def __repr__(self) -> str:
        size = memoryview(self.data).nbytes if self.data is not None else 0
        return (f"Tensor(dimensions={list(self.dimensions)!r}, type={self.type!r}, "
                f"data=<{type(self.data).__name__} of {size} bytes>)")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return NotImplemented
        return (list(self.dimensions) == list(other.dimensions) and self.type == other.type
                and memoryview(self.data).cast("B") == memoryview(other.data).cast("B"))

    __hash__ = None  # mutable, like a dataclass with eq=True

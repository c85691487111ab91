"""ImageNet class names for the classifiers in the WasmEdge examples.

Two numberings exist: 1001 classes with "background" at index 0 (TensorFlow/TFLite MobileNet,
the OpenVINO MobileNet IR) and the usual 1000 classes (PyTorch/torchvision), which is the 1001
list without its first entry. The names live in a Python module (`_imagenet_labels`) because a
guest's modules are frozen into the wasm binary, where there are no data files to open.
"""

from __future__ import annotations

# Imported with this module, not at the first call: a guest that imports `wasi_nn.labels` at its
# top level gets the ~30 KB of strings in its snapshot instead of unmarshalling them on every
# run (~0.4 ms in wasm, measured per call in a GuestPool). Guests that never ask for labels
# never import this module (`wasi_nn` imports it lazily).
from ._imagenet_labels import LABELS_1001


def imagenet_labels(count: int = 1000) -> tuple[str, ...]:
    """The ImageNet labels: ``1000`` (index 954 = "banana") or ``1001`` (0 = "background")."""
    if count == 1001:
        return LABELS_1001
    if count == 1000:
        return LABELS_1001[1:]
    raise ValueError(f"ImageNet labels come in 1000 or 1001 entries, not {count}")

"""Small models and pictures made on the spot, so the end-to-end tests need no fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def picture(path: Path, width: int = 64, height: int = 48) -> Path:
    """A small colourful lossless picture (gradients, so every channel differs)."""
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)],
                      axis=-1).astype(np.uint8)
    Image.fromarray(pixels, "RGB").save(path)
    return path


class TinyClassifier(torch.nn.Module):
    """[1, 3, 224, 224] -> [1, classes]: pooling and a linear layer; a softmax if asked."""

    def __init__(self, classes: int, softmax: bool) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.fc = torch.nn.Linear(3 * 4 * 4, classes)
        self.softmax = softmax

    def forward(self, x):  # noqa: D102
        y = self.fc(torch.flatten(self.pool(x), 1) / 64.0)
        return torch.softmax(y * 40.0, dim=1) if self.softmax else y * 10.0

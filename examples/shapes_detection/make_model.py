"""Make the shapes detector offline: train a tiny YOLO-style network, export it to ONNX.

    python examples/shapes_detection/make_model.py [OUT_DIR]     # default: model/

The detector is real — trained, not hand-set — but small enough to train in seconds on a CPU,
from synthetic pictures of coloured rectangles on a noisy dark background (no downloads):

* input  [1, 3, 128, 128] f32 RGB in 0..1 (NCHW);
* output [1, 5, 8, 8]: per 16x16-pixel cell, an objectness logit and the box as YOLO encodes
  it — centre offset in the cell (sigmoid of tx, ty) and size (32 px * exp(tw), exp(th)).

It also writes `scene.bmp`, a held-out picture, and `scene.json`, its true boxes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SIZE, STRIDE, GRID, ANCHOR = 128, 16, 8, 32.0
SEED = 11


def scene(rng: np.random.Generator, count: int) -> tuple[np.ndarray, list[list[float]]]:
    """A noisy dark HxWx3 u8 picture with `count` bright rectangles; boxes as x0, y0, x1, y1."""
    image = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
    boxes: list[list[float]] = []
    while len(boxes) < count:
        w, h = rng.integers(14, 44, 2)
        x0, y0 = rng.integers(0, SIZE - w), rng.integers(0, SIZE - h)
        box = [float(x0), float(y0), float(x0 + w), float(y0 + h)]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        # one object per cell, and no overlaps, so every box has its own cell
        if any(int(cx // STRIDE) == int((b[0] + b[2]) / 2 // STRIDE)
               and int(cy // STRIDE) == int((b[1] + b[3]) / 2 // STRIDE) for b in boxes):
            continue
        if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
               for b in boxes):
            continue
        colour = rng.integers(120, 256, 3, dtype=np.uint8)
        image[y0:y0 + h, x0:x0 + w] = colour
        boxes.append(box)
    return image, boxes


def targets(boxes: list[list[float]]) -> np.ndarray:
    """[6, GRID, GRID]: mask, then tx-target, ty-target (0..1 in the cell), log sizes."""
    t = np.zeros((6, GRID, GRID), dtype=np.float32)
    for x0, y0, x1, y1 in boxes:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        gx, gy = int(cx // STRIDE), int(cy // STRIDE)
        t[:, gy, gx] = [1, 1, cx / STRIDE - gx, cy / STRIDE - gy,
                        np.log((x1 - x0) / ANCHOR), np.log((y1 - y0) / ANCHOR)]
    return t


def network():
    import torch

    def block(cin: int, cout: int):
        return [torch.nn.Conv2d(cin, cout, 3, stride=2, padding=1), torch.nn.ReLU()]

    return torch.nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 48), *block(48, 64),
                               torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(64, 5, 1))


def train(steps: int = 600, batch: int = 32):
    import torch

    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    model = network()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    bce = torch.nn.BCEWithLogitsLoss()
    for _ in range(steps):
        images, goals = [], []
        for _ in range(batch):
            image, boxes = scene(rng, int(rng.integers(1, 5)))
            images.append(image.transpose(2, 0, 1))
            goals.append(targets(boxes))
        x = torch.from_numpy(np.stack(images).astype(np.float32) / 255.0)
        t = torch.from_numpy(np.stack(goals))
        out = model(x)
        mask = t[:, 0] > 0
        loss = bce(out[:, 0], t[:, 1])
        if mask.any():
            pred = torch.stack([torch.sigmoid(out[:, 1]), torch.sigmoid(out[:, 2]),
                                out[:, 3], out[:, 4]], 1)
            loss = loss + 5 * ((pred - t[:, 2:]) ** 2).permute(0, 2, 3, 1)[mask].mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def main(argv: list[str]) -> int:
    import torch
    from PIL import Image

    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent / "model"
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # reproducible sums
    try:
        model = train()
    finally:
        torch.set_num_threads(threads)  # the caller's setting (tests run this in-process)
    torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), str(out / "shapes.onnx"),
                      input_names=["image"], output_names=["grid"], dynamo=False)
    image, boxes = scene(np.random.default_rng(2026), 4)
    Image.fromarray(image).save(out / "scene.bmp")
    (out / "scene.json").write_text(json.dumps(boxes))
    print(f"wrote {out / 'shapes.onnx'}, scene.bmp and scene.json")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

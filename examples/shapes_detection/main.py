"""Detect coloured rectangles with a tiny YOLO-style ONNX model; decode and NMS in numpy.

    wasinn run --dir .:. shapes.wasm shapes.onnx scene.bmp

The model (made offline by make_model.py) answers a [1, 5, 8, 8] grid: per 16-pixel cell an
objectness logit, the box centre's offset in the cell and its size. This program does the
post-processing a detector needs — sigmoid, grid decode, confidence threshold and greedy
non-maximum suppression — with numpy, and prints one line per box.
"""

import sys

import numpy as np

from wasi_nn import ExecutionTarget, GraphBuilder, GraphEncoding, WasiNnError
from wasi_nn.image import image_to_tensor

SIZE, STRIDE, GRID, ANCHOR = 128, 16, 8, 32.0
THRESHOLD, IOU = 0.5, 0.45


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[5, G, G] raw outputs -> (boxes [N, 4] as x0, y0, x1, y1 in pixels, scores [N])."""
    gy, gx = np.mgrid[0:GRID, 0:GRID].astype(np.float32)
    score = sigmoid(grid[0])
    cx = (gx + sigmoid(grid[1])) * STRIDE
    cy = (gy + sigmoid(grid[2])) * STRIDE
    w, h = ANCHOR * np.exp(grid[3]), ANCHOR * np.exp(grid[4])
    keep = score > THRESHOLD
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)[keep]
    return np.clip(boxes, 0, SIZE), score[keep]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = IOU) -> np.ndarray:
    """Indices of the boxes greedy non-maximum suppression keeps, best first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(best)
        x0 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= iou]
    return np.array(kept, dtype=np.int64)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: main.py MODEL.onnx IMAGE", file=sys.stderr)
        return 2
    try:
        with GraphBuilder(GraphEncoding.ONNX, ExecutionTarget.CPU).build_from_files(
                [argv[1]]) as graph, graph.init_execution_context() as context:
            tensor = image_to_tensor(argv[2], SIZE, SIZE, layout="NCHW", order="RGB",
                                     dtype="f32", scale=255.0, mean=(0.0,), std=(1.0,),
                                     as_array=True)
            context.set_input(0, tensor)
            context.compute()
            grid = context.get_output(0, shape=(5, GRID, GRID))
    except OSError as error:
        print(f"error: {error.filename}: {error.strerror}", file=sys.stderr)
        return 1
    except (WasiNnError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    boxes, scores = decode(grid)
    kept = nms(boxes, scores)
    print(f"{len(kept)} objects ({len(scores)} candidates above {THRESHOLD})")
    for i in kept:
        x0, y0, x1, y1 = (round(v, 1) for v in boxes[i].tolist())
        print(f"  box ({x0}, {y0}) - ({x1}, {y1})  score {scores[i]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

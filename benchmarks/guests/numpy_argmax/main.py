"""Time numpy post-processing steps; the same file runs natively and as a wasm guest.

Prints one line per step: name and median milliseconds over the rounds.
"""
import sys
import time

import numpy as np

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 15


def median_ms(step) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return 1000 * sorted(times)[len(times) // 2]


rng = np.random.default_rng(0)
road = rng.random((4, 512, 896), dtype=np.float32)   # road_segmentation's output, batch dropped
scores = rng.standard_normal(1001).astype(np.float32)


def softmax_top5():
    e = np.exp(scores - scores.max())
    p = e / e.sum()
    return np.argsort(p)[-5:]


print(f"argmax over 4x512x896 f32 (axis 0) {median_ms(lambda: road.argmax(axis=0)):.3f}")
print(f"softmax + top-5 over 1001 f32 {median_ms(softmax_top5):.3f}")

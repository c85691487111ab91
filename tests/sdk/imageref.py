"""Independent references for the image tests, written from the Rust `image` crate's algorithm.

`resize_exact(w, h, FilterType::Triangle)` in the crate: a vertical pass producing f32 rows
(no rounding), then a horizontal pass; per output coordinate ``c = (o + 0.5) * ratio``, the
taps are ``floor(c - support) .. ceil(c + support)`` clamped to the image, each weighted by
``1 - |(i - (c - 0.5)) / sratio|`` (0 outside), normalised by their f32 sum; the result is
clamped to 0..255 and rounded half away from zero. Everything is f32, in that order.
"""

from __future__ import annotations

import numpy as np

f32 = np.float32


def taps(src: int, dst: int) -> list[tuple[int, list[np.float32]]]:
    ratio = f32(src) / f32(dst)
    sratio = max(ratio, f32(1))
    support = sratio  # the triangle filter's support is 1.0
    result = []
    for o in range(dst):
        c = (f32(o) + f32(0.5)) * ratio
        left = int(np.clip(np.floor(c - support), 0, src - 1))
        right = int(np.clip(np.ceil(c + support), left + 1, src))
        c = c - f32(0.5)
        raw = [max(f32(0), f32(1) - abs((f32(i) - c) / sratio)) for i in range(left, right)]
        total = f32(0)
        for w in raw:
            total = f32(total + w)
        result.append((left, [f32(w / total) for w in raw]))
    return result


def round_half_away(value: np.float32) -> int:
    v = min(max(float(value), 0.0), 255.0)
    return int(np.floor(v + 0.5))


def resize_scalar(img: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """Pixel by pixel, in plain loops (small images only)."""
    h, w, ch = img.shape
    vertical = taps(h, new_h)
    horizontal = taps(w, new_w)
    tmp = np.zeros((new_h, w, ch), dtype=np.float32)
    for y, (top, ws) in enumerate(vertical):
        for x in range(w):
            for c in range(ch):
                acc = f32(0)
                for k, wk in enumerate(ws):
                    acc = f32(acc + f32(img[top + k, x, c]) * wk)
                tmp[y, x, c] = acc
    out = np.zeros((new_h, new_w, ch), dtype=np.uint8)
    for x, (left, ws) in enumerate(horizontal):
        for y in range(new_h):
            for c in range(ch):
                acc = f32(0)
                for k, wk in enumerate(ws):
                    acc = f32(acc + tmp[y, left + k, c] * wk)
                out[y, x, c] = round_half_away(acc)
    return out


def resize_vectorised(img: np.ndarray, new_w: int, new_h: int) -> np.ndarray:
    """The same arithmetic, vectorised across the other axis (for full-size pictures)."""
    h, w, ch = img.shape
    if (h, w) == (new_h, new_w):
        return img.copy()
    src = img.astype(np.float32)
    tmp = np.zeros((new_h, w, ch), dtype=np.float32)
    for y, (top, ws) in enumerate(taps(h, new_h)):
        for k, wk in enumerate(ws):
            tmp[y] += src[top + k] * wk
    out = np.zeros((new_h, new_w, ch), dtype=np.float32)
    for x, (left, ws) in enumerate(taps(w, new_w)):
        for k, wk in enumerate(ws):
            out[:, x] += tmp[:, left + k] * wk
    return np.floor(np.clip(out, 0, 255).astype(np.float64) + 0.5).astype(np.uint8)


def tensor(img: np.ndarray, *, layout: str, order: str, scale: float, mean, std) -> bytes:
    """Normalise per channel in f32 ((p / scale - mean) / std) and lay out as NCHW or NHWC."""
    if order == "BGR":
        img = img[:, :, ::-1]
    values = (img.astype(np.float32) / f32(scale) - np.array(mean, dtype=np.float32)) \
        / np.array(std, dtype=np.float32)
    if layout == "NCHW":
        values = values.transpose(2, 0, 1)
    return np.ascontiguousarray(values, dtype=np.float32).tobytes()


def seed_openvino_bytes(resized_rgb: np.ndarray) -> bytes:
    """What the openvino-mobilenet-image seed writes: `to_bgr8()` bytes, each as an f32, in order."""
    bgr = resized_rgb[:, :, ::-1].ravel()
    return b"".join(np.float32(v).tobytes() for v in bgr)

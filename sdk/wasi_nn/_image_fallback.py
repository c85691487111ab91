"""Native-only stand-in for the `_wasinn_image` C module: Pillow decodes, numpy resizes.

Used only under plain CPython when the optional `_wasinn_image` extension was not built
(Debian's `libstb-dev` missing). It offers the same three functions with the same contract
(docs/contracts.md). Resizing and tensor conversion follow the contract's arithmetic exactly,
so they give the same bytes as the C module; decoding is Pillow's (libjpeg), which may differ
from stb_image by a level or so on JPEGs - the one place native and wasm can disagree.
"""

from __future__ import annotations

import io

import numpy as np

_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def decode(data, channels: int = 0) -> tuple[bytes, int, int, int]:
    """Decode JPEG/PNG/BMP/GIF bytes to interleaved 8-bit pixels: (pixels, width, height, channels)."""
    from PIL import Image  # lazy: Pillow is only needed when this fallback is used

    if channels not in (0, 1, 2, 3, 4):
        raise ValueError(f"channels must be 0..4, not {channels}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if channels:
                mode = _MODES[channels]
            else:
                mode = image.mode if image.mode in _CHANNELS else (
                    "RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
            if image.mode != mode:
                image = image.convert(mode)
            return image.tobytes(), image.width, image.height, _CHANNELS[mode]
    except (OSError, SyntaxError) as error:  # Pillow's "cannot identify image file", truncation
        raise ValueError(f"cannot decode image: {error}") from None


def _triangle_weights(src: int, dst: int) -> list[tuple[int, np.ndarray]]:
    """Per output coordinate: first source index and normalised f32 weights (image crate rules)."""
    f32 = np.float32
    ratio = f32(src) / f32(dst)
    sratio = f32(1.0) if ratio < 1 else ratio
    support = f32(1.0) * sratio
    out = []
    for o in range(dst):
        centre = (f32(o) + f32(0.5)) * ratio
        left = min(max(int(np.floor(centre - support)), 0), src - 1)
        right = min(max(int(np.ceil(centre + support)), left + 1), src)
        centre = centre - f32(0.5)
        weights = []
        total = f32(0.0)
        for i in range(left, right):
            x = abs((f32(i) - centre) / sratio)
            w = f32(1.0) - x if x < 1 else f32(0.0)
            weights.append(w)
            total = f32(total + w)
        out.append((left, np.array(weights, dtype=np.float32) / total))
    return out


def resize(pixels, width: int, height: int, channels: int, new_width: int, new_height: int,
           filter: str = "triangle") -> bytes:  # noqa: A002 - the contract's name
    """Resize interleaved 8-bit pixels like the Rust image crate's `resize_exact`."""
    src = np.frombuffer(pixels, dtype=np.uint8)
    if src.size != width * height * channels:
        raise ValueError(f"pixels hold {src.size} bytes, not {width}x{height}x{channels}")
    if new_width <= 0 or new_height <= 0:
        raise ValueError(f"cannot resize to {new_width}x{new_height}")
    src = src.reshape(height, width, channels)
    if (new_width, new_height) == (width, height):
        return src.tobytes()
    if filter == "nearest":
        ys = [min(int((y + 0.5) * height / new_height), height - 1) for y in range(new_height)]
        xs = [min(int((x + 0.5) * width / new_width), width - 1) for x in range(new_width)]
        return src[ys][:, xs].tobytes()
    if filter != "triangle":
        raise ValueError(f"unknown filter {filter!r} (triangle or nearest)")
    values = src.astype(np.float32)
    # vertical pass into f32, no rounding; accumulate in the crate's order
    rows = np.empty((new_height, width, channels), dtype=np.float32)
    for y, (left, weights) in enumerate(_triangle_weights(height, new_height)):
        total = np.zeros((width, channels), dtype=np.float32)
        for i, w in enumerate(weights):
            total += values[left + i] * w
        rows[y] = total
    # horizontal pass, then round half away from zero and clamp
    out = np.empty((new_height, new_width, channels), dtype=np.float32)
    for x, (left, weights) in enumerate(_triangle_weights(width, new_width)):
        total = np.zeros((new_height, channels), dtype=np.float32)
        for i, w in enumerate(weights):
            total += rows[:, left + i] * w
        out[:, x] = total
    out = np.clip(out, 0, 255).astype(np.float64)  # f64: floor(x + 0.5) is exact there
    return np.floor(out + 0.5).astype(np.uint8).tobytes()


def to_tensor(pixels, width: int, height: int, channels: int, layout: str = "NCHW",
              order: str = "RGB", dtype: str = "f32", divisor: float = 1.0,
              mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> bytearray:
    """Interleaved pixels to tensor bytes: per channel ((p / divisor) - mean) / std in f32."""
    src = np.frombuffer(pixels, dtype=np.uint8)
    if src.size != width * height * channels:
        raise ValueError(f"pixels hold {src.size} bytes, not {width}x{height}x{channels}")
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be NCHW or NHWC, not {layout!r}")
    if order not in ("RGB", "BGR"):
        raise ValueError(f"order must be RGB or BGR, not {order!r}")
    if dtype not in ("f32", "u8"):
        raise ValueError(f"dtype must be f32 or u8, not {dtype!r}")
    img = src.reshape(height, width, channels)
    if order == "BGR" and channels >= 3:
        img = img[:, :, [2, 1, 0] + list(range(3, channels))]
    if dtype == "f32":
        f32 = np.float32
        m = np.array((list(mean) + [0.0] * channels)[:channels], dtype=f32)
        s = np.array((list(std) + [1.0] * channels)[:channels], dtype=f32)
        img = (img.astype(f32) / f32(divisor) - m) / s
    if layout == "NCHW":
        img = img.transpose(2, 0, 1)
    return bytearray(np.ascontiguousarray(img).tobytes())

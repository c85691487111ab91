"""`_wasinn_image`: decoding against Pillow, resize against an independent numpy version of the
Rust image crate's algorithm, and the wasm build against the native build (byte for byte)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_runtime_support import run_code

_wasinn_image = pytest.importorskip(
    "_wasinn_image", reason="native _wasinn_image not built (needs libstb-dev; "
                            "`python setup.py build_ext --inplace`)")

F32 = np.float32


# ------------------------------------------------------------------ reference implementations

def rust_windows(in_size: int, out_size: int, support: float = 1.0,
                 box: bool = False) -> list[tuple[int, np.ndarray]]:
    """(left, normalised f32 weights) per output, as image::imageops::sample computes them."""
    ratio = F32(in_size) / F32(out_size)
    sratio = ratio if ratio >= F32(1) else F32(1)
    src_support = F32(support) * sratio
    windows = []
    for o in range(out_size):
        centre = (F32(o) + F32(0.5)) * ratio
        left = min(max(int(np.floor(centre - src_support)), 0), in_size - 1)
        right = min(max(int(np.ceil(centre + src_support)), left + 1), in_size)
        centre = centre - F32(0.5)
        weights = []
        total = F32(0)
        for i in range(left, right):
            x = (F32(i) - centre) / sratio
            w = F32(1) if box else (F32(1) - abs(x) if abs(x) < F32(1) else F32(0))
            weights.append(w)
            total = F32(total + w)
        windows.append((left, np.array(weights, dtype=F32) / total))
    return windows


def rust_resize(pixels: np.ndarray, new_w: int, new_h: int, nearest: bool = False) -> np.ndarray:
    """Vertical pass into f32 (no rounding), horizontal pass, clamp, round half away from 0."""
    h, w, _ = pixels.shape
    support = 0.0 if nearest else 1.0
    src = pixels.astype(F32)
    tmp = np.zeros((new_h, w, pixels.shape[2]), dtype=F32)
    for y, (left, ws) in enumerate(rust_windows(h, new_h, support, nearest)):
        acc = np.zeros((w, pixels.shape[2]), dtype=F32)
        for k, wk in enumerate(ws):
            acc = acc + src[left + k] * wk
        tmp[y] = acc
    out = np.zeros((new_h, new_w, pixels.shape[2]), dtype=F32)
    for x, (left, ws) in enumerate(rust_windows(w, new_w, support, nearest)):
        acc = np.zeros((new_h, pixels.shape[2]), dtype=F32)
        for k, wk in enumerate(ws):
            acc = acc + tmp[:, left + k] * wk
        out[:, x] = acc
    clamped = np.clip(out, F32(0), F32(255)).astype(np.float64)
    return np.floor(clamped + 0.5).astype(np.uint8)  # exact for f32 values >= 0


def decode_np(data: bytes, channels: int = 0) -> np.ndarray:
    pixels, w, h, c = _wasinn_image.decode(data, channels)
    assert len(pixels) == w * h * c
    return np.frombuffer(pixels, np.uint8).reshape(h, w, c)


def pil_pixels(data: bytes, mode: str) -> np.ndarray:
    arr = np.asarray(Image.open(io.BytesIO(data)).convert(mode))
    return arr if arr.ndim == 3 else arr[:, :, None]


# ------------------------------------------------------------------ native decode

@pytest.mark.fixtures
@pytest.mark.parametrize("name, mode, tolerance", [
    ("banana.jpg", "RGB", 2),            # baseline JPEG: IDCT/upsampling rounding differs a bit
    ("bird.jpg", "RGB", 3),
    ("wasi-nn-0.jpg", "RGB", 3),
    ("cat.bmp", "RGB", 0),
    ("grace_hopper.bmp", "RGB", 0),
    ("road_segmentation_expected.png", "RGBA", 0),
])
def test_decode_matches_pillow(fixtures_dir: Path, name: str, mode: str, tolerance: int) -> None:
    data = (fixtures_dir / "images" / name).read_bytes()
    ours = decode_np(data)
    ref = pil_pixels(data, mode)
    assert ours.shape == ref.shape
    assert int(np.abs(ours.astype(int) - ref).max()) <= tolerance


def test_decode_progressive_jpeg_gif_and_channel_conversion() -> None:
    rng = np.random.default_rng(1)
    base = np.kron(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8))
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, "JPEG", quality=95, progressive=True)
    progressive = buf.getvalue()
    assert int(np.abs(decode_np(progressive).astype(int) - pil_pixels(progressive, "RGB")).max()) <= 3
    gray = decode_np(progressive, 1)
    assert gray.shape == (96, 128, 1)
    assert decode_np(progressive, 4)[:, :, 3].min() == 255

    gif = io.BytesIO()
    frames = [Image.fromarray(np.full((5, 7, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    first = decode_np(gif.getvalue(), 3)
    assert first.shape == (5, 7, 3) and np.all(first == first[0, 0])
    assert int(first[0, 0, 0]) == int(np.asarray(Image.open(gif).convert("RGB"))[0, 0, 0])


def test_decode_errors_are_value_errors_with_reasons() -> None:
    with pytest.raises(ValueError, match="cannot decode image: "):
        _wasinn_image.decode(b"definitely not an image")
    with pytest.raises(ValueError, match="channels"):
        _wasinn_image.decode(b"\xff\xd8", 5)
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "TIFF")
    with pytest.raises(ValueError, match="cannot decode image"):
        _wasinn_image.decode(buf.getvalue())


@pytest.mark.fixtures
def test_truncated_or_corrupted_files_never_crash(fixtures_dir: Path) -> None:
    """stb must refuse damaged input with ValueError (or decode what it can), never crash."""
    rng = np.random.default_rng(7)
    for name in ("banana.jpg", "cat.bmp", "road_segmentation_expected.png"):
        data = (fixtures_dir / "images" / name).read_bytes()
        variants = [data[:n] for n in (0, 1, 10, 100, 1000, len(data) // 2, len(data) - 1)]
        for _ in range(20):
            damaged = bytearray(data)
            for pos in rng.integers(0, len(data), 8):
                damaged[pos] = int(rng.integers(0, 256))
            variants.append(bytes(damaged))
        for blob in variants:
            try:
                pixels, w, h, c = _wasinn_image.decode(blob)
            except ValueError:
                continue
            assert len(pixels) == w * h * c


# ------------------------------------------------------------------ native resize / to_tensor

@pytest.mark.parametrize("shape, new", [
    ((427, 640, 3), (224, 224)),   # the seed's banana -> MobileNet input
    ((17, 23, 1), (40, 9)),        # up in one axis, down in the other
    ((5, 3, 4), (3, 5)),
    ((64, 48, 2), (64, 48)),       # same size
    ((1, 1, 3), (7, 2)),
    ((300, 7, 3), (1, 1)),
])
def test_triangle_resize_equals_the_reference_algorithm(shape, new) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(sum(shape) + sum(new))
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    h, w, c = shape
    out = _wasinn_image.resize(pixels.tobytes(), w, h, c, new[0], new[1])
    expected = rust_resize(pixels, new[0], new[1])
    assert np.array_equal(np.frombuffer(out, np.uint8).reshape(new[1], new[0], c), expected)


def test_nearest_resize_equals_the_reference_algorithm() -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (31, 45, 3), dtype=np.uint8)
    out = _wasinn_image.resize(pixels, 45, 31, 3, 20, 70, "nearest")
    expected = rust_resize(pixels, 20, 70, nearest=True)
    assert np.array_equal(np.frombuffer(out, np.uint8).reshape(70, 20, 3), expected)


def test_resize_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="needs 12"):
        _wasinn_image.resize(b"\x00" * 11, 2, 2, 3, 1, 1)
    with pytest.raises(ValueError, match="filter"):
        _wasinn_image.resize(b"\x00" * 12, 2, 2, 3, 1, 1, "lanczos")
    with pytest.raises(ValueError, match="new_width"):
        _wasinn_image.resize(b"\x00" * 12, 2, 2, 3, 0, 1)
    with pytest.raises(ValueError, match="channels"):
        _wasinn_image.resize(b"", 1, 1, 5, 1, 1)


@pytest.mark.parametrize("layout, order", [("NCHW", "RGB"), ("NCHW", "BGR"), ("NHWC", "RGB"),
                                           ("NHWC", "BGR")])
def test_to_tensor_is_float32_arithmetic_in_contract_order(layout: str, order: str) -> None:
    pixels = np.random.default_rng(5).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    got = _wasinn_image.to_tensor(pixels.tobytes(), 5, 6, 3, layout, order, "f32", 255.0, mean, std)
    src = pixels[:, :, ::-1] if order == "BGR" else pixels
    ref = (src.astype(F32) / F32(255.0) - np.array(mean, F32)) / np.array(std, F32)
    ref = ref.transpose(2, 0, 1) if layout == "NCHW" else ref
    assert isinstance(got, bytearray)
    assert np.frombuffer(got, F32).tobytes() == np.ascontiguousarray(ref, F32).tobytes()
    as_u8 = _wasinn_image.to_tensor(pixels.tobytes(), 5, 6, 3, layout=layout, order=order, dtype="u8")
    assert bytes(as_u8) == np.ascontiguousarray(
        src.transpose(2, 0, 1) if layout == "NCHW" else src).tobytes()


def test_to_tensor_defaults_and_errors() -> None:
    px = bytes(range(12))
    assert np.array_equal(np.frombuffer(_wasinn_image.to_tensor(px, 2, 2, 3), F32),
                          np.arange(12, dtype=F32).reshape(2, 2, 3).transpose(2, 0, 1).ravel())
    with pytest.raises(ValueError, match="layout"):
        _wasinn_image.to_tensor(px, 2, 2, 3, "CHW")
    with pytest.raises(ValueError, match="mean needs"):
        _wasinn_image.to_tensor(px, 2, 2, 3, mean=(1.0, 2.0))
    with pytest.raises(ValueError, match="BGR"):
        _wasinn_image.to_tensor(px[:4], 2, 2, 1, order="BGR")
    with pytest.raises(ValueError, match="dtype"):
        _wasinn_image.to_tensor(px, 2, 2, 3, dtype="f16")


# ------------------------------------------------------------------ wasm == native

WASM_IMAGE_GUEST = """
import _wasinn_image, json
report = {}
for name in NAMES:
    data = open("/img/" + name, "rb").read()
    pixels, w, h, c = _wasinn_image.decode(data)
    small = _wasinn_image.resize(pixels, w, h, c, 224, 224)
    near = _wasinn_image.resize(pixels, w, h, c, 97, 300, "nearest")
    tensor = _wasinn_image.to_tensor(small, 224, 224, c, "NCHW", "BGR" if c >= 3 else "RGB",
                                     "f32", 255.0, (0.485, 0.456, 0.406, 0.5), (0.229, 0.224, 0.225, 0.5))
    fused = _wasinn_image.decode_resize(data, c, 224, 224)[0]
    fused_near = _wasinn_image.decode_resize(data, c, 97, 300, "nearest")[0]
    same = _wasinn_image.decode_resize(data, c, w, h)[0]
    for kind, blob in (("pixels", pixels), ("small", small), ("near", near), ("tensor", tensor),
                       ("fused", fused), ("fused_near", fused_near), ("same", same)):
        open("/out/%s.%s" % (name, kind), "wb").write(blob)
    report[name] = [w, h, c]
print(json.dumps(report))
"""


@pytest.mark.runtime
@pytest.mark.fixtures
def test_wasm_decode_resize_to_tensor_equal_native(fixtures_dir: Path, tmp_path: Path) -> None:
    names = ["banana.jpg", "road_segmentation_expected.png", "cat.bmp"]
    result = run_code(f"NAMES = {names!r}\n" + WASM_IMAGE_GUEST,
                      dirs=[(str(fixtures_dir / "images"), "/img"), (str(tmp_path), "/out")])
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    for name in names:
        data = (fixtures_dir / "images" / name).read_bytes()
        pixels, w, h, c = _wasinn_image.decode(data)
        assert report[name] == [w, h, c]
        small = _wasinn_image.resize(pixels, w, h, c, 224, 224)
        near = _wasinn_image.resize(pixels, w, h, c, 97, 300, "nearest")
        tensor = _wasinn_image.to_tensor(small, 224, 224, c, "NCHW", "BGR" if c >= 3 else "RGB",
                                         "f32", 255.0, (0.485, 0.456, 0.406, 0.5),
                                         (0.229, 0.224, 0.225, 0.5))
        for kind, native in (("pixels", pixels), ("small", small), ("near", near),
                             ("tensor", tensor), ("fused", small), ("fused_near", near),
                             ("same", pixels)):
            assert (tmp_path / f"{name}.{kind}").read_bytes() == bytes(native), (name, kind)
    banana = decode_np((fixtures_dir / "images" / "banana.jpg").read_bytes())
    assert np.array_equal(
        np.frombuffer((tmp_path / "banana.jpg.small").read_bytes(), np.uint8).reshape(224, 224, 3),
        rust_resize(banana, 224, 224))


@pytest.mark.runtime
def test_wasm_decode_error_is_value_error() -> None:
    result = run_code("import _wasinn_image\ntry:\n    _wasinn_image.decode(b'junk')\n"
                      "except ValueError as e:\n    print(e)\n")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("cannot decode image: ")


@pytest.mark.runtime
def test_wasm_sizes_past_32_bits_are_memory_errors_not_overflows() -> None:
    """In wasm32 Py_ssize_t/size_t have 32 bits: a 1x1 -> 65536x65536 resize needs 4 GiB of
    output and a 512 MiB image as an f32 tensor needs 2 GiB.  Computed naively such sizes
    wrap to a small allocation and the guest writes past it (an out-of-bounds trap).  (A
    65536x1 -> 1x65536 resize, which once needed 16 GiB of f32 rows, now needs one row.)"""
    code = """\
import _wasinn_image as m
print(len(m.resize(bytes(65536), 65536, 1, 1, 1, 65536)))
for call in (lambda: m.resize(bytes(1), 1, 1, 1, 65536, 65536),
             lambda: m.to_tensor(bytearray(1 << 29), 1 << 15, 1 << 14, 1)):
    try:
        call()
    except MemoryError as e:
        print(e)
"""
    result = run_code(code)
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "65536",
        "the resized image needs 4294967296 bytes, more than this build can address",
        "the tensor needs 2147483648 bytes, more than this build can address",
    ]

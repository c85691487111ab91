"""image_to_tensor, decode_image and resize against independent references."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

import wasi_nn
from wasi_nn import image as wimage
from wasi_nn import _image_fallback

from . import imageref

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def synthetic(width: int, height: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def backends():
    """Both implementations: the C module (when importable) and the native fallback."""
    found = [pytest.param(_image_fallback, id="fallback")]
    try:
        import _wasinn_image
        found.insert(0, pytest.param(_wasinn_image, id="c"))
    except ImportError:
        pass
    return found


@pytest.mark.parametrize("module", backends())
@pytest.mark.parametrize("size,new", [((13, 9), (5, 7)), ((7, 5), (16, 11)), ((20, 20), (3, 3)),
                                      ((6, 4), (6, 9)), ((1, 1), (4, 2))])
def test_triangle_resize_is_exactly_the_image_crates(module, size, new):
    img = synthetic(*size, seed=size[0] * 31 + new[1])
    expected = imageref.resize_scalar(img, *new)
    got = module.resize(img.tobytes(), size[0], size[1], 3, new[0], new[1], "triangle")
    assert np.array_equal(np.frombuffer(got, np.uint8).reshape(new[1], new[0], 3), expected)


@pytest.mark.parametrize("module", backends())
@pytest.mark.parametrize("channels", [1, 2, 4])
def test_triangle_resize_of_other_channel_counts_is_exact(module, channels):
    """Grey, grey+alpha and RGBA take the resize's general path (RGB has its own loop)."""
    rng = np.random.default_rng(channels)
    img = rng.integers(0, 256, size=(11, 17, channels), dtype=np.uint8)
    expected = imageref.resize_scalar(img, 6, 5)
    got = module.resize(img.tobytes(), 17, 11, channels, 6, 5, "triangle")
    assert np.array_equal(np.frombuffer(got, np.uint8).reshape(5, 6, channels), expected)


@pytest.mark.parametrize("name", ["banana.jpg", "cat.bmp", "road_segmentation_expected.png",
                                  "dog.jpg"])
def test_decode_resize_is_decode_then_resize(fixtures_dir, name):
    """The C module's one-call path (what image_to_tensor uses) gives the two calls' bytes."""
    c_module = pytest.importorskip("_wasinn_image")
    data = (fixtures_dir / "images" / name).read_bytes()
    pixels, w, h, c = c_module.decode(data, 3)
    for size, filter_ in (((224, 224), "triangle"), ((97, 300), "nearest"), ((w, h), "triangle")):
        expected = c_module.resize(pixels, w, h, c, *size, filter_) if size != (w, h) else pixels
        assert c_module.decode_resize(data, 3, *size, filter_) == (expected, *size, 3)
    tensor = wimage.image_to_tensor(data, 224, 224, preset="openvino")
    assert tensor == c_module.to_tensor(c_module.resize(pixels, w, h, c, 224, 224), 224, 224, 3,
                                        "NCHW", "BGR", "f32", 1.0, (0, 0, 0), (1, 1, 1))


@pytest.mark.parametrize("args, message", [
    ((b"junk", 3, 4, 4), "cannot decode image"),
    ((b"junk", 0, 4, 4), "channels must be 1..4"),
    ((b"junk", 3, 0, 4), "new_width and new_height"),
    ((b"junk", 3, 4, 1 << 25), "new_width and new_height"),
    ((b"junk", 3, 4, 4, "cubic"), "filter must be"),
])
def test_decode_resize_refuses_bad_input(args, message):
    c_module = pytest.importorskip("_wasinn_image")
    with pytest.raises(ValueError, match=message):
        c_module.decode_resize(*args)


def test_active_backend_is_reported():
    backend = wimage.image_backend()
    assert backend.__name__ in ("_wasinn_image", "wasi_nn._image_fallback")


@pytest.mark.parametrize("preset", ["openvino", "pytorch", "tflite"])
def test_presets_on_a_lossless_picture_are_exact(preset):
    pixels = synthetic(50, 37, seed=5)
    tensor = wasi_nn.image_to_tensor(png_bytes(pixels), 24, 32, preset=preset)
    assert isinstance(tensor, bytearray)
    resized = imageref.resize_vectorised(pixels, 32, 24)
    if preset == "openvino":
        expected = imageref.tensor(resized, layout="NCHW", order="BGR", scale=1.0,
                                   mean=(0, 0, 0), std=(1, 1, 1))
    elif preset == "pytorch":
        expected = imageref.tensor(resized, layout="NCHW", order="RGB", scale=255.0,
                                   mean=MEAN, std=STD)
    else:
        expected = resized.tobytes()
    assert bytes(tensor) == expected


def test_openvino_nhwc_reproduces_the_seed_byte_for_byte():
    pixels = synthetic(40, 30, seed=9)
    tensor = wasi_nn.image_to_tensor(png_bytes(pixels), 16, 16, preset="openvino", layout="NHWC")
    assert bytes(tensor) == imageref.seed_openvino_bytes(imageref.resize_vectorised(pixels, 16, 16))


def test_pytorch_arithmetic_is_single_precision_in_the_seed_order():
    # every byte value through (p / 255 - mean) / std, checked against numpy float32
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    got = wasi_nn.image_to_tensor(wimage.Image(ramp.tobytes(), 16, 16, 3), 16, 16, preset="pytorch",
                                  layout="NHWC")
    p = np.arange(256, dtype=np.float32)
    for c in range(3):
        want = (p / np.float32(255.0) - np.float32(MEAN[c])) / np.float32(STD[c])
        have = np.frombuffer(got, np.float32).reshape(256, 3)[:, c]
        assert np.array_equal(have.view(np.uint32), want.view(np.uint32))


def test_options_override_presets_and_defaults():
    pixels = synthetic(8, 8, seed=3)
    source = png_bytes(pixels)
    plain = wasi_nn.image_to_tensor(source, 8, 8)  # RGB, f32 0..255, NCHW
    assert bytes(plain) == imageref.tensor(pixels, layout="NCHW", order="RGB", scale=1,
                                           mean=(0, 0, 0), std=(1, 1, 1))
    custom = wasi_nn.image_to_tensor(source, 8, 8, preset="pytorch", order="BGR", mean=(0.5,) * 3,
                                     std=(0.25,) * 3)
    assert bytes(custom) == imageref.tensor(pixels, layout="NCHW", order="BGR", scale=255,
                                            mean=(0.5,) * 3, std=(0.25,) * 3)
    u8 = wasi_nn.image_to_tensor(source, 8, 8, dtype="u8", order="BGR", layout="NCHW")
    assert bytes(u8) == np.ascontiguousarray(pixels[:, :, ::-1].transpose(2, 0, 1)).tobytes()


def test_decode_formats_and_channels(tmp_path):
    pixels = synthetic(9, 7, seed=11)
    for fmt in ("PNG", "BMP"):
        path = tmp_path / f"p.{fmt.lower()}"
        PILImage.fromarray(pixels).save(path, format=fmt)
        img = wasi_nn.decode_image(path)
        assert (img.width, img.height, img.channels) == (9, 7, 3)
        assert bytes(img.pixels) == pixels.tobytes()
    grey = pixels[:, :, 0]
    data = io.BytesIO()
    PILImage.fromarray(grey, "L").save(data, format="PNG")
    img = wasi_nn.decode_image(data.getvalue())  # grey file, three channels asked for
    assert np.array_equal(np.frombuffer(img.pixels, np.uint8).reshape(7, 9, 3),
                          np.repeat(grey[:, :, None], 3, axis=2))
    assert wasi_nn.decode_image(data.getvalue(), channels=1).channels == 1


def test_progressive_jpeg_within_decoder_rounding():
    pixels = synthetic(64, 48, seed=2)
    pixels = np.asarray(PILImage.fromarray(pixels).resize((64, 48)).filter(
        __import__("PIL.ImageFilter").ImageFilter.SMOOTH_MORE))
    data = io.BytesIO()
    PILImage.fromarray(pixels).save(data, format="JPEG", quality=95, progressive=True)
    ours = np.frombuffer(wasi_nn.decode_image(data.getvalue()).pixels, np.uint8).astype(int)
    pillow = np.asarray(PILImage.open(io.BytesIO(data.getvalue())).convert("RGB")).ravel().astype(int)
    assert np.abs(ours - pillow).max() <= 3


def test_bad_input_gives_precise_errors(tmp_path):
    with pytest.raises(ValueError):
        wasi_nn.image_to_tensor(b"definitely not an image", 4, 4)
    with pytest.raises(ValueError, match="unknown preset 'caffe'"):
        wasi_nn.image_to_tensor(png_bytes(synthetic(4, 4)), 4, 4, preset="caffe")
    with pytest.raises(ValueError, match="layout"):
        wasi_nn.image_to_tensor(png_bytes(synthetic(4, 4)), 4, 4, layout="CHW")
    with pytest.raises(ValueError, match="dtype"):
        wasi_nn.image_to_tensor(png_bytes(synthetic(4, 4)), 4, 4, dtype="f16")
    with pytest.raises(ValueError):
        wasi_nn.image_to_tensor(png_bytes(synthetic(4, 4)), 0, 4)
    with pytest.raises(FileNotFoundError):
        wasi_nn.image_to_tensor(tmp_path / "absent.jpg", 4, 4)


# -- the seed's real picture ---------------------------------------------------------------

@pytest.mark.fixtures
@pytest.mark.parametrize("preset", ["openvino", "pytorch"])
def test_banana_presets_against_pillow_and_numpy(fixtures_dir, preset):
    path = fixtures_dir / "images" / "banana.jpg"
    tensor = wasi_nn.image_to_tensor(path, 224, 224, preset=preset)
    assert len(tensor) == 3 * 224 * 224 * 4
    options = (dict(order="BGR", scale=1.0, mean=(0, 0, 0), std=(1, 1, 1)) if preset == "openvino"
               else dict(order="RGB", scale=255.0, mean=MEAN, std=STD))
    # exact: layout and normalisation, given the SDK's own decoded pixels
    ours = wasi_nn.decode_image(path)
    decoded = np.frombuffer(ours.pixels, np.uint8).reshape(ours.height, ours.width, 3)
    exact = imageref.tensor(imageref.resize_vectorised(decoded, 224, 224), layout="NCHW", **options)
    assert bytes(tensor) == exact
    # within decoder rounding: an entirely independent Pillow decode
    pillow = np.asarray(PILImage.open(path).convert("RGB"))
    assert pillow.shape == decoded.shape
    assert np.abs(pillow.astype(int) - decoded.astype(int)).max() <= 3
    reference = np.frombuffer(imageref.tensor(imageref.resize_vectorised(pillow, 224, 224),
                                              layout="NCHW", **options), np.float32)
    got = np.frombuffer(tensor, np.float32)
    step = 1.0 if preset == "openvino" else 1.0 / 255 / min(STD)
    assert np.abs(got - reference).max() <= 3 * step + 1e-6


@pytest.mark.fixtures
def test_bmp_fixture_decodes_like_pillow(fixtures_dir):
    path = fixtures_dir / "images" / "cat.bmp"
    ours = wasi_nn.decode_image(path)
    pillow = np.asarray(PILImage.open(path).convert("RGB"))
    assert (ours.height, ours.width) == pillow.shape[:2]
    assert bytes(ours.pixels) == pillow.tobytes()

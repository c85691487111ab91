"""Image helpers: turn a JPEG/PNG/BMP file into the input tensor a vision model expects.

Decoding and resizing run in C (`_wasinn_image`, stb_image plus a port of the Rust `image`
crate's Triangle resize): in pure Python inside wasm they would take seconds. Natively the same
C module is used when it was built; otherwise Pillow decodes and numpy resizes
(`_image_fallback`), with identical resize/normalisation arithmetic.

`image_to_tensor(path, 224, 224, preset="openvino")` reproduces the WasmEdge examples' input
tensors:

* ``"openvino"`` (openvino-mobilenet-image): decode, `resize_exact(w, h, Triangle)`, BGR, each
  byte as an f32 in 0..255, NCHW. The Rust seed actually writes the pixels *interleaved* (HWC,
  BGRBGR...) while declaring dims ``[1, 3, 224, 224]``; ``layout="NHWC"`` reproduces those
  bytes exactly. NCHW (planar) is the default because that is what the dims say.
* ``"pytorch"`` (pytorch-mobilenet-image): RGB, ``(p / 255 - mean[c]) / std[c]`` with the
  ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225) in f32 arithmetic, planar
  NCHW (the seed really is planar).
* ``"tflite"``: RGB bytes as u8, NHWC - what quantized TFLite classifiers take.
"""

from __future__ import annotations

from ._ndarray import as_ndarray

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from os import PathLike

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PRESETS: dict[str, dict] = {
    "openvino": {"layout": "NCHW", "order": "BGR", "dtype": "f32", "scale": 1.0,
                 "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)},
    "pytorch": {"layout": "NCHW", "order": "RGB", "dtype": "f32", "scale": 255.0,
                "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "tflite": {"layout": "NHWC", "order": "RGB", "dtype": "u8", "scale": 1.0,
               "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)},
}
"""Named sets of `image_to_tensor` options; explicit keyword arguments override them."""

_DEFAULTS = {"layout": "NCHW", "order": "RGB", "dtype": "f32", "scale": 1.0,
             "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}

_backend_module = None


def image_backend():
    """The module doing the pixel work: `_wasinn_image` (C) or the native Pillow fallback."""
    global _backend_module
    if _backend_module is None:
        try:
            import _wasinn_image as module
        except ImportError:
            from . import _image_fallback as module
        _backend_module = module
    return _backend_module


class Image:
    """Decoded 8-bit pixels, interleaved (HWC): `pixels`, `width`, `height`, `channels`."""

    __slots__ = ("pixels", "width", "height", "channels")

    def __init__(self, pixels, width: int, height: int, channels: int) -> None:
        self.pixels = pixels
        self.width = width
        self.height = height
        self.channels = channels

    def __iter__(self):
        return iter((self.pixels, self.width, self.height, self.channels))

    def __repr__(self) -> str:
        return f"Image({self.width}x{self.height}, channels={self.channels})"


def _read(source) -> object:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return source
    with open(source, "rb") as file:
        return file.read()


def decode_image(source: str | PathLike | bytes | bytearray | memoryview,
                 channels: int = 3) -> Image:
    """Decode a JPEG (baseline or progressive), PNG, BMP or GIF from a path or bytes.

    `channels` 3 gives RGB (what every preset uses), 1 grey, 4 RGBA, 0 the file's own.
    Raises ValueError naming the decoder's reason for a file that is not a readable image.
    """
    pixels, width, height, got = image_backend().decode(_read(source), channels)
    return Image(pixels, width, height, got)


def resize(image: Image, width: int, height: int, filter: str = "triangle") -> Image:  # noqa: A002
    """Resize to exactly `width` x `height`, like the Rust crate's `resize_exact(.., Triangle)`."""
    if (width, height) == (image.width, image.height):
        return image  # the crate returns the image unchanged too
    pixels = image_backend().resize(image.pixels, image.width, image.height, image.channels,
                                    width, height, filter)
    return Image(pixels, width, height, image.channels)


def _decode_resized(source, width: int, height: int, filter: str) -> Image:  # noqa: A002
    """`resize(decode_image(source, 3), width, height, filter)`, in one C call when the C
    module is there: the decoded picture never becomes a bytes object of its own (a copy of
    ~1 MB per photo, and in a fresh wasm instance as many page faults)."""
    fused = getattr(image_backend(), "decode_resize", None)
    if fused is None:                       # the native Pillow fallback
        return resize(decode_image(source, 3), width, height, filter)
    pixels, new_width, new_height, channels = fused(_read(source), 3, width, height, filter)
    return Image(pixels, new_width, new_height, channels)


def image_to_tensor(source, height: int, width: int, *, preset: str | None = None,
                    layout: str | None = None, order: str | None = None,
                    dtype: str | None = None, mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None, scale: float | None = None,
                    filter: str = "triangle", as_array: bool = False):  # noqa: A002
    """Decode, resize to `height` x `width` and convert an image into tensor bytes.

    Args:
        source: a path, the file's bytes, or an already decoded `Image`.
        preset: ``"openvino"``, ``"pytorch"`` or ``"tflite"`` (see the module docstring).
        layout: ``"NCHW"`` (planar, the default) or ``"NHWC"`` (interleaved).
        order: ``"RGB"`` or ``"BGR"``.
        dtype: ``"f32"`` or ``"u8"``.
        mean, std: per channel; an f32 element is ``(p / scale - mean[c]) / std[c]``,
            computed in single precision in that order (bit-identical to Rust's f32 maths).
        scale: what each 0..255 byte is divided by (255.0 maps to 0..1). A division, not a
            multiplication by 1/255, because that is what the seeds do and f32 results differ.

    Returns a bytearray ready for `set_input` (the SDK passes it on without copying), or with
    ``as_array=True`` an ndarray view of it shaped (1, 3, H, W) or (1, H, W, 3) (imports numpy).
    """
    options = dict(_DEFAULTS)
    if preset is not None:
        try:
            options.update(PRESETS[preset])
        except KeyError:
            raise ValueError(f"unknown preset {preset!r}; choose one of "
                             f"{', '.join(sorted(PRESETS))}") from None
    for name, value in (("layout", layout), ("order", order), ("dtype", dtype),
                        ("mean", mean), ("std", std), ("scale", scale)):
        if value is not None:
            options[name] = value
    if options["layout"] not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be 'NCHW' or 'NHWC', not {options['layout']!r}")
    if options["order"] not in ("RGB", "BGR"):
        raise ValueError(f"order must be 'RGB' or 'BGR', not {options['order']!r}")
    if options["dtype"] not in ("f32", "u8"):
        raise ValueError(f"dtype must be 'f32' or 'u8', not {options['dtype']!r}")
    if height <= 0 or width <= 0:
        raise ValueError(f"cannot make a {height}x{width} tensor")
    if isinstance(source, Image):
        image = resize(source, width, height, filter)
    else:
        image = _decode_resized(source, width, height, filter)
    tensor = image_backend().to_tensor(
        image.pixels, image.width, image.height, image.channels, options["layout"],
        options["order"], options["dtype"], float(options["scale"]),
        tuple(float(v) for v in options["mean"]), tuple(float(v) for v in options["std"]))
    if not as_array:
        return tensor
    shape = ((1, 3, height, width) if options["layout"] == "NCHW" else (1, height, width, 3))
    return as_ndarray(tensor, shape, "float32" if options["dtype"] == "f32" else "uint8")

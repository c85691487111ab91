"""Write 24-bit BMP pictures with nothing but `struct`.

Why BMP and not PNG: a PNG's pixel data must be zlib-deflated, and the guest runtime has no
zlib (docs: it is left out of the wasm CPython). A BMP is a 54-byte header followed by the raw
pixels, so it needs no compression at all, every image viewer and browser shows it, and the
runtime's own decoder (stb) reads it back. PPM would be even simpler but browsers do not show it.
"""

import struct

_FILE_HEADER = struct.Struct("<2sIHHI")        # "BM", file size, reserved x2, pixel offset
_INFO_HEADER = struct.Struct("<IiiHHIIiiII")   # BITMAPINFOHEADER (40 bytes)


def encode_bmp(width: int, height: int, bgr: bytes) -> bytes:
    """A top-down 24-bit BMP of `width` x `height` pixels given as B, G, R bytes, row by row."""
    if width <= 0 or height <= 0 or len(bgr) != width * height * 3:
        raise ValueError(f"BMP needs {width}x{height}x3 bytes, got {len(bgr)}")
    row = width * 3
    padding = (-row) % 4  # each row is padded to a multiple of 4 bytes
    pixel_bytes = (row + padding) * height
    offset = _FILE_HEADER.size + _INFO_HEADER.size
    header = _FILE_HEADER.pack(b"BM", offset + pixel_bytes, 0, 0, offset)
    # A negative height means rows are stored top to bottom, as the mask is computed.
    info = _INFO_HEADER.pack(_INFO_HEADER.size, width, -height, 1, 24, 0, pixel_bytes,
                             2835, 2835, 0, 0)
    if padding == 0:
        return header + info + bytes(bgr)
    pad = bytes(padding)
    rows = (bytes(bgr[y * row:(y + 1) * row]) + pad for y in range(height))
    return header + info + b"".join(rows)

"""numpy in a guest: the same script runs natively and in wasm; the outputs must be identical.

Two results are rounded before printing, because native numpy legitimately differs in the last
bit there: float32 `exp` uses SIMD kernels natively (the wasm build has none), and `matmul`
goes to OpenBLAS natively (the wasm build uses numpy's own loops, another summation order).
"""
import numpy as np

rng = np.random.default_rng(20261201)
x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)   # an NCHW batch
print("version", np.__version__)
print("integers", rng.integers(0, 1000, 8).tolist())
print("uniform", rng.random(4).tolist())

logits = x.reshape(2, -1)
shifted = logits - logits.max(axis=1, keepdims=True)
soft = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
print("softmax", soft.sum(axis=1).round(6).tolist(), soft[0, :5].round(7).tolist())
print("argmax axis=1", x.argmax(axis=1).tolist())
print("argsort top5", np.argsort(-soft[1], kind="stable")[:5].tolist())
m = rng.standard_normal((4, 4))
print("matmul", (m @ m.T).round(12).tolist())
print("norm", float(np.linalg.norm(m)), np.linalg.norm(m, axis=0).tolist())
print("median", float(np.median(x)), np.median(x, axis=(2, 3)).tolist())
nhwc = x.transpose(0, 2, 3, 1).astype(np.float64)
print("transpose", nhwc.shape, nhwc.flags["C_CONTIGUOUS"], nhwc[1, 2, 3].tolist())
print("astype u8", (np.clip(x, -1, 1) * 127 + 128).astype(np.uint8)[0, 0, 0].tolist())
mask = x > 0.5
print("mask", int(mask.sum()), x[mask][:6].tolist())
print("solve", np.linalg.solve(m + 4 * np.eye(4), np.arange(4.0)).tolist())
print("unique", np.unique(rng.integers(0, 5, 20)).tolist())
print("repr", repr(np.float32(1.5)), repr(np.arange(3)))

# The SDK's numpy side: image_to_tensor(as_array=True) on a 4x3 BMP made here with struct.
import struct

from wasi_nn.image import image_to_tensor

pixels = bytes(rng.integers(0, 256, 4 * 3 * 3, dtype=np.uint8))  # B, G, R rows, top-down
bmp = (struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
       + struct.pack("<IiiHHIIiiII", 40, 4, -3, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
       + pixels)
tensor = image_to_tensor(bmp, 2, 3, preset="pytorch", as_array=True)
print("image_to_tensor", type(tensor).__name__, tensor.dtype, tensor.shape,
      tensor.round(5).tolist())

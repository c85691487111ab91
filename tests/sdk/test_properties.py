"""Property tests: resize exactness over many sizes, top_k == sort_results prefix."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import wasi_nn
from wasi_nn import _image_fallback
from wasi_nn import image as wimage

from . import imageref

sizes = st.integers(min_value=1, max_value=12)


@settings(max_examples=60, deadline=None)
@given(w=sizes, h=sizes, nw=sizes, nh=sizes, channels=st.sampled_from([1, 3, 4]),
       seed=st.integers(0, 2**16))
def test_resize_matches_the_reference_for_any_size(w, h, nw, nh, channels, seed):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    got = wimage.resize(wimage.Image(img.tobytes(), w, h, channels), nw, nh)
    assert (got.width, got.height, got.channels) == (nw, nh, channels)
    want = img if (w, h) == (nw, nh) else imageref.resize_scalar(img, nw, nh)
    assert bytes(got.pixels) == want.tobytes()
    if (w, h) != (nw, nh):  # the native Pillow/numpy fallback must agree too
        assert _image_fallback.resize(img.tobytes(), w, h, channels, nw, nh) == want.tobytes()


@settings(max_examples=100, deadline=None)
@given(scores=st.lists(st.floats(allow_nan=True, width=32), max_size=50),
       k=st.integers(0, 10), skip=st.integers(0, 3))
def test_top_k_is_the_prefix_of_sort_results(scores, k, skip):
    full = wasi_nn.sort_results(scores, skip=skip)
    assert len(full) == max(len(scores) - skip, 0)
    top = wasi_nn.top_k(scores, k, skip=skip)
    assert [i for i, _ in top] == [i for i, _ in full[:k]]

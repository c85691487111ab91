"""sort_results / top_k / format_results, and the ImageNet labels."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

import wasi_nn
from wasi_nn import format_results, imagenet_labels, sort_results, top_k


def test_sort_results_from_floats_bytes_and_arrays():
    scores = [0.1, 0.7, 0.05, 0.15]
    expected = [(1, 0.7), (3, 0.15), (0, 0.1), (2, 0.05)]
    assert sort_results(scores) == expected
    as_f32 = array("f", scores)
    want32 = [(i, float(np.float32(s))) for i, s in expected]
    assert sort_results(as_f32) == want32
    assert sort_results(as_f32.tobytes()) == want32
    assert sort_results(bytearray(as_f32.tobytes())) == want32
    assert sort_results(memoryview(as_f32.tobytes())) == want32


def test_skip_renumbers_from_zero_like_the_openvino_seed():
    scores = [0.9, 0.1, 0.6, 0.3]  # index 0 = background, dropped
    assert sort_results(scores, skip=1) == [(1, 0.6), (2, 0.3), (0, 0.1)]
    assert top_k(scores, 2, skip=1) == [(1, 0.6), (2, 0.3)]


def test_ties_keep_index_order_and_nan_ranks_last():
    scores = [0.5, float("nan"), 0.5, 0.9, 0.5]
    ranked = sort_results(scores)
    assert [i for i, _ in ranked] == [3, 0, 2, 4, 1]
    assert [i for i, _ in top_k(scores, 4)] == [3, 0, 2, 4]


def test_top_k_agrees_with_sort_results():
    rng = np.random.default_rng(0)
    scores = array("f", rng.random(1001).astype(np.float32).tobytes())
    assert top_k(scores, 5) == sort_results(scores)[:5]
    assert top_k(scores.tobytes(), 5, skip=1) == sort_results(scores, skip=1)[:5]


def test_format_results_matches_the_seeds_lines():
    labels = imagenet_labels(1000)
    results = [(954, 0.97891235), (940, 0.0074), (951, 0.00144), (969, 0.00049), (942, 0.00046),
               (1, 0.0)]
    assert format_results(results, labels) == "\n".join([
        "   1.) [954](0.9789)banana",
        "   2.) [940](0.0074)spaghetti squash",
        "   3.) [951](0.0014)lemon",
        "   4.) [969](0.0005)eggnog",
        "   5.) [942](0.0005)butternut squash",
    ])
    assert format_results([(3, 0.5)]) == "   1.) [3](0.5000)"
    assert format_results(results, labels, k=1).count("\n") == 0


@pytest.mark.parametrize("value", [0.00015, 0.00025, 0.12345, 0.99995, 1e-9, 0.5])
def test_rust_style_4_decimals_of_the_f32_value(value):
    # Rust's {:.4} rounds the exact decimal value of the f32; Python's float of it is that value
    from decimal import ROUND_HALF_EVEN, Decimal

    exact = Decimal(float(np.float32(value)))
    want = exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
    assert format_results([(0, float(np.float32(value)))]) == f"   1.) [0]({want}){''}"


def test_integer_scores_print_as_integers_like_the_tflite_birds_seed():
    # The seed prints u8 scores with Rust's {:.4}, which ignores the precision for integers:
    # "   1.) [166](198)Aix galericulata".
    scores = array("B", bytes(965))
    scores[166], scores[158], scores[34] = 198, 2, 1
    labels = [f"bird {i}" for i in range(965)]
    assert format_results(sort_results(scores), labels, k=3) == "\n".join([
        "   1.) [166](198)bird 166",
        "   2.) [158](2)bird 158",
        "   3.) [34](1)bird 34",
    ])
    assert format_results([(0, np.uint8(198)), (1, np.int64(-3))]) == "   1.) [0](198)\n   2.) [1](-3)"
    assert format_results([(0, 198.0), (1, np.float32(0.5))]) == "   1.) [0](198.0000)\n   2.) [1](0.5000)"


def test_bad_buffers():
    with pytest.raises(ValueError, match="whole number"):
        sort_results(b"12345")


def test_imagenet_labels():
    l1001, l1000 = imagenet_labels(1001), imagenet_labels(1000)
    assert len(l1001) == 1001 and len(l1000) == 1000
    assert l1001[0] == "background" and l1001[1:] == l1000
    assert l1000[954] == "banana" and l1000[0] == "tench, Tinca tinca"
    assert imagenet_labels() == l1000
    with pytest.raises(ValueError):
        imagenet_labels(10)


@pytest.mark.fixtures
def test_committed_labels_match_the_fixture_file(fixtures_dir):
    from .make_imagenet_labels import render

    text = (fixtures_dir / "models" / "imagenet_labels_1001.txt").read_text(encoding="utf-8")
    assert list(imagenet_labels(1001)) == text.splitlines()
    from pathlib import Path

    module = Path(wasi_nn.__file__).parent / "_imagenet_labels.py"
    assert module.read_text(encoding="utf-8") == render(text.splitlines())

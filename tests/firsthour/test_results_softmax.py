"""The softmax helper for top_k (pure Python: the same code runs in the guest)."""

from __future__ import annotations

import math
from array import array

from hypothesis import given, strategies as st

from wasi_nn import softmax, top_k


def test_softmax_matches_the_definition_and_ranks_like_the_scores():
    scores = array("f", [1.0, 3.0, 2.0, -1.0])
    probabilities = softmax(scores)
    total = sum(math.exp(s) for s in scores)
    assert all(math.isclose(p, math.exp(s) / total, rel_tol=1e-12)
               for p, s in zip(probabilities, scores))
    assert [i for i, _ in top_k(probabilities, 4)] == [i for i, _ in top_k(scores, 4)]
    assert softmax(bytes(array("f", [0.0, 0.0]))) == [0.5, 0.5]
    assert softmax([]) == []


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=50))
def test_softmax_sums_to_one_even_for_huge_logits(scores):
    probabilities = softmax(scores)
    assert math.isclose(math.fsum(probabilities), 1.0, rel_tol=1e-9)
    assert all(0.0 <= p <= 1.0 for p in probabilities)

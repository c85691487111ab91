"""Result helpers for classifiers: rank scores, take the top k, print them like the seeds.

A classifier's output is one score per class, the score of class *i* at position *i*. The Rust
examples sort (index, score) pairs by descending score and print the first five as
``   1.) [954](0.9789)banana``. The OpenVINO seed first drops position 0 (MobileNet's
"background" class) and then numbers the rest from 0, so its indices line up with the
1000-entry ImageNet list: `sort_results(scores, skip=1)` + `imagenet_labels(1000)` does the same.
"""

from __future__ import annotations

import math

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence


def _scores(buffer_or_floats) -> Sequence[float]:
    """Floats from f32 bytes (bytes/bytearray/memoryview) or any sequence of numbers."""
    if isinstance(buffer_or_floats, (bytes, bytearray)):
        if len(buffer_or_floats) % 4:
            raise ValueError(f"{len(buffer_or_floats)} bytes are not a whole number of f32 scores")
        return memoryview(buffer_or_floats).cast("f")
    if isinstance(buffer_or_floats, memoryview) and buffer_or_floats.format in ("B", "b", "c"):
        if buffer_or_floats.nbytes % 4:
            raise ValueError(f"{buffer_or_floats.nbytes} bytes are not a whole number of f32 scores")
        return buffer_or_floats.cast("B").cast("f")
    return buffer_or_floats


def _key(pair: tuple[int, float]) -> float:
    score = pair[1]
    return -math.inf if score != score else score  # NaN ranks last (Rust would panic)


def sort_results(buffer_or_floats, skip: int = 0) -> list[tuple[int, float]]:
    """All (index, score) pairs, highest score first; ties keep index order (a stable sort).

    `skip` drops that many leading scores and numbers the remaining ones from 0, exactly like the
    seed's ``buffer.iter().skip(1).enumerate()``.
    """
    scores = _scores(buffer_or_floats)
    pairs = list(enumerate(scores[skip:] if skip else scores))
    pairs.sort(key=_key, reverse=True)
    return pairs


def top_k(buffer_or_floats, k: int = 5, skip: int = 0) -> list[tuple[int, float]]:
    """The `k` best (index, score) pairs; same order and tie rule as `sort_results`."""
    import heapq  # lazy: a guest that only sorts does not pay for it

    scores = _scores(buffer_or_floats)
    return heapq.nlargest(k, enumerate(scores[skip:] if skip else scores), key=_key)


def softmax(buffer_or_floats) -> list[float]:
    """Scores (logits) as probabilities that sum to 1: exp(s - max) / sum, safe for large
    scores. Use it before `top_k` when a model outputs logits, e.g.
    ``top_k(softmax(scores), 5)``; NaN scores give NaN probabilities."""
    scores = _scores(buffer_or_floats)
    if not len(scores):
        return []
    finite = [s for s in scores if s == s]
    peak = max(finite) if finite else 0.0
    exps = [math.exp(s - peak) if s == s else math.nan for s in scores]
    total = math.fsum(e for e in exps if e == e)
    return [e / total if total else math.nan for e in exps]


def format_results(results: Iterable[tuple[int, float]], labels: Sequence[str] | None = None,
                   k: int = 5) -> str:
    """The seed's report, one line per result: ``   1.) [954](0.9789)banana``.

    Float scores are printed with 4 decimals of their exact value (Rust's ``{:.4}``). Integer
    scores (a u8 TFLite output read into ``array("B")``) print as integers, ``[166](198)``,
    because Rust's ``{:.4}`` ignores the precision for integers — the TFLite birds seed prints
    its u8 scores that way. Without labels the line ends after the score.
    """
    lines = []
    for rank, (index, score) in enumerate(results, start=1):
        if rank > k:
            break
        label = labels[index] if labels is not None and 0 <= index < len(labels) else ""
        # __index__: int and numpy's integer types alike, never a float
        text = str(int(score)) if hasattr(score, "__index__") else f"{score:.4f}"
        lines.append(f"   {rank}.) [{index}]({text}){label}")
    return "\n".join(lines)

"""road_segmentation with a stopwatch: the example's own code, timed phase by phase.

`benchmarks/road_phases.py` copies examples/road_segmentation's main.py (as `road.py`) and
bmp.py next to this file, builds the folder and runs it in wasm and in native mode. The example
runs unchanged; only the names it looks up in its module (print, image_to_tensor,
argmax_classes, colour_mask, encode_bmp) are wrapped to note the time. The phases go to stderr
as one line: `PHASES name=ms ...`.
"""

import sys
import time

_STARTED = time.perf_counter()
import numpy  # noqa: E402,F401  (the example's top-level imports: the snapshot pre-imports
import wasi_nn  # noqa: E402,F401   them, as it does for the example itself)
import wasi_nn.image  # noqa: E402,F401

import road  # noqa: E402

_MARKS = [("imports", time.perf_counter())]
_SPANS = {}


def _print(*args, **kwargs):
    print(*args, **kwargs)
    if args:
        _MARKS.append((str(args[0]), time.perf_counter()))


def _timed(name, function):
    def call(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            _SPANS[name] = _SPANS.get(name, 0.0) + time.perf_counter() - began
    return call


def _between(start, end):
    """Seconds from the mark starting with `start` to the next mark starting with `end`."""
    for i, (text, began) in enumerate(_MARKS):
        if text.startswith(start):
            for later, at in _MARKS[i + 1:]:
                if later.startswith(end):
                    return at - began
    return float("nan")


def main():
    road.print = _print
    for name in ("image_to_tensor", "argmax_classes", "colour_mask", "encode_bmp"):
        setattr(road, name, _timed(name, getattr(road, name)))
    code = road.main(sys.argv)
    finished = time.perf_counter()
    phases = {
        "imports": _MARKS[0][1] - _STARTED,
        "load": _between("Load graph", "done"),
        "init": _between("Init execution", "done"),
        "decode": _SPANS.get("image_to_tensor", 0.0),
        "set_input": _between("Set input", "done") - _SPANS.get("image_to_tensor", 0.0),
        "compute": _between("Perform", "done"),
        "get_output": _between("Retrieve", "done"),
        "argmax": _SPANS.get("argmax_classes", 0.0),
        "mask+bmp": _SPANS.get("colour_mask", 0.0) + _SPANS.get("encode_bmp", 0.0),
    }
    phases["rest"] = finished - _STARTED - sum(phases.values())  # file write, bincount, prints
    phases["guest"] = finished - _STARTED
    print("PHASES " + " ".join(f"{k}={v * 1e3:.2f}" for k, v in phases.items()), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())

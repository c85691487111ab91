"""Benchmarks of the confined backend worker (issue 8), side by side in one run:

* one MobileNetV2 OpenVINO inference inside the guest (set_input + compute + get_output),
  backends in the worker (the default) vs `--in-process` vs native mode, the three guests
  interleaved step by step (timing.paired_steps); the guest ÷ native ratio with the worker is
  the figure that must stay ≤ 1.05;
* a 14 MB `load` crossing: the host copying 14 MB of model bytes into a sealed memfd and
  handing it to the worker (one round trip) — what the worker adds to a `load`, besides the
  backend's own compile, which is the same in both places.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

from timing import RunFailed, Stepper, paired_ratio, paired_steps

CROSSING_BYTES = 14 << 20
#: inferences per step and guest, and the sets of fresh processes the steps are spread over
BURST = 6
SETS = 4


def in_guest_worker(wasinn: list[str], measure_wasm: Path, measure_dir: Path, folder: Path,
                    args: list[str], steps: int, failures: list[str],
                    table_cls: Callable, ms: Callable, ratio: Callable):
    """Rows: per variant, one inference (the median of every burst's median) and its ratio to
    native mode taken step by step (timing.paired_steps: the three guests stay up and run a
    burst of BURST inferences each in turn, the first of each burst left out: it follows
    the other guests' work), and the load + init time.

    `args` are the measure guest's, with "{burst}" where its REPEAT goes."""
    repeat = f"stdin:{BURST}"
    guest_args = [repeat if arg == "{burst}" else arg for arg in args]
    steppers = {
        "wasm, worker": Stepper([*wasinn, "run", "--dir", ".:.", str(measure_wasm), *guest_args],
                                folder),
        "wasm, --in-process": Stepper([*wasinn, "run", "--in-process", "--dir", ".:.",
                                       str(measure_wasm), *guest_args], folder),
        "native mode": Stepper([*wasinn, "run", "--native", str(measure_dir), *guest_args],
                               folder),
    }
    try:
        answers = paired_steps(steppers, steps, sets=max(1, min(SETS, steps // 4)))
    except RunFailed as error:
        failures.append(f"worker benchmark: {error}")
        answers = {}
    per_step = {label: [statistics.median(step["infer_ms"][1:]) for step in answered]
                for label, answered in answers.items()}
    table = table_cls("Backend worker vs in-process: MobileNetV2 OpenVINO inside the guest "
                      f"({steps} steps of {BURST} inferences per variant, interleaved; ratios "
                      "step by step, interquartile range in brackets)",
                      ["variant", "one inference", "÷ native", "load + init (model read excluded)"])
    for label in steppers:
        if label not in per_step:
            table.rows.append([label, ms(None), ratio(None, None), ms(None)])
            continue
        middle, low, high = paired_ratio(per_step[label], per_step["native mode"])
        table.rows.append([label, ms(statistics.median(per_step[label])),
                           f"{middle:.3f} ({low:.3f}–{high:.3f})",
                           ms(statistics.median(step["load_ms"] for step in answers[label]))])
    return table


def load_crossing(repeat: int, table_cls: Callable, ms: Callable):
    """The transport cost of handing a 14 MB model to the worker (median of `repeat`).

    The crossing is what a `load` pays: the copy into a sealed memfd and the round trip that
    hands it over. Freeing those 14 MB is timed apart: a loaded graph keeps its memfd, so a
    real load never pays it; the graph's unload does (here the worker holds nothing, so the
    host's close frees it). For scale, the same copy inside one process, into memory the
    process reuses (malloc's heap: what a repeated `--in-process` load finds) and into fresh
    private memory (a first load): on this VM fresh pages are the expensive part of either.
    """
    import mmap
    import os

    from wasinn.worker import BackendWorker, transport

    payload = bytearray(CROSSING_BYTES)
    payload[::4096] = b"\x01" * len(payload[::4096])
    worker = BackendWorker()
    crossing, copying, freeing = [], [], []
    try:
        worker.call("ping", {})                       # start it outside the timing
        for _ in range(repeat + 2):
            start = time.perf_counter()
            fd, size = transport.immutable_copy("bench", memoryview(payload))
            copied = time.perf_counter()
            try:
                worker.call("ping", {"sizes": [size]}, [fd])
                handed = time.perf_counter()
            finally:
                os.close(fd)
            crossing.append(handed - start)
            copying.append(copied - start)
            freeing.append(time.perf_counter() - handed)
    finally:
        worker.close()
    import numpy as np

    array = np.frombuffer(payload, np.uint8)
    reused, fresh = [], []
    for _ in range(repeat + 2):
        start = time.perf_counter()
        owned = array.copy()      # what `--in-process` OpenVINO does with writable guest bytes
        reused.append(time.perf_counter() - start)
        del owned
        start = time.perf_counter()
        with mmap.mmap(-1, CROSSING_BYTES) as private:
            private[:] = payload
            fresh.append(time.perf_counter() - start)
    median = {name: ms(1e3 * statistics.median(samples[2:])) for name, samples in
              (("crossing", crossing), ("copying", copying), ("freeing", freeing),
               ("reused", reused), ("fresh", fresh))}
    table = table_cls("A 14 MB `load` crossing into the worker (median)", ["what", "time"])
    table.rows += [
        ["copy 14 MB guest bytes into a sealed memfd", median["copying"]],
        ["… and hand it to the worker (one round trip): the whole crossing", median["crossing"]],
        ["freeing the memfd (paid when the graph is unloaded, not by the load)",
         median["freeing"]],
        ["for scale, in one process: the copy `--in-process` OpenVINO makes (writable guest "
         "bytes are copied once there too), into reused heap memory", median["reused"]],
        ["… the same copy into fresh private memory (a first load)", median["fresh"]],
    ]
    return table

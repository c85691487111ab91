"""Benchmarks of the confined backend worker (issue 8), side by side in one run:

* one MobileNetV2 OpenVINO inference inside the guest (set_input + compute + get_output),
  backends in the worker (the default) vs `--in-process` vs native mode; the guest ÷ native
  ratio with the worker is the figure that must stay ≤ 1.05;
* a 14 MB `load` crossing: the host copying 14 MB of model bytes into a sealed memfd and
  handing it to the worker (one round trip) — what the worker adds to a `load`, besides the
  backend's own compile, which is the same in both places.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Callable

from timing import RunFailed, time_interleaved

CROSSING_BYTES = 14 << 20


def in_guest_worker(wasinn: list[str], measure_wasm: Path, measure_dir: Path, folder: Path,
                    args: list[str], rounds: int, failures: list[str],
                    table_cls: Callable, ms: Callable, ratio: Callable):
    """Rows: per variant, the guest's median one-inference and load times."""
    commands = {
        "wasm, worker": ([*wasinn, "run", "--dir", ".:.", str(measure_wasm), *args], folder),
        "wasm, --in-process": ([*wasinn, "run", "--in-process", "--dir", ".:.",
                                str(measure_wasm), *args], folder),
        "native mode": ([*wasinn, "run", "--native", str(measure_dir), *args], folder),
    }
    results: dict[str, list[dict]] = {label: [] for label in commands}
    for _ in range(rounds):
        timed = time_interleaved(commands, repeat=1, warmup=0)
        for label, value in timed.items():
            if isinstance(value, RunFailed):
                failures.append(f"worker benchmark {label}: {value}")
            else:
                results[label].append(json.loads(value.stdout.strip().splitlines()[-1]))

    def median(label: str, key: str) -> float | None:
        runs = results[label]
        return statistics.median(r[key] for r in runs) if runs else None

    native_infer = median("native mode", "infer_ms")
    table = table_cls("Backend worker vs in-process: MobileNetV2 OpenVINO inside the guest "
                      "(median of the guest's own medians)",
                      ["variant", "one inference", "÷ native", "load + init (model read excluded)"])
    for label in commands:
        infer = median(label, "infer_ms")
        table.rows.append([label, ms(infer), ratio(infer, native_infer), ms(median(label, "load_ms"))])
    return table


def load_crossing(repeat: int, table_cls: Callable, ms: Callable):
    """The transport cost of handing a 14 MB model to the worker (median of `repeat`)."""
    from wasinn.worker import BackendWorker, transport

    payload = bytearray(CROSSING_BYTES)
    payload[::4096] = b"\x01" * len(payload[::4096])
    worker = BackendWorker()
    samples, copy_samples = [], []
    try:
        worker.call("ping", {})                       # start it outside the timing
        for _ in range(repeat + 2):
            start = time.perf_counter()
            fd, size = transport.immutable_copy("bench", memoryview(payload))
            copied = time.perf_counter()
            try:
                worker.call("ping", {"sizes": [size]}, [fd])
            finally:
                import os

                os.close(fd)
            samples.append((time.perf_counter() - start) * 1e3)
            copy_samples.append((copied - start) * 1e3)
    finally:
        worker.close()
    samples, copy_samples = samples[2:], copy_samples[2:]
    import numpy as np

    array = np.frombuffer(payload, np.uint8)
    in_process = []
    for _ in range(repeat + 2):
        start = time.perf_counter()
        owned = array.copy()      # what `--in-process` OpenVINO does with writable guest bytes
        in_process.append((time.perf_counter() - start) * 1e3)
        del owned
    in_process = in_process[2:]
    table = table_cls("A 14 MB `load` crossing into the worker (median)",
                      ["what", "time"])
    table.rows.append(["copy 14 MB guest bytes into a sealed memfd", ms(statistics.median(copy_samples))])
    table.rows.append(["… and pass it to the worker (one round trip): the whole crossing",
                       ms(statistics.median(samples))])
    table.rows.append(["for scale: the copy `--in-process` makes of the same bytes (OpenVINO "
                       "keeps its weights, so writable guest memory is copied once there too)",
                       ms(statistics.median(in_process))])
    return table

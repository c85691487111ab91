"""Timing primitives for the benchmarks: medians of repeated subprocess runs.

Every figure is a median of several runs, so one slow run (a page-cache miss, another process
waking up) does not decide the result.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class RunFailed(Exception):
    """A benchmarked command exited non-zero; the message is its last stderr line."""


@dataclass
class Timed:
    """Median wall time of a command in ms, plus its stdout of the last run."""

    median_ms: float
    first_line_ms: float
    stdout: str


def _one_run(command: Sequence[str], cwd: Path | None) -> tuple[float, float, str]:
    """(total ms, ms to the first stdout line, stdout) of one run of `command`."""
    start = time.perf_counter()
    process = subprocess.Popen(list(command), cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    first = process.stdout.readline()
    first_ms = (time.perf_counter() - start) * 1e3
    rest, err = process.communicate()
    total_ms = (time.perf_counter() - start) * 1e3
    if process.returncode != 0:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        raise RunFailed(lines[-1] if lines else f"exit {process.returncode}")
    return total_ms, first_ms, first + rest


def time_command(command: Sequence[str], cwd: Path | None = None, repeat: int = 5,
                 warmup: int = 1) -> Timed:
    """Run `command` `warmup` times untimed (fills compile and page caches), then `repeat` timed."""
    for _ in range(warmup):
        _one_run(command, cwd)
    runs = [_one_run(command, cwd) for _ in range(repeat)]
    return Timed(statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                 runs[-1][2])


def time_call(call: Callable[[], object], repeat: int = 30, warmup: int = 3) -> float:
    """Median ms of an in-process call."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)

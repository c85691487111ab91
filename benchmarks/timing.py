"""Timing primitives for the benchmarks: medians of repeated subprocess runs, and steps of
long-lived processes run in turn (`paired_steps`) for ratios on a machine whose speed drifts.

Every figure is a median of several runs, so one slow run (a page-cache miss, another process
waking up) does not decide the result.
"""

from __future__ import annotations

import re
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


def speed_probe(repeat: int = 5) -> float:
    """Milliseconds a fixed pure-Python loop (2 M additions) takes, median of `repeat`.

    This 2-vCPU VM's speed is not constant: in session 5 the loop took 73-84 ms in one hour
    and 117-160 ms in the next, while MobileNetV2 went from 3.5 ms (session 4) to 7-11 ms. A
    report that prints the probe beside its figures says which machine they came from;
    ratios measured on a slowed machine are noisier, not comparable run to run.
    """
    def loop() -> float:
        start = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i
        return time.perf_counter() - start

    return statistics.median(loop() for _ in range(repeat)) * 1e3


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


def time_interleaved(commands: dict[str, tuple[Sequence[str], Path | None]], repeat: int = 5,
                     warmup: int = 1) -> dict[str, Timed | RunFailed]:
    """Time several commands in turn, round after round, so they share the machine's moods.

    On a shared machine a burst of other work slows whatever runs during it; alternating the
    variants spreads such bursts over all of them, so their ratio stays honest. A command that
    fails is reported as its `RunFailed` and dropped from later rounds.
    """
    samples: dict[str, list[tuple[float, float, str]]] = {label: [] for label in commands}
    failed: dict[str, RunFailed] = {}
    for round_ in range(warmup + repeat):
        for label, (command, cwd) in commands.items():
            if label in failed:
                continue
            try:
                run = _one_run(command, cwd)
            except RunFailed as error:
                failed[label] = error
                continue
            if round_ >= warmup:
                samples[label].append(run)
    results: dict[str, Timed | RunFailed] = dict(failed)
    for label, runs in samples.items():
        if label not in failed:
            results[label] = Timed(statistics.median(r[0] for r in runs),
                                   statistics.median(r[1] for r in runs), runs[-1][2])
    return results


def write_results_section(results: Path, heading: str, text: str) -> None:
    """Put `text`, which starts with the markdown line `heading`, in place of that heading's
    section of `results` (up to the next heading of the same or a higher level), or append it
    when there is none yet; a missing file starts as "# Benchmark results"."""
    level = len(heading) - len(heading.lstrip("#"))
    old = results.read_text() if results.is_file() else "# Benchmark results\n"
    section = re.compile(rf"^{re.escape(heading)}\n.*?(?=^#{{1,{level}}} |\Z)", re.S | re.M)
    body = text.rstrip("\n") + "\n"
    if section.search(old):
        new = section.sub(lambda _: body + "\n", old, count=1).rstrip("\n") + "\n"
    else:
        new = old.rstrip("\n") + "\n\n" + body
    results.write_text(new)


def write_marked_block(results: Path, name: str, text: str, *, at_top: bool = False) -> None:
    """Put `text` between the lines `<!-- NAME: begin -->` and `<!-- NAME: end -->` of
    `results`, in place of what they held; every line outside them is kept (the sessions'
    own notes live there). Without both markers the block is added: at the end, or with
    `at_top` after the file's opening paragraphs (its title and what precedes the first
    `## ` or `### ` heading). A missing file starts as "# Benchmark results"."""
    begin, end = f"<!-- {name}: begin -->", f"<!-- {name}: end -->"
    block = f"{begin}\n{text.strip(chr(10))}\n{end}\n"
    old = results.read_text() if results.is_file() else "# Benchmark results\n"
    start, stop = old.find(begin), old.find(end)
    if 0 <= start < stop:
        rest = old[stop + len(end):].lstrip("\n")
        new = old[:start] + block + ("\n" + rest if rest else "")
    elif at_top:
        first = re.search(r"^#{2,3} ", old, re.M)
        cut = first.start() if first else len(old)
        new = old[:cut].rstrip("\n") + "\n\n" + block + ("\n" + old[cut:] if first else "")
    else:
        new = old.rstrip("\n") + "\n\n" + block
    results.write_text(new)


@dataclass
class Stepper:
    """A long-lived benchmark process in stepped mode: every line it reads on stdin runs one
    step of its work, and it answers with one line of JSON (its own timings of that step)."""

    command: Sequence[str]
    cwd: Path | None = None
    env: dict[str, str] | None = None


def paired_steps(steppers: dict[str, Stepper], steps: int, sets: int = 1,
                 requests: Sequence[str] = ("",)) -> dict[str, list]:
    """Interleave the steppers' steps finely: per step, each process in turn (the order
    rotating, so none always follows the same one) runs one step. Returns each stepper's
    answers in step order; answer `i` of every stepper was measured within one round of
    steps (~0.1 s for MobileNetV2 bursts, ~0.3 s for the LLM guests' rounds).

    Step `i` sends every process the line `requests[i % len(requests)]`: by default an
    empty line (the whole step), or the name of one part of it, so that steps stay short
    when the whole would take seconds (a real-sized LLM's round: the parts of one round then
    ran seconds apart, and the machine drifted in between).

    Why: this VM's speed drifts by ±25 % within seconds (MobileNetV2 called straight from
    OpenVINO: 8.7-13 ms in successive seconds of one process), so fresh processes run one
    after the other compare different machines, and a 5 % figure drowns in that. Steps of a
    few to a hundred milliseconds, taken in turn, see the same machine; a ratio of two
    variants' answers to the same step (`paired_ratio`) is then nearly free of the drift.
    Process-to-process differences (where a process's buffers land in the caches) are
    averaged over `sets`: fresh processes for each set, the `steps` shared out among them.
    """
    import json
    import os
    import tempfile

    answers: dict[str, list] = {name: [] for name in steppers}
    names = list(steppers)
    for set_number in range(sets):
        per_set = steps // sets + (set_number < steps % sets)
        # stderr to files: a chatty library (llama.cpp's log) must never fill a pipe and stall
        errors = {name: tempfile.TemporaryFile("w+") for name in steppers}
        processes = {
            name: subprocess.Popen(list(s.command), cwd=s.cwd, text=True,
                                   env={**os.environ, **(s.env or {})}, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=errors[name])
            for name, s in steppers.items()}
        try:
            for step in range(per_set):
                shift = step % len(names)
                request = requests[len(answers[names[0]]) % len(requests)]
                for name in names[shift:] + names[:shift]:
                    process = processes[name]
                    assert process.stdin is not None and process.stdout is not None
                    try:
                        process.stdin.write(request + "\n")
                        process.stdin.flush()
                    except BrokenPipeError:
                        pass
                    line = process.stdout.readline()
                    if not line:
                        process.wait()
                        errors[name].seek(0)
                        lines = [text for text in errors[name].read().splitlines() if text.strip()]
                        raise RunFailed(f"{name}: " + (lines[-1] if lines else "no answer"))
                    answers[name].append(json.loads(line))
        finally:
            for process in processes.values():
                try:
                    process.stdin.close()
                except OSError:
                    pass
            for process in processes.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            for file in errors.values():
                file.close()
    return answers


def paired_ratio(values: Sequence[float], reference: Sequence[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile) of the step-by-step ratios values ÷ reference;
    with fewer than four steps, (median, smallest, largest)."""
    ratios = sorted(value / base for value, base in zip(values, reference))
    if len(ratios) < 4:
        middle = statistics.median(ratios)
        return middle, ratios[0], ratios[-1]
    low, middle, high = statistics.quantiles(ratios, n=4)
    return middle, low, high

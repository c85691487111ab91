"""benchmarks/worker_bench.py: the 14 MB crossing table is produced from a real worker."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_load_crossing_table_measures_a_real_crossing():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import run
        import worker_bench
    finally:
        sys.path.remove(str(BENCHMARKS))
    table = worker_bench.load_crossing(1, run.Table, run.ms)
    assert len(table.rows) == 5
    assert all(row[1].endswith(" ms") for row in table.rows)
    assert "14 MB" in table.title


def test_the_speed_probe_times_its_loop_and_the_report_names_it():
    """The machine line of benchmarks/run.py carries the speed probe (timing.speed_probe)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import run
        import timing
    finally:
        sys.path.remove(str(BENCHMARKS))
    one = timing.speed_probe(repeat=1)
    assert 1.0 < one < 60_000          # a 2 M-iteration Python loop: milliseconds, not 0
    line = run.machine()                 # one call: each runs the probe
    assert "; speed probe " in line and line.endswith(" ms (timing.speed_probe)")


def test_the_wakeups_benchmark_times_each_placement():
    """benchmarks/wakeups.py: a real fork and socket pair per placement; figures printed,
    never asserted beyond being times; a bad argument is one line and exit 2."""
    import os
    import re
    import subprocess

    script = BENCHMARKS / "wakeups.py"
    result = subprocess.run([sys.executable, str(script), "--work-us", "200", "--calls", "40"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = re.findall(r"^\| (free|one CPU|two CPUs) \| ([0-9.]+) µs \|$", result.stdout, re.M)
    expected = ["free", "one CPU", "two CPUs"] if len(os.sched_getaffinity(0)) >= 2 else ["free"]
    assert [placement for placement, _ in rows] == expected
    assert all(float(value) > 0 for _, value in rows)
    bad = subprocess.run([sys.executable, str(script), "--calls", "3"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "--calls >= 10" in bad.stderr
    for wild in ("inf", "nan", "-1"):
        bad = subprocess.run([sys.executable, str(script), "--work-us", wild], capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 2 and "--work-us must be 0..1000000" in bad.stderr, wild


STEPPER = """
import json, sys
step = 0
while line := sys.stdin.readline():
    step += 1
    print(json.dumps({"step": step, "value": %s * step, "request": line.strip()}), flush=True)
"""


def test_paired_steps_interleave_processes_and_pair_their_answers():
    """timing.paired_steps: one line per step to each long-lived process (empty, or the
    step's part in turn), fresh processes per set; answers in step order; paired_ratio takes
    the ratios step by step. A process that dies is a RunFailed naming it."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import timing
    finally:
        sys.path.remove(str(BENCHMARKS))
    steppers = {name: timing.Stepper([sys.executable, "-c", STEPPER % factor])
                for name, factor in (("one", 1), ("three", 3))}
    answers = timing.paired_steps(steppers, steps=6, sets=2)
    assert [a["step"] for a in answers["one"]] == [1, 2, 3, 1, 2, 3]    # two sets of three
    uneven = timing.paired_steps(steppers, steps=5, sets=2)             # every step is run
    assert [a["step"] for a in uneven["three"]] == [1, 2, 3, 1, 2]
    assert {a["request"] for a in uneven["three"]} == {""}               # a whole step
    # named parts, in turn across sets; every process gets the same one at the same step
    parts = timing.paired_steps(steppers, steps=5, sets=2, requests=("x", "y"))
    assert [a["request"] for a in parts["one"]] == ["x", "y", "x", "y", "x"]
    assert [a["request"] for a in parts["three"]] == ["x", "y", "x", "y", "x"]
    middle, low, high = timing.paired_ratio([a["value"] for a in answers["three"]],
                                            [a["value"] for a in answers["one"]])
    assert middle == low == high == 3.0
    dying = {"dies": timing.Stepper([sys.executable, "-c", "import sys; sys.exit('gone')"])}
    try:
        timing.paired_steps(dying, steps=1)
    except timing.RunFailed as error:
        assert str(error) == "dies: gone"
    else:
        raise AssertionError("a dead stepper went unnoticed")

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
    assert len(table.rows) == 3
    assert all(row[1].endswith(" ms") for row in table.rows)
    assert "14 MB" in table.title

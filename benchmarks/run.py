#!/usr/bin/env python3
"""Benchmarks: the examples as wasm guests vs. the same Python natively, as ratios.

    python3 benchmarks/run.py            # prints the tables (a few minutes on 2 cores)
    python3 benchmarks/run.py --write    # also saves them to benchmarks/RESULTS.md
    python3 benchmarks/run.py --quick    # fewer repeats, for a smoke test

What is compared, always side by side in one run:
* end to end: `wasinn run X.wasm ARGS` (compile cache warm) and `wasinn run X.cwasm ARGS`
  (ahead-of-time compiled) vs `wasinn run --native DIR ARGS` (the same guest file under
  CPython, same CLI, same backends): process start to exit;
* inside the guest (benchmarks/guests/measure): model read+load, decode+resize of banana.jpg,
  and one inference (set_input + compute + get_output), wasm vs native mode, and inference vs
  the library called directly with numpy (`direct.py`);
* start-up of a built guest to its first printed line: .wasm with the cache warm, .cwasm, and
  native mode; plus the host's own phases (load module, instantiate, run) from `--verbose`;
* the Python guests against the seed's MobileNet programs written in Rust (`rust_seed/`, built
  offline with Debian's Rust; see rust_reference.py), on the same host;
* the confined backend worker (the default) vs `--in-process` vs native for one MobileNetV2
  OpenVINO inference, and the cost of a 14 MB `load` crossing into it (worker_bench.py).

Needs the built runtime and ../shared/fixtures (the example models are prepared from them).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from timing import (RunFailed, speed_probe, time_call, time_command, time_interleaved,  # noqa: E402
                    write_marked_block)

REPO = HERE.parent
EXAMPLES = REPO / "examples"
GUESTS = HERE / "guests"
RESULTS = HERE / "RESULTS.md"


def wasinn() -> list[str]:
    """This interpreter's `wasinn` console script (not a shell shim, which would add start-up)."""
    script = Path(sys.executable).with_name("wasinn")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "wasinn"]


@dataclass
class Measure:
    """How benchmarks/guests/measure runs an example's model (see that guest's usage)."""

    encoding: str
    preset: str
    dims: list[int]
    tensor_type: str
    output_bytes: int
    image: str
    models: list[str]


@dataclass
class Example:
    """An example, its model folder and its arguments (as in its README)."""

    name: str
    args: list[str]
    measure: Measure | None = None

    @property
    def folder(self) -> Path:
        return EXAMPLES / self.name / "model"


EXAMPLE_RUNS = [
    Example("mobilenet_openvino", ["mobilenet.xml", "mobilenet.bin", "input.jpg"],
            Measure("OPENVINO", "openvino", [1, 3, 224, 224], "F32", 4 * 1001, "input.jpg",
                    ["mobilenet.xml", "mobilenet.bin"])),
    Example("mobilenet_pytorch", ["mobilenet.pt", "input.jpg"],
            Measure("PYTORCH", "pytorch", [1, 3, 224, 224], "F32", 4 * 1000, "input.jpg",
                    ["mobilenet.pt"])),
    Example("road_segmentation", ["road-segmentation-adas-0001.xml",
                                  "road-segmentation-adas-0001.bin", "road.jpg", "mask.bmp"],
            Measure("OPENVINO", "openvino", [1, 3, 512, 896], "F32", 4 * 4 * 512 * 896,
                    "road.jpg", ["road-segmentation-adas-0001.xml",
                                 "road-segmentation-adas-0001.bin"])),
    Example("birds_tflite", ["lite-model_aiy_vision_classifier_birds_V1_3.tflite", "bird.jpg"],
            Measure("TENSORFLOWLITE", "tflite", [1, 224, 224, 3], "U8", 965, "bird.jpg",
                    ["lite-model_aiy_vision_classifier_birds_V1_3.tflite"])),
]


@dataclass
class Table:
    """One table of the report: a title, column names, rows of cells."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join(" --- " for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def ms(value: float | None) -> str:
    return "—" if value is None else (f"{value:.1f} ms" if value >= 1 else f"{value:.3f} ms")


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def _prepare(fixtures: Path) -> None:
    spec = importlib.util.spec_from_file_location("prepare_models", EXAMPLES / "prepare_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.prepare(list(module.PREPARERS), fixtures)


def _build(package: Path, out: Path) -> Path:
    result = subprocess.run([*wasinn(), "build", str(package), "-o", str(out)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"benchmarks: wasinn build {package} failed: {result.stderr.strip()}")
    return out


def _try(label: str, action, failures: list[str]):
    """`action()`, or None with the failure noted when a run fails."""
    try:
        return action()
    except RunFailed as error:
        failures.append(f"{label}: {error}")
        return None


def _timed(results: dict, label: str, name: str, failures: list[str]):
    value = results[label]
    if isinstance(value, RunFailed):
        failures.append(f"{name} {label}: {value}")
        return None
    return value


def end_to_end(modules: dict[str, Path], repeat: int, failures: list[str]) -> Table:
    table = Table("End to end: process start to exit (median)",
                  ["example", "wasm guest (.wasm, cache warm)", "wasm guest (.cwasm)",
                   "native mode", "wasm ÷ native", ".cwasm ÷ native"])
    for example in EXAMPLE_RUNS:
        wasm_path = modules[example.name]
        cwasm_path = wasm_path.with_suffix(".cwasm")
        subprocess.run([*wasinn(), "compile", str(wasm_path), str(cwasm_path)], check=True)
        results = time_interleaved({
            "wasm": ([*wasinn(), "run", "--dir", ".:.", str(wasm_path), *example.args],
                     example.folder),
            "cwasm": ([*wasinn(), "run", "--dir", ".:.", str(cwasm_path), *example.args],
                      example.folder),
            "native": ([*wasinn(), "run", "--native", str(EXAMPLES / example.name),
                        *example.args], example.folder),
        }, repeat)
        w, c, n = (_timed(results, label, example.name, failures)
                   for label in ("wasm", "cwasm", "native"))
        w, c, n = (t.median_ms if t else None for t in (w, c, n))
        table.rows.append([example.name, ms(w), ms(c), ms(n), ratio(w, n), ratio(c, n)])
    return table


def versus_rust(modules: dict[str, Path], out: Path, repeat: int, failures: list[str]) -> Table:
    """The Python guests against the seed's programs written in Rust: same host, model, image."""
    import rust_reference

    table = Table("Python guest ÷ the seed's program in Rust (same host, model and image; median)",
                  ["example", "Rust .wasm", "Python .wasm", "Python ÷ Rust",
                   "Rust .cwasm", "Python .cwasm", "Python ÷ Rust (.cwasm)"])
    try:
        rust = rust_reference.build(REPO / "build" / "rust_seed")
    except rust_reference.RustUnavailable as error:
        failures.append(f"Rust reference not built: {error}")
        return table
    rust_cwasm = out / "rust-seed-reference.cwasm"
    subprocess.run([*wasinn(), "compile", str(rust), str(rust_cwasm)], check=True)
    for example in EXAMPLE_RUNS[:2]:  # the two MobileNet programs the seed has in Rust
        python = modules[example.name]
        variants = {"rust": rust, "python": python, "rust_c": rust_cwasm,
                    "python_c": python.with_suffix(".cwasm")}
        if not variants["python_c"].is_file():
            subprocess.run([*wasinn(), "compile", str(python), str(variants["python_c"])],
                           check=True)
        results = time_interleaved({label: ([*wasinn(), "run", "--dir", ".:.", str(module),
                                             *example.args], example.folder)
                                    for label, module in variants.items()}, repeat)
        times = {label: _timed(results, label, example.name, failures) for label in variants}
        r, p, rc, pc = (times[k].median_ms if times[k] else None
                        for k in ("rust", "python", "rust_c", "python_c"))
        table.rows.append([example.name, ms(r), ms(p), ratio(p, r), ms(rc), ms(pc),
                           ratio(pc, rc)])
    return table


def _measure(wasm_command: list[str], native_command: list[str], cwd: Path,
             failures: list[str], name: str, rounds: int) -> tuple[dict | None, dict | None]:
    """The measure guest's figures in wasm and natively: per key, the median over `rounds`."""
    results = {"wasm": [], "native": []}
    for _ in range(rounds):
        timed = time_interleaved({"wasm": (wasm_command, cwd), "native": (native_command, cwd)},
                                 repeat=1, warmup=0)
        for label in results:
            value = timed[label]
            if isinstance(value, RunFailed):
                failures.append(f"{name} measure {label}: {value}")
                results[label] = None
            elif results[label] is not None:
                results[label].append(json.loads(value.stdout.strip().splitlines()[-1]))
        if None in results.values():
            break

    def combine(runs: list[dict] | None) -> dict | None:
        if not runs:
            return None
        return {key: statistics.median(run[key] for run in runs) for key in runs[0]}

    return combine(results["wasm"]), combine(results["native"])


def in_guest(measure_wasm: Path, repeat: int, rounds: int, failures: list[str]) -> Table:
    import numpy as np
    from wasi_nn.image import image_to_tensor

    import direct

    table = Table("Inside the guest: the same SDK calls timed in wasm and natively (median)",
                  ["example", "step", "wasm guest", "native mode", "direct library",
                   "wasm ÷ native", "wasm ÷ direct"])
    for example in EXAMPLE_RUNS:
        spec = example.measure
        if spec is None:
            continue
        args = [spec.encoding, spec.preset, ",".join(map(str, spec.dims)), spec.tensor_type,
                str(spec.output_bytes), str(repeat), spec.image, *spec.models]
        wasm, native = _measure([*wasinn(), "run", "--dir", ".:.", str(measure_wasm), *args],
                                [*wasinn(), "run", "--native", str(GUESTS / "measure"), *args],
                                example.folder, failures, example.name, rounds)
        nhwc = spec.dims[3] in (1, 3)
        height, width = (spec.dims[1], spec.dims[2]) if nhwc else (spec.dims[2], spec.dims[3])
        picture = str(example.folder / spec.image)
        tensor = np.frombuffer(bytes(image_to_tensor(picture, height, width, preset=spec.preset)),
                               np.uint8 if spec.tensor_type == "U8" else np.float32)
        tensor = tensor.reshape(spec.dims).copy()
        model_path = example.folder / spec.models[0]
        load, infer = {"OPENVINO": (direct.openvino_load, direct.openvino_infer),
                       "PYTORCH": (direct.torch_load, direct.torch_infer),
                       "TENSORFLOWLITE": (direct.tflite_load, direct.tflite_infer)}[spec.encoding]
        direct_infer = time_call(infer(model_path, tensor), repeat)
        direct_load = time_call(lambda: load(model_path), 3, 1)
        direct_decode = time_call(lambda: image_to_tensor(picture, height, width,
                                                          preset=spec.preset), repeat)
        for keys, step, direct_value in (
                (("read_ms", "load_ms"), "read + load + init model (2nd load: backend imported)",
                 direct_load),
                (("first_load_ms",), "first load + init (pays the backend's import)", None),
                (("decode_ms",), f"decode + resize {spec.image} to a {height}x{width} tensor",
                 direct_decode),
                (("infer_ms",), "one inference (set_input + compute + get_output)",
                 direct_infer)):
            w = sum(wasm[k] for k in keys) if wasm else None
            n = sum(native[k] for k in keys) if native else None
            table.rows.append([example.name, step, ms(w), ms(n), ms(direct_value),
                               ratio(w, n), ratio(w, direct_value)])
    return table


_PHASE = re.compile(r"wasinn: (load module|instantiate|run) .*?([0-9.]+) ms")


def _phases(module: Path) -> dict[str, float]:
    result = subprocess.run([*wasinn(), "run", "--verbose", str(module)], capture_output=True,
                            text=True, check=False)
    return {m.group(1): float(m.group(2)) for m in _PHASE.finditer(result.stderr)}


def startup(hello_wasm: Path, hello_cwasm: Path, repeat: int, failures: list[str]) -> Table:
    table = Table("Start-up of a built guest to its first printed line (median)",
                  ["how", "process start → first line", "host phases: load module + "
                   "instantiate + run"])
    runs = [(".wasm, compile cache warm", [*wasinn(), "run", str(hello_wasm)], hello_wasm),
            (".cwasm (`wasinn compile`)", [*wasinn(), "run", str(hello_cwasm)], hello_cwasm),
            ("native mode (`--native`)", [*wasinn(), "run", "--native", str(GUESTS / "hello")],
             None),
            ("bare `python3 -c pass`, for scale", [sys.executable, "-c", "print()"], None)]
    results = time_interleaved({label: (command, None) for label, command, _ in runs},
                               repeat * 2)
    for label, command, module in runs:
        timed = _timed(results, label, "start-up", failures)
        host = "—"
        if module is not None:
            samples = [_phases(module) for _ in range(repeat)]
            if all(len(s) == 3 for s in samples):
                parts = [statistics.median(s[k] for s in samples)
                         for k in ("load module", "instantiate", "run")]
                host = " + ".join(f"{p:.1f}" for p in parts) + f" = {ms(sum(parts))}"
        table.rows.append([label, ms(timed.first_line_ms if timed else None), host])
    return table


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for name in ("wasmtime", "openvino", "torch", "ai_edge_litert"):
        try:
            from importlib.metadata import version
            versions.append(f"{name} {version(name.replace('_', '-'))}")
        except Exception:  # noqa: BLE001 - a missing package just is not listed
            pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; " + ", ".join(versions)
            + f"; speed probe {speed_probe():.0f} ms (timing.speed_probe)")


#: steps for the worker table (worker_bench.in_guest_worker): this VM's speed drifts within
#: seconds and OpenVINO's differs from process to process by up to ~8 %, more than what the
#: table compares; 120 interleaved steps in four sets of processes give ratios steady to ~1 %
WORKER_STEPS = 120


def worker_tables(measure_wasm: Path, repeat: int, rounds: int, failures: list[str]) -> list[Table]:
    """Issue 8: backends in the confined worker vs --in-process vs native (worker_bench.py)."""
    import worker_bench

    example = EXAMPLE_RUNS[0]           # MobileNetV2, OpenVINO
    spec = example.measure
    args = [spec.encoding, spec.preset, ",".join(map(str, spec.dims)), spec.tensor_type,
            str(spec.output_bytes), "{burst}", spec.image, *spec.models]
    return [worker_bench.in_guest_worker(wasinn(), measure_wasm, GUESTS / "measure",
                                         example.folder, args,
                                         4 if rounds == 1 else WORKER_STEPS, failures,
                                         Table, ms, ratio),
            worker_bench.load_crossing(max(repeat, 10), Table, ms)]


#: --only's names for the sections main() measures, in order
SECTIONS = {"e2e": "end to end", "rust": "Python vs Rust", "guest": "inside the guest",
            "startup": "start-up", "worker": "the backend worker"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"save the tables to {RESULTS}")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                        help="measure only these sections (" + ", ".join(
                            f"{key}: {name}" for key, name in SECTIONS.items())
                        + "); not with --write, which rewrites every table")
    parser.add_argument("--fixtures", type=Path, default=Path(os.environ.get(
        "WASINN_FIXTURES", REPO.parent / "shared" / "fixtures")))
    args = parser.parse_args(argv)
    if args.only and args.write:
        parser.error("--only measures part of the tables; --write would drop the others")
    repeat = 2 if args.quick else 5
    inner_repeat = 5 if args.quick else 30
    rounds = 1 if args.quick else 3

    if not (args.fixtures / "models").is_dir():
        print(f"benchmarks: no fixtures at {args.fixtures} (the example models are made from "
              f"them; set --fixtures or WASINN_FIXTURES)", file=sys.stderr)
        return 1
    print("preparing models and building guests ...", file=sys.stderr)
    _prepare(args.fixtures)
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="wasinn-bench-") as tmp:
        out = Path(tmp)
        modules = {e.name: _build(EXAMPLES / e.name, out / f"{e.name}.wasm") for e in EXAMPLE_RUNS}
        measure_wasm = _build(GUESTS / "measure", out / "measure.wasm")
        hello_wasm = _build(GUESTS / "hello", out / "hello.wasm")
        hello_cwasm = out / "hello.cwasm"
        subprocess.run([*wasinn(), "compile", str(hello_wasm), str(hello_cwasm)], check=True)

        tables = []
        for name, make in (("end to end", lambda: end_to_end(modules, repeat, failures)),
                           ("Python vs Rust", lambda: versus_rust(modules, out, repeat,
                                                                  failures)),
                           ("inside the guest", lambda: in_guest(measure_wasm, inner_repeat,
                                                                 rounds, failures)),
                           ("start-up", lambda: startup(hello_wasm, hello_cwasm, repeat,
                                                        failures)),
                           ("the backend worker", lambda: worker_tables(measure_wasm, inner_repeat,
                                                                        rounds, failures))):
            if args.only and name not in {SECTIONS[key] for key in args.only}:
                continue
            print(f"measuring {name} ...", file=sys.stderr)
            made = make()
            tables += made if isinstance(made, list) else [made]

    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    report = [f"Measured {when} on {machine()}.", ""]
    for table in tables:
        report += [table.render(), ""]
    if failures:
        report += ["Runs that failed (their rows show —):", ""]
        report += [f"- {failure}" for failure in failures] + [""]
    text = "\n".join(report)
    print(text)
    if args.write:
        # only this script's block is replaced: the other scripts' sections and the notes
        # written around the tables stay where they are
        write_marked_block(RESULTS, "run.py", text, at_top=True)
        print(f"saved to {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""numpy in the guest (issue 11): guest ÷ native numpy, road_segmentation end to end, sizes.

    python benchmarks/numpy_bench.py [--write] [--quick]

Needs the numpy runtime flavour (`python -m wasinn_toolchain.build_runtime --numpy`) and, for
the end-to-end row, the road model prepared by `examples/prepare_models.py road_segmentation`.
Native numpy should be the guest's version (2.4.6). `--write` replaces this benchmark's section
of RESULTS.md. `benchmarks/road_phases.py` breaks the road row into phases (and adds
`--in-process`). With PYTHONDONTWRITEBYTECODE set, run `python -m compileall host sdk
toolchain` first, or every run compiles the host's modules again (more of them in wasm mode).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import EXAMPLES, RESULTS, Table, machine, ms, ratio, wasinn  # noqa: E402
from timing import time_interleaved, write_results_section  # noqa: E402

GUEST = HERE / "guests" / "numpy_argmax"
ROAD_ARGS = ["road-segmentation-adas-0001.xml", "road-segmentation-adas-0001.bin", "road.jpg",
             "mask.bmp"]
SECTION = "## numpy in the guest (issue 11)"


def _build(src: Path, out: Path) -> Path:
    subprocess.run([*wasinn(), "build", str(src), "-o", str(out)], check=True,
                   capture_output=True)
    return out


def _steps(command: list[str]) -> dict[str, float]:
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(.*) ([\d.]+)$", out, re.M)}


def micro(work: Path, rounds: int) -> Table:
    wasm = _build(GUEST, work / "numpy_argmax.wasm")
    cwasm = wasm.with_suffix(".cwasm")
    subprocess.run([*wasinn(), "compile", str(wasm), str(cwasm)], check=True)
    guest = _steps([*wasinn(), "run", str(cwasm), str(rounds)])
    native = _steps([sys.executable, str(GUEST / "main.py"), str(rounds)])
    table = Table("numpy steps: guest ÷ native numpy (median of rounds, one run)",
                  ["step", "wasm guest", "native numpy", "guest ÷ native"])
    for step, value in guest.items():
        table.rows.append([step, ms(value), ms(native.get(step)), ratio(value, native.get(step))])
    return table


def road(work: Path, repeat: int) -> Table:
    table = Table("road_segmentation (numpy post-processing) end to end (median)",
                  ["example", "wasm guest (.cwasm)", "native mode", "wasm ÷ native"])
    folder = EXAMPLES / "road_segmentation" / "model"
    if not (folder / ROAD_ARGS[0]).is_file():
        table.rows.append(["road_segmentation", "model not prepared", "—", "—"])
        return table
    wasm = _build(EXAMPLES / "road_segmentation", work / "road.wasm")
    cwasm = wasm.with_suffix(".cwasm")
    subprocess.run([*wasinn(), "compile", str(wasm), str(cwasm)], check=True)
    results = time_interleaved({
        "wasm": ([*wasinn(), "run", "--dir", ".:.", str(cwasm), *ROAD_ARGS], folder),
        "native": ([*wasinn(), "run", "--native", str(EXAMPLES / "road_segmentation"),
                    *ROAD_ARGS], folder),
    }, repeat)
    w, n = (getattr(results[k], "median_ms", None) for k in ("wasm", "native"))
    table.rows.append(["road_segmentation", ms(w), ms(n), ratio(w, n)])
    return table


def sizes(work: Path) -> Table:
    plain, with_numpy = work / "hello", work / "hello_numpy"
    plain.mkdir()
    with_numpy.mkdir()
    (plain / "main.py").write_text("print('hello')\n")
    (with_numpy / "main.py").write_text("import numpy\nprint('hello', numpy.__version__)\n")
    table = Table("Module size: hello guest", ["guest", "runtime flavour", "module size"])
    for name, src in (("hello", plain), ("hello + import numpy", with_numpy)):
        out = _build(src, work / f"{src.name}.wasm")
        flavour = "numpy" if "numpy" in name else "plain"
        table.rows.append([name, flavour, f"{out.stat().st_size / 1e6:.1f} MB"])
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"save the tables to {RESULTS}")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tables = [micro(work, 5 if args.quick else 15), road(work, 2 if args.quick else 5),
                  sizes(work)]
    text = "\n\n".join([SECTION, f"Machine: {machine()}", *(t.render() for t in tables)])
    print(text)
    if args.write:
        write_results_section(RESULTS, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

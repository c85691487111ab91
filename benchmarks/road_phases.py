"""Where road_segmentation's time goes: wasm (backend worker / in-process) vs native mode.

    python benchmarks/road_phases.py [--rounds N] [--write]

Builds benchmarks/guests/road_phases (examples/road_segmentation's code with a stopwatch, see
its main.py), then runs it interleaved — wasm with the backend worker (the default), wasm with
``--in-process``, native mode — ``--rounds`` times after one warm-up round each, and prints the
median of every phase and of the whole process (``wall``; ``host`` is wall minus the guest's
own time: interpreter and host start, module load, worker start and exit). Needs the numpy
runtime flavour and the road model (`examples/prepare_models.py road_segmentation`).
``--write`` puts the table in RESULTS.md's numpy section.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from numpy_bench import ROAD_ARGS  # noqa: E402
from run import EXAMPLES, RESULTS, Table, machine, ratio, wasinn  # noqa: E402
from timing import write_results_section  # noqa: E402

GUEST = HERE / "guests" / "road_phases"
HEADING = "### road_segmentation phase by phase (session 2)"


def _guest(work: Path) -> Path:
    """The stopwatch guest with the example's code beside it (as road.py)."""
    folder = work / "road_phases"
    shutil.copytree(GUEST, folder)
    shutil.copy(EXAMPLES / "road_segmentation" / "main.py", folder / "road.py")
    shutil.copy(EXAMPLES / "road_segmentation" / "bmp.py", folder / "bmp.py")
    return folder


def _one(command: list[str], cwd: Path) -> dict[str, float]:
    began = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    wall = (time.perf_counter() - began) * 1e3
    if proc.returncode != 0 or "PHASES" not in proc.stderr:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    line = proc.stderr.split("PHASES", 1)[1].splitlines()[0]
    phases = {key: float(value) for key, value in re.findall(r"(\S+)=([-\d.]+)", line)}
    phases["wall"] = wall
    phases["host"] = wall - phases["guest"]
    return phases


def measure(rounds: int) -> Table:
    models = EXAMPLES / "road_segmentation" / "model"
    if not (models / ROAD_ARGS[0]).is_file():
        raise SystemExit(f"no road model in {models}: run examples/prepare_models.py")
    with tempfile.TemporaryDirectory() as tmp:
        folder = _guest(Path(tmp))
        wasm = Path(tmp) / "road_phases.wasm"
        cwasm = wasm.with_suffix(".cwasm")
        subprocess.run([*wasinn(), "build", str(folder), "-o", str(wasm)], check=True,
                       capture_output=True)
        subprocess.run([*wasinn(), "compile", str(wasm), str(cwasm)], check=True,
                       capture_output=True)
        variants = {
            "wasm (worker)": [*wasinn(), "run", "--dir", ".:.", str(cwasm), *ROAD_ARGS],
            "wasm --in-process": [*wasinn(), "run", "--in-process", "--dir", ".:.", str(cwasm),
                                  *ROAD_ARGS],
            "native mode": [*wasinn(), "run", "--native", str(folder), *ROAD_ARGS],
        }
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        for round_ in range(rounds + 1):          # round 0 warms the caches, not counted
            for name, command in variants.items():
                result = _one(command, models)
                if round_:
                    samples[name].append(result)
    medians = {name: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
               for name, runs in samples.items()}
    names = list(variants)
    table = Table(HEADING[4:],
                  ["phase", *names, "worker ÷ native", "in-process ÷ native"])
    for key in medians[names[0]]:
        row = [key, *(f"{medians[n][key]:.1f}" for n in names)]
        native = medians["native mode"][key]
        row += [ratio(medians[names[0]][key], native), ratio(medians[names[1]][key], native)]
        table.rows.append(row)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (default 9)")
    parser.add_argument("--write", action="store_true", help=f"save the table to {RESULTS}")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 1000:
        parser.error("--rounds must be between 1 and 1000")
    text = (f"{measure(args.rounds).render()}\n\nms, median of {args.rounds} interleaved rounds "
            f"(`python benchmarks/road_phases.py`); {machine()}")
    print(text)
    if args.write:
        write_results_section(RESULTS, HEADING, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

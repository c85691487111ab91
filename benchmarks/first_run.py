"""First-run and warm-run times of a freshly built guest: the edit loop of issue 9.

    python3 benchmarks/first_run.py [--edits N] [--repeat N] [--no-baseline]

Everything runs with private, empty caches (WASINN_CACHE_DIR and XDG_CACHE_HOME in a temp
folder, so wasmtime's own cache starts empty too), measuring as a user meets it:

* cold: the very first build and run on a machine (`wasinn build` compiles the runtime's code
  once, with a notice);
* edit loop: change the guest, `wasinn build`, first run of the new module (the run is the
  figure the issue targets: <= 2 s on 2 cores); medians of N edits;
* warm: the same module again (median of N runs);
* baseline: a first run compiling the whole module, as before shared code (`--no-cache`);
* native: `wasinn run --native` of the same guest, for the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GUEST = 'import sys\nimport wasi_nn  # noqa: F401 (a real guest pays for it)\nprint("hello from edit", {edit}, sys.argv[1:])\n'


def _wasinn(*args: str, env: dict[str, str], cwd: Path) -> float:
    """Seconds one `wasinn ARGS` process takes (fails loudly on a non-zero exit)."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "wasinn", *args], cwd=cwd, env=env,
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"wasinn {' '.join(args)} failed: {result.stderr.strip()[-400:]}")
    return elapsed


def measure(edits: int, repeat: int, baseline: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="wasinn-first-run-") as tmp:
        work = Path(tmp)
        env = dict(os.environ, WASINN_CACHE_DIR=str(work / "cache"),
                   XDG_CACHE_HOME=str(work / "xdg"))
        guest = work / "guest"
        guest.mkdir()

        def build(edit: int) -> tuple[Path, float]:
            (guest / "main.py").write_text(GUEST.format(edit=edit))
            out = work / f"guest{edit}.wasm"
            return out, _wasinn("build", str(guest), "-o", str(out), env=env, cwd=work)

        figures: dict[str, float] = {}
        first, seconds = build(0)
        figures["cold: first build on a machine (one-time compile)"] = seconds
        figures["cold: its first run"] = _wasinn("run", str(first), env=env, cwd=work)
        builds, firsts = [], []
        for edit in range(1, edits + 1):
            out, seconds = build(edit)
            builds.append(seconds)
            firsts.append(_wasinn("run", str(out), env=env, cwd=work))
        figures["rebuild after an edit"] = statistics.median(builds)
        figures["first run after an edit + rebuild"] = statistics.median(firsts)
        last = work / f"guest{edits}.wasm"
        figures["warm run (same module again)"] = statistics.median(
            _wasinn("run", str(last), env=env, cwd=work) for _ in range(repeat))
        if baseline:
            figures["first run compiling the whole module (before)"] = _wasinn(
                "run", "--no-cache", str(last), env=env, cwd=work)
        figures["native mode (wasinn run --native)"] = statistics.median(
            _wasinn("run", "--native", str(guest), env=env, cwd=work) for _ in range(repeat))
        return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the whole-module compile (the slow 'before' figure)")
    options = parser.parse_args(argv)
    figures = measure(max(1, options.edits), max(1, options.repeat), not options.no_baseline)
    native = figures["native mode (wasinn run --native)"]
    print(f"First run of a freshly built guest ({os.cpu_count()} cores)")
    print(f"| {'figure':<50} | {'seconds':>8} | {'÷ native':>8} |")
    print(f"| {'-' * 50} | {'-' * 8} | {'-' * 8} |")
    for name, seconds in figures.items():
        print(f"| {name:<50} | {seconds:8.2f} | {seconds / native:8.2f} |")
    target = figures["first run after an edit + rebuild"]
    print(f"target: first run after an edit <= 2 s: {'met' if target <= 2 else 'NOT met'} "
          f"({target:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

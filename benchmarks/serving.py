#!/usr/bin/env python3
"""Serving and scale-out benchmark: classify a folder of images, every way wasinn can, in one run.

    python3 benchmarks/serving.py              # prints the table (~5 minutes on 2 cores)
    python3 benchmarks/serving.py --write      # also puts it in benchmarks/RESULTS.md
    python3 benchmarks/serving.py --no-ray     # skip the Ray rows (Ray not installed, or quick)

The same MobileNetV2 (OpenVINO IR from examples/prepare_models.py) and the same pictures
(../shared/fixtures/images, each used twice) in every row:

* a loop of `wasinn run` (one process per image; the module cache warm; the model compiled in
  every process) — the baseline the issue starts from;
* `GuestPool` in one process: the module opened and the model compiled once, a fresh guest per
  image (`examples/classify_service`), with 1 and 2 threads;
* `wasinn map` with threads, and on a local Ray cluster with 1 and 2 actors: end to end
  (cluster start included) and steady state (between the first and the last result);
* native Python calling OpenVINO directly: the model compiled once, each image decoded and
  resized by the same C code natively, one inference, top-5 — what a guest cannot beat.
  Native and the 1-thread pool (and the pool with its backends in-process) run in processes
  of their own that take turns, pass by pass (`--rounds`, default 7): their ratio is the
  median of the per-pass ratios, so a load change on a shared machine hits both alike;
* `wasinn serve` (2 workers) and `wasinn serve --ray` (2 replicas): 4 concurrent loopback
  clients POSTing the images; requests/s and client-side latency percentiles.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import http.client
import importlib.util
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from timing import write_results_section  # noqa: E402
EXAMPLES = REPO / "examples"
RESULTS = HERE / "RESULTS.md"
FIXTURES = REPO.parent / "shared" / "fixtures"
POOL_ROW = "`GuestPool`, 1 thread"
IN_PROCESS_ROW = "`GuestPool`, 1 thread, backends in-process (`in_process=True`)"
HEADING = "## Serving and scale-out (wasinn serve, wasinn map, GuestPool)"
NOTE = ("On a shared, loaded machine (load average {load} on {cores} cores while this ran) rows measured minutes apart vary by up to 2×: compare within one run, and re-run on a quiet machine before drawing conclusions about scaling (the kernel's autogroup scheduling is on here, so the Ray rows, whose worker processes run in sessions of their own, may get a larger share of the contended CPU than one process with threads; not verified). Under load, native's inference (OpenVINO's threads) slows more than the guest's single-threaded work, so the ratios to native read higher than on a quiet machine; only the interleaved rows compare like with like. The pool's own cost per call is small and steady: setting up the call ~0.2 ms, instantiating the module ~0.2 ms; the rest is the guest (CPython start-up in wasm, imports, decoding, inference).")


def wasinn() -> list[str]:
    return [sys.executable, "-m", "wasinn"]


def prepare(work: Path, copies: int) -> tuple[Path, str, Path, list[Path]]:
    """(classify.wasm, preload spec, model folder, pictures) — models made offline."""
    spec = importlib.util.spec_from_file_location("prepare_models", EXAMPLES / "prepare_models.py")
    prepare_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare_models)
    prepare_models.prepare(["mobilenet_openvino"], FIXTURES)
    model = prepare_models.model_dir("mobilenet_openvino")
    preload = f"m:OpenVINO:CPU:{model / 'mobilenet.xml'},{model / 'mobilenet.bin'}"
    module = work / "classify.wasm"
    subprocess.run([*wasinn(), "build", str(EXAMPLES / "classify_service"), "-o", str(module)],
                   check=True, capture_output=True)
    pictures = work / "pictures"
    pictures.mkdir()
    sources = sorted(p for p in (FIXTURES / "images").iterdir()
                     if p.suffix in (".jpg", ".bmp"))
    for copy in range(copies):
        for source in sources:
            shutil.copy(source, pictures / f"{copy}-{source.name}")
    return module, preload, model, sorted(pictures.iterdir())


def top1(stdout: bytes | str) -> int:
    return json.loads(stdout)["top5"][0]["class"]


# -- rows ------------------------------------------------------------------------------------

def run_loop(module: Path, preload: str, pictures: list[Path]) -> tuple[float, list[int]]:
    folder = pictures[0].parent
    subprocess.run([*wasinn(), "run", "--dir", f"/img:{folder}", "--nn-preload", preload,
                    str(module), "m", f"/img/{pictures[0].name}"], check=True, capture_output=True)
    answers = []
    start = time.perf_counter()
    for picture in pictures:
        done = subprocess.run([*wasinn(), "run", "--dir", f"/img:{folder}", "--nn-preload",
                               preload, str(module), "m", f"/img/{picture.name}"],
                              check=True, capture_output=True)
        answers.append(top1(done.stdout))
    return len(pictures) / (time.perf_counter() - start), answers


def pool_rate(module: Path, preload: str, pictures: list[Path], threads: int
              ) -> tuple[float, float, list[int], float]:
    """(items/s, open seconds, answers, median run ms) of GuestPool calls with `threads` threads."""
    from wasinn import GuestPool

    pictures = [Path(p) for p in pictures]
    data = [p.read_bytes() for p in pictures]
    started = time.perf_counter()
    with GuestPool(module, preload=[preload]) as pool:
        opened = time.perf_counter() - started
        pool.call(["m"], stdin=data[0])                     # first call: numpy etc. imported
        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as executor:
            results = list(executor.map(lambda d: pool.call(["m"], stdin=d), data))
        rate = len(data) / (time.perf_counter() - start)
    assert all(r.ok for r in results), results[0].stderr
    return rate, opened, [top1(r.stdout) for r in results], statistics.median(
        r.timings.run_ms for r in results)


def batched_pool_rate(module: Path, preload: str, pictures: list[Path], per_guest: int
                      ) -> tuple[float, list[int]]:
    """images/s when each guest classifies `per_guest` pictures (the guest start-up amortised)."""
    from wasinn import GuestPool

    pictures = [Path(p) for p in pictures]
    files = [{p.name: p.read_bytes() for p in pictures[i:i + per_guest]}
             for i in range(0, len(pictures), per_guest)]
    with GuestPool(module, preload=[preload]) as pool:
        pool.call(["m"], stdin=pictures[0].read_bytes())
        start = time.perf_counter()
        results = [pool.call(["m", *(f"/files/{name}" for name in batch)], files=batch)
                   for batch in files]
        rate = len(pictures) / (time.perf_counter() - start)
    assert all(r.ok for r in results), results[0].stderr
    return rate, [top1(line) for r in results for line in r.stdout.splitlines()]


def _passes(kind: str, module: str, preload: str, model: str, pictures: list[str]) -> None:
    """A process that classifies every picture once per line read from stdin (one *pass*)
    and prints `{"rate": images/s, "answers": [...], "run_ms": median, "cpu_ms": mean}` as a
    JSON line.

    `cpu_ms` is the CPU time of the classifying thread per image, which load on a shared
    machine barely changes: for the pool the whole call (the guest's wasm and the host's side
    of its wasi-nn calls; the inference runs in the worker process), for native everything but
    the inference (OpenVINO's threads). Both miss the same inference, so comparing them shows
    the guest's overhead without the noise of wall-clock time.

    `kind` "native" (OpenVINO called directly) or "pool" (one `GuestPool`, 1 thread, a fresh
    guest per image). The model is compiled (and the pool opened) once, before the first pass,
    as in `pool_rate`; every pass is steady state.
    """
    pictures = [Path(p) for p in pictures]
    if kind == "native":
        import numpy as np
        import openvino as ov
        from wasi_nn.image import image_to_tensor
        from wasi_nn.results import sort_results

        compiled = ov.Core().compile_model(str(Path(model) / "mobilenet.xml"), "CPU")
        request = compiled.create_infer_request()

        def classify(path: Path) -> tuple[int, float, float]:
            begin, cpu = time.perf_counter(), time.thread_time()
            tensor = np.frombuffer(image_to_tensor(path.read_bytes(), 224, 224, preset="openvino"),
                                   dtype=np.float32).reshape(1, 3, 224, 224)
            cpu_infer = time.thread_time()
            request.infer({0: tensor})
            scores = request.get_output_tensor(0).data.reshape(-1)
            cpu += time.thread_time() - cpu_infer          # without the inference (see below)
            answer = sort_results(scores.tolist(), skip=1)[0][0]
            return answer, time.perf_counter() - begin, time.thread_time() - cpu
        closing = None
    else:
        from wasinn import GuestPool

        # "pool-in-process": the backends in this process instead of the pool's confined
        # worker (trusted models only) -- shows what the worker's round trips cost
        pool = GuestPool(module, preload=[preload], in_process=kind == "pool-in-process")
        closing = pool

        def classify(path: Path) -> tuple[int, float, float]:
            cpu = time.thread_time()
            result = pool.call(["m"], stdin=path.read_bytes())
            assert result.ok, result.stderr
            return top1(result.stdout), result.timings.run_ms / 1000, time.thread_time() - cpu
    classify(pictures[0])                                  # warm: imports, first inference
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        done = [classify(p) for p in pictures]
        rate = len(pictures) / (time.perf_counter() - start)
        print(json.dumps({"rate": rate, "answers": [a for a, _, _ in done],
                          "run_ms": statistics.median(t for _, t, _ in done) * 1000,
                          "cpu_ms": sum(c for _, _, c in done) * 1000 / len(done)}), flush=True)
    if closing is not None:
        closing.close()


def interleaved(module: Path, preload: str, model: Path, pictures: list[Path], rounds: int,
                kinds: tuple[str, ...] = ("native", "pool")) -> dict[str, object]:
    """Native and the 1-thread pool (and any other `kinds` of `_passes`), each in a process of
    its own, taking turns pass by pass -- the order rotating every round -- so that a load
    change on the shared machine hits every kind alike. Returns, per kind, the median images/s,
    the median of its per-round ratios to native, the median guest/image time, every pass's
    rate, and the answers of its first pass."""
    code = ("import json, sys; sys.path.insert(0, %r); import serving; "
            "serving._passes(*json.loads(sys.argv[1]))") % str(HERE)
    procs = {}
    try:
        for kind in kinds:
            args = json.dumps([kind, str(module), preload, str(model), [str(p) for p in pictures]])
            procs[kind] = subprocess.Popen([sys.executable, "-c", code, args],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        passes: dict[str, list[dict]] = {kind: [] for kind in kinds}
        for kind, proc in procs.items():
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the {kind} pass process did not start")
        for round_ in range(rounds):
            shift = round_ % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                procs[kind].stdin.write("go\n")
                procs[kind].stdin.flush()
                line = procs[kind].stdout.readline()
                if not line:
                    raise RuntimeError(f"the {kind} pass process died")
                passes[kind].append(json.loads(line))
    finally:
        for proc in procs.values():
            proc.stdin.close()
            proc.wait(60)
    native = [p["rate"] for p in passes["native"]]
    return {kind: {"rate": statistics.median(p["rate"] for p in runs),
                   "ratio": statistics.median(p["rate"] / n for p, n in zip(runs, native)),
                   "ms": statistics.median(p["run_ms"] for p in runs),
                   "cpu_ms": statistics.median(p["cpu_ms"] for p in runs),
                   "rates": [round(p["rate"], 2) for p in runs],
                   "answers": runs[0]["answers"]}
            for kind, runs in passes.items()}


def map_rate(module: Path, preload: str, pictures: list[Path], out: Path, extra: list[str]
             ) -> tuple[float, float, dict[str, int]]:
    """(items/s end to end, items/s steady state, answers by picture) of one `wasinn map`."""
    start = time.perf_counter()
    done = subprocess.run([*wasinn(), "map", "--no-progress", *extra, "--nn-preload", preload,
                           "--inputs", f"{pictures[0].parent}/*", "--out", str(out),
                           str(module), "m", "{}"], capture_output=True, text=True)
    total = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"wasinn map {extra} failed: {done.stderr.strip()[-500:]}")
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    finished = sorted(r["finished"] for r in records)
    steady = (len(finished) - 1) / (finished[-1] - finished[0])
    answers = {Path(r["input"]).name: top1(Path(r["output"]).read_bytes()) for r in records}
    return len(pictures) / total, steady, answers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_rate(module: Path, preload: str, pictures: list[Path], extra: list[str],
               requests: int, clients: int = 4) -> dict[str, float]:
    """Start `wasinn serve`, then `clients` threads POST `requests` pictures in total."""
    port = free_port()
    server = subprocess.Popen([*wasinn(), "serve", "--port", str(port), *extra,
                               "--nn-preload", preload, str(module), "m"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        started = time.perf_counter()
        while "http://" not in (server.stdout.readline() or "http://"):
            pass
        if server.poll() is not None:
            raise RuntimeError(f"wasinn serve {extra} did not start")
        ready = time.perf_counter() - started
        bodies = [p.read_bytes() for p in pictures]
        latencies: list[float] = []
        lock = threading.Lock()
        counter = iter(range(requests))

        def client() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            for i in counter:
                begin = time.perf_counter()
                connection.request("POST", "/", body=bodies[i % len(bodies)])
                response = connection.getresponse()
                response.read()
                assert response.status == 200, response.status
                with lock:
                    latencies.append((time.perf_counter() - begin) * 1000)
            connection.close()

        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        for body in bodies[:4]:                       # every replica/worker warmed up
            warm.request("POST", "/", body=body)
            warm.getresponse().read()
        warm.close()
        start = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(120)
    latencies.sort()
    pick = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]  # noqa: E731
    return {"rate": len(latencies) / elapsed, "p50": pick(50), "p99": pick(99), "ready_s": ready}


def in_fresh_process(function: str, *args: object) -> object:
    """Run `function(*args)` of this file in a new Python process and return its result.

    Every row gets a process of its own, as `wasinn map` and `wasinn serve` do: inference
    libraries keep worker threads alive (spinning) after use, which would slow the next row
    measured in the same process.
    """
    code = ("import json, sys; sys.path.insert(0, %r); import serving; "
            "from pathlib import Path; args = json.loads(sys.argv[1]); "
            "print(json.dumps(getattr(serving, %r)(*args)))") % (str(HERE), function)
    encoded = json.dumps([str(a) if isinstance(a, Path) else
                          [str(x) for x in a] if isinstance(a, list) else a for a in args])
    done = subprocess.run([sys.executable, "-c", code, encoded], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{function} failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- report ----------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray rows")
    parser.add_argument("--copies", type=int, default=2, help="times each picture is used")
    parser.add_argument("--requests", type=int, default=40, help="requests per serve row")
    parser.add_argument("--rounds", type=int, default=7,
                        help="interleaved passes of native and the pool (the target figure)")
    options = parser.parse_args()
    use_ray = not options.no_ray and importlib.util.find_spec("ray") is not None

    loads = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="wasinn-serving-bench-"))
    try:
        module, preload, model, pictures = prepare(work, options.copies)
        n = len(pictures)
        print(f"{n} pictures; MobileNetV2 OpenVINO; {os.cpu_count()} cores", file=sys.stderr)
        rows: list[tuple[str, float, str]] = []
        interleaved_ratio: dict[str, float] = {}
        if options.rounds < 1:
            parser.error("--rounds must be >= 1")

        # The target figure: native and the 1-thread pool interleaved pass by pass (and the pool
        # with its backends in-process, to show what the confined worker costs), medians.
        duel = interleaved(module, preload, model, pictures, options.rounds,
                           ("native", "pool", "pool-in-process"))
        native_answers = duel["native"]["answers"]
        assert all(d["answers"] == native_answers for d in duel.values()), "answers differ"
        native, pool1 = duel["native"]["rate"], duel["pool"]["rate"]
        print(f"interleaved: native {duel['native']['rates']}, pool {duel['pool']['rates']}, "
              f"in-process pool {duel['pool-in-process']['rates']}", file=sys.stderr)
        interleaved_ratio = {POOL_ROW: duel["pool"]["ratio"],
                             IN_PROCESS_ROW: duel["pool-in-process"]["ratio"]}
        loop, loop_answers = run_loop(module, preload, pictures)
        print(f"run loop {loop:.2f}/s", file=sys.stderr)
        assert loop_answers == native_answers, "wasinn run and native disagree"
        pool2, opened, answers, _ = in_fresh_process("pool_rate", module, preload, pictures, 2)
        assert answers == native_answers
        print(f"pool 2 threads {pool2:.2f}/s", file=sys.stderr)
        batched, answers = in_fresh_process("batched_pool_rate", module, preload, pictures, 10)
        assert answers == native_answers
        rows += [("loop of `wasinn run` (a process per image)", loop, ""),
                 (POOL_ROW, pool1,
                  f"interleaved with native ({options.rounds} passes each; ÷ native is the "
                  f"median per-pass ratio); guest median {duel['pool']['ms']:.1f} ms vs "
                  f"{duel['native']['ms']:.1f} ms per image natively; CPU time of the "
                  f"calling thread per image, without the inference: {duel['pool']['cpu_ms']:.1f}"
                  f" ms vs {duel['native']['cpu_ms']:.1f} ms natively; passes "
                  f"{duel['pool']['rates']}"),
                 (IN_PROCESS_ROW, duel["pool-in-process"]["rate"],
                  "interleaved too; the backends in the pool's process: what the confined "
                  f"worker's round trips cost; passes {duel['pool-in-process']['rates']}"),
                 ("`GuestPool`, 2 threads", pool2, f"pool opened (module + model compile) in "
                  f"{opened:.2f} s"),
                 ("`GuestPool`, 1 thread, 10 images per guest", batched,
                  "one guest start-up per 10 images")]
        by_name = {p.name: a for p, a in zip(pictures, native_answers)}
        end, steady, answers = map_rate(module, preload, pictures, work / "map-local",
                                        ["--jobs", "2"])
        assert answers == by_name
        rows.append(("`wasinn map --jobs 2` (threads)", steady,
                     f"end to end, process start included: {end:.2f}/s"))
        if use_ray:
            for actors in (1, 2):
                end, steady, answers = map_rate(module, preload, pictures, work / f"map-ray{actors}",
                                                ["--ray", "--actors", str(actors)])
                assert answers == by_name
                rows.append((f"`wasinn map --ray --actors {actors}` (local cluster)", steady,
                             f"end to end, Ray start included: {end:.2f}/s"))
                print(f"map ray {actors}: {steady:.2f}/s", file=sys.stderr)
        rows.append(("native Python: OpenVINO called directly", native,
                     "model compiled once; same C decode/resize; one inference; top-5; "
                     f"passes {duel['native']['rates']}"))

        serves = [("`wasinn serve --workers 2`", ["--workers", "2"])]
        if use_ray:
            serves.append(("`wasinn serve --ray --replicas 2`",
                           ["--ray", "--replicas", "2", "--workers", "2"]))
        serve_rows = []
        for label, extra in serves:
            figures = serve_rate(module, preload, pictures, extra, options.requests)
            serve_rows.append((label, figures))
            print(f"{label}: {figures}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [HEADING, "",
             f"`python3 benchmarks/serving.py` on {_dt.date.today()}, {platform.machine()}, "
             f"{os.cpu_count()} cores (shared with other work). {n} pictures (the fixtures' "
             "JPEG/BMP images, each twice), MobileNetV2 OpenVINO, `examples/classify_service`; "
             "every row gave the same top-1 for every picture.", "",
             "| how | images/s | ÷ `wasinn run` loop | ÷ native | notes |",
             "| --- | ---: | ---: | ---: | --- |"]
    for label, rate, note in rows:
        # the interleaved rows' ÷ native is the median of their per-pass ratios
        ratio = interleaved_ratio.get(label, rate / native)
        lines.append(f"| {label} | {rate:.2f} | {rate / loop:.1f}× | {ratio:.2f} | {note} |")
    lines += ["", "| server (4 concurrent loopback clients) | requests/s | p50 ms | p99 ms | ready after |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for label, f in serve_rows:
        lines.append(f"| {label} | {f['rate']:.2f} | {f['p50']:.0f} | {f['p99']:.0f} | "
                     f"{f['ready_s']:.1f} s |")
    load = f"{loads[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    lines += ["", NOTE.format(load=load, cores=os.cpu_count())]
    table = "\n".join(lines) + "\n"
    print(table)
    if options.write:
        write_results_section(RESULTS, HEADING, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

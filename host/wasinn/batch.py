"""`wasinn map`: run a guest once per input file, on local threads or on Ray actors.

Each input is one fresh guest call (`GuestPool.call`): its bytes go into the call's private
folder (`{}` in ARGS becomes its guest path, e.g. `/files/banana.jpg`) or, with `stdin`, to
standard input. Results land under OUT mirroring the inputs' relative paths: `NAME.out` (the
guest's stdout), `NAME.err` (its stderr, when there is any), and one JSON line per input in
`OUT/results.jsonl`. A failing input is recorded and the job goes on; the exit code is 0 when
every input succeeded, 1 otherwise.

Local mode runs `jobs` threads over ONE pool (models compiled once, wasm runs without the GIL).
Ray mode (`wasinn.scale`) runs the same `run_item` inside actors, each holding its own pool.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from .nn import PreloadError, parse_preload
from .pool import GuestPool
from .runner import HostError

PLACEHOLDER = "{}"


@dataclass
class MapOptions:
    """Everything `wasinn map` needs; picklable, so Ray actors are built from it."""

    module: Path
    inputs: Sequence[str]
    out: Path
    args: Sequence[str] = ()
    preload: Sequence[str] = ()
    dirs: Sequence[tuple[str, str]] = ()
    env: Sequence[tuple[str, str]] = ()
    stdin: bool = False
    timeout: float | None = None
    max_memory: int | None = None
    max_graphs: int = 64
    max_contexts: int = 256
    jobs: int = 1
    ray: bool = False
    actors: int = 2
    ray_address: str | None = None
    cache: bool = True
    verbose: bool = False
    progress: bool = True

    def open_pool(self) -> GuestPool:
        return GuestPool(self.module, preload=self.preload, dirs=self.dirs, env=self.env,
                         timeout=self.timeout, max_memory=self.max_memory,
                         max_graphs=self.max_graphs, max_contexts=self.max_contexts,
                         cache=self.cache)


@dataclass
class Item:
    """One input: its host path and its name under OUT (relative, without the suffix)."""

    path: str
    key: str


@dataclass
class ItemResult:
    key: str
    input: str
    exit_code: int
    ok: bool
    seconds: float
    stdout: bytes = field(default=b"", repr=False)
    stderr: bytes = field(default=b"", repr=False)
    error: str | None = None


def absolute_options(options: MapOptions) -> MapOptions:
    """Module, model and folder paths made absolute (actors may run in another folder);
    preloads are checked here so a bad one is exit 2 before anything starts."""
    preload = []
    for spec in options.preload:
        try:
            model = parse_preload(spec)
        except PreloadError as error:
            raise HostError(str(error)) from None
        paths = ",".join(str(p.resolve()) for p in model.paths)
        preload.append(f"{model.name}:{model.encoding.name}:{model.target.name}:{paths}")
    options.module = Path(options.module).resolve()
    options.preload = preload
    options.dirs = [(guest, str(Path(host).resolve())) for guest, host in options.dirs]
    options.out = Path(options.out)
    return options


def find_inputs(patterns: Iterable[str]) -> list[Item]:
    """Files matching the globs (`**` recursive), sorted, each named relative to their common folder."""
    paths = sorted({os.path.abspath(p) for pattern in patterns
                    for p in glob.glob(os.path.expanduser(pattern), recursive=True)
                    if os.path.isfile(p)})
    if not paths:
        raise HostError(f"no input file matches {' '.join(map(repr, patterns))}")
    root = os.path.commonpath([os.path.dirname(p) for p in paths])
    return [Item(p, os.path.relpath(p, root)) for p in paths]


def call_arguments(args: Sequence[str], item_name: str, stdin: bool,
                   files_dir: str) -> tuple[list[str], str]:
    """(guest args, the input's file name in the call's folder)."""
    name = os.path.basename(item_name) or "input"
    if stdin:
        return list(args), name
    where = f"{files_dir.rstrip('/')}/{name}"
    if any(PLACEHOLDER in a for a in args):
        return [a.replace(PLACEHOLDER, where) for a in args], name
    return [*args, where], name


def run_item(pool: GuestPool, options: MapOptions, key: str, path: str,
             data: bytes | None = None) -> ItemResult:
    """One input through one fresh guest; never raises (a failure is the result)."""
    started = time.perf_counter()
    try:
        if data is None:
            with open(path, "rb") as handle:
                data = handle.read()
        args, name = call_arguments(options.args, key, options.stdin, pool.files_dir)
        if options.stdin:
            result = pool.call(args, stdin=data)
        else:
            result = pool.call(args, files={name: data})
    except Exception as error:  # noqa: BLE001 - one input's failure must not stop the job
        return ItemResult(key, path, 2, False, time.perf_counter() - started,
                          error=f"{type(error).__name__}: {error}")
    error = result.error
    if not result.ok and error is None:
        last = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        error = f"exit code {result.exit_code}" + (f": {last[0][:300]}" if last else "")
    return ItemResult(key, path, result.exit_code, result.ok, time.perf_counter() - started,
                      result.stdout, result.stderr, error)


class ResultWriter:
    """Writes each result as it arrives: OUT/KEY.out, OUT/KEY.err, OUT/results.jsonl."""

    def __init__(self, out: Path) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self._log = open(out / "results.jsonl", "w", encoding="utf-8")
        self.ok = 0
        self.failed = 0

    def write(self, result: ItemResult) -> None:
        target = self.out / f"{result.key}.out"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(result.stdout)
        err_file = self.out / f"{result.key}.err"
        if result.stderr or result.error:
            text = result.stderr or (result.error or "").encode() + b"\n"
            err_file.write_bytes(text)
        elif err_file.exists():
            err_file.unlink()
        record = asdict(result)
        del record["stdout"], record["stderr"]
        record["seconds"] = round(result.seconds, 4)
        record["output"] = str(target)
        record["finished"] = round(time.time(), 4)     # when the result arrived (throughput)
        self._log.write(json.dumps(record) + "\n")
        self._log.flush()
        if result.ok:
            self.ok += 1
        else:
            self.failed += 1

    def close(self) -> None:
        self._log.close()


def _progress(total: int, enabled: bool) -> Any:
    """A tqdm bar on stderr (only on a terminal), or a stand-in with the same two methods."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None and enabled:
        return tqdm(total=total, unit="item", file=sys.stderr, disable=None, dynamic_ncols=True)

    class _Quiet:
        def update(self, n: int = 1) -> None: ...
        def set_postfix_str(self, text: str) -> None: ...
        def close(self) -> None: ...
    return _Quiet()


def run_map(options: MapOptions) -> int:
    """`wasinn map`: 0 when every input succeeded, 1 when any failed (2 via HostError)."""
    options = absolute_options(options)
    items = find_inputs(options.inputs)
    where = (f"{options.actors} Ray actor(s)" if options.ray else f"{options.jobs} thread(s)")
    print(f"wasinn map: {len(items)} input(s) through {options.module.name} on {where}; "
          f"loading the module and compiling {len(options.preload)} model(s)...",
          file=sys.stderr, flush=True)
    writer = ResultWriter(options.out)
    bar = _progress(len(items), options.progress)
    started = time.perf_counter()

    def done(result: ItemResult) -> None:
        writer.write(result)
        bar.update(1)
        if not result.ok:
            bar.set_postfix_str(f"{writer.failed} failed")
            print(f"wasinn map: {result.input}: {result.error}", file=sys.stderr, flush=True)
        elif options.verbose:
            print(f"wasinn map: {result.input}: ok ({result.seconds * 1000:.0f} ms)",
                  file=sys.stderr, flush=True)

    try:
        if options.ray:
            from .scale import map_on_ray

            map_on_ray(options, items, done)
        else:
            map_locally(options, items, done)
    except KeyboardInterrupt:
        print("wasinn map: interrupted", file=sys.stderr)
        return 130
    finally:
        bar.close()
        writer.close()
    elapsed = time.perf_counter() - started
    print(f"wasinn map: {writer.ok} ok, {writer.failed} failed in {elapsed:.1f} s "
          f"({len(items) / elapsed:.2f} items/s); results in {options.out}",
          file=sys.stderr, flush=True)
    return 0 if writer.failed == 0 else 1


def map_locally(options: MapOptions, items: Sequence[Item],
                done: Callable[[ItemResult], None]) -> None:
    """`jobs` threads over one pool, at most 2×jobs inputs read ahead."""
    with options.open_pool() as pool, ThreadPoolExecutor(options.jobs) as executor:
        pending: set[Future] = set()
        for item in items:
            if len(pending) >= 2 * options.jobs:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    done(future.result())
            pending.add(executor.submit(run_item, pool, options, item.key, item.path))
        for future in _completed(pending):
            done(future.result())


def _completed(pending: set[Future]) -> Iterator[Future]:
    while pending:
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from finished

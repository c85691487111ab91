"""The `wasinn serve` and `wasinn map` subcommands: argument parsing only.

Registered by `wasinn.cli` with two lines; the work is in `wasinn.serve`, `wasinn.batch` and
`wasinn.scale`, imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

SERVE_EPILOG = """\
status codes: 200 guest exited 0 (body = its stdout); 422 guest exited non-zero; 500 guest
trapped; 504 guest timed out; 413 body too large; 503 busy (workers and queue full)
examples:
  wasinn serve --nn-preload m:OpenVINO:CPU:m.xml,m.bin classify.wasm m
  curl --data-binary @banana.jpg http://127.0.0.1:8000/
  wasinn serve --nn-preload m:OpenVINO:CPU:m.xml,m.bin --body-file in.jpg classify.wasm m {}
  wasinn serve --ray --replicas 4 --nn-preload m:OpenVINO:CPU:m.xml,m.bin classify.wasm m
(options go before MODULE; everything after MODULE is the guest's)"""

MAP_EPILOG = """\
each input is one fresh guest: {} in ARGS is its path inside the guest (/files/NAME); without
{} the path is appended; with --stdin the bytes are the guest's stdin instead. Results:
OUT/NAME.out (stdout), OUT/NAME.err (stderr), OUT/results.jsonl (one line per input).
exit codes: 0 every input succeeded; 1 some failed (the others still ran); 2 bad arguments
examples:
  wasinn map --nn-preload m:OpenVINO:CPU:m.xml,m.bin --inputs 'pics/*.jpg' --out res classify.wasm m {}
  wasinn map --nn-preload ... --inputs 'pics/**/*.jpg' --out res --ray --actors 4 classify.wasm m {}
(options go before MODULE; everything after MODULE is the guest's)"""


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"bad port {text!r}: expected 0-65535")
    return int(text)


def _common(parser: argparse.ArgumentParser) -> None:
    from .cli import parse_dir, parse_env, parse_size, positive_int

    parser.add_argument("--nn-preload", action="append", default=[], metavar="SPEC",
                        help="named model NAME:ENCODING:TARGET:PATH[,PATH...], compiled once "
                             "before the first guest runs")
    parser.add_argument("--dir", action="append", default=[], type=parse_dir, metavar="GUEST:HOST",
                        help="preopen a host folder in EVERY guest (shared; per-call data goes "
                             "in the call's own folder)")
    parser.add_argument("--env", action="append", default=[], type=parse_env, metavar="KEY=VALUE",
                        help="environment variable for every guest")
    parser.add_argument("--max-memory", type=parse_size, metavar="SIZE",
                        help="cap on each guest's linear memory (e.g. 512M)")
    parser.add_argument("--max-graphs", type=positive_int, default=64, metavar="N",
                        help="per-guest cap on live graphs (default 64)")
    parser.add_argument("--max-contexts", type=positive_int, default=256, metavar="N",
                        help="per-guest cap on live execution contexts (default 256)")
    parser.add_argument("--ray", action="store_true",
                        help="run on Ray (pip install 'wasinn[ray]'); a local cluster unless "
                             "--ray-address or RAY_ADDRESS names one")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="Ray cluster to join, e.g. ray://head:10001 or auto")
    parser.add_argument("--verbose", "-v", action="store_true", help="log each call")
    parser.add_argument("--no-cache", action="store_true", help="disable the compile caches")
    parser.add_argument("module", metavar="MODULE", help="the guest (.wasm/.wat/.cwasm)")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="arguments of every guest")


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Add `serve` and `map` to the `wasinn` command's subparsers."""
    from .cli import parse_size, positive_float, positive_int  # noqa: F401 - cli is loaded by now

    serve = commands.add_parser(
        "serve", help="serve a guest over HTTP: one request = one fresh guest",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SERVE_EPILOG,
        description="Open MODULE once (models compiled up front) and answer every POST / "
                    "with a fresh guest: the body is its stdin (or --body-file), the response "
                    "its stdout. GET /health and GET /metrics answer JSON.")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default 8000; 0 = any free)")
    serve.add_argument("--workers", type=positive_int, default=max(os.cpu_count() or 1, 1),
                       metavar="N", help="guests running at once (per replica with --ray; "
                                         "default: the number of cores)")
    serve.add_argument("--max-queue", type=int, default=64, metavar="N",
                       help="requests waiting for a worker before 503 (default 64)")
    serve.add_argument("--max-body", type=parse_size, default=16 << 20, metavar="SIZE",
                       help="largest request body (default 16M); larger is 413")
    serve.add_argument("--timeout", type=positive_float, default=30.0, metavar="SECONDS",
                       help="per-request guest time limit (default 30); past it 504")
    serve.add_argument("--body-file", metavar="NAME",
                       help="give the body as the file /files/NAME instead of stdin; {} in "
                            "ARGS becomes that path")
    serve.add_argument("--content-type", default="text/plain; charset=utf-8",
                       help="media type of successful responses (default text/plain)")
    serve.add_argument("--replicas", type=positive_int, default=2, metavar="N",
                       help="Ray Serve replicas with --ray (default 2), each with its own pool")
    _common(serve)

    map_ = commands.add_parser(
        "map", help="run a guest over many input files (threads, or Ray actors)",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=MAP_EPILOG,
        description="Run a fresh guest per input file, models compiled once per process/actor; "
                    "a failing input is reported and the job goes on.")
    map_.add_argument("--inputs", action="append", required=True, metavar="GLOB",
                      help="input files (quote the glob; ** recurses); repeatable")
    map_.add_argument("--out", required=True, metavar="DIR", help="folder for the results")
    map_.add_argument("--stdin", action="store_true",
                      help="give each input as the guest's stdin instead of a file")
    map_.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                      help="per-input guest time limit (exit 124 for that input)")
    map_.add_argument("--jobs", "-j", type=positive_int, default=max(os.cpu_count() or 1, 1),
                      metavar="N", help="threads without --ray (default: the number of cores)")
    map_.add_argument("--actors", type=positive_int, default=2, metavar="N",
                      help="Ray actors with --ray (default 2), each with its own pool")
    map_.add_argument("--no-progress", action="store_true", help="no progress bar")
    _common(map_)


def _guest_args(args: list[str]) -> list[str]:
    return args[1:] if args[:1] == ["--"] else args


def _require_server_libraries() -> None:
    from importlib.util import find_spec

    if find_spec("starlette") is None or find_spec("uvicorn") is None:
        from .runner import HostError

        raise HostError("the HTTP server needs Starlette and uvicorn; install them with: "
                        "pip install 'wasinn[serve]'")


def run_serve(options: argparse.Namespace) -> int:
    from .blas_threads import use_one_blas_thread
    from .serve import ServeOptions, serve

    _require_server_libraries()
    use_one_blas_thread()     # this process and its workers only run guests
    serve_options = ServeOptions(
        module=Path(options.module), args=_guest_args(options.args), preload=options.nn_preload,
        dirs=options.dir, env=options.env, host=options.host, port=options.port,
        workers=options.workers, max_queue=max(options.max_queue, 0), max_body=options.max_body,
        timeout=options.timeout, max_memory=options.max_memory, max_graphs=options.max_graphs,
        max_contexts=options.max_contexts, body_file=options.body_file,
        content_type=options.content_type, cache=not options.no_cache, verbose=options.verbose,
        ray_address=options.ray_address)
    if serve_options.body_file is not None:
        from .pool import _file_path

        try:
            _file_path(Path("/"), serve_options.body_file)
        except ValueError as error:
            from .runner import HostError

            raise HostError(f"--body-file: {error}") from None
    if options.ray:
        from .pool import load_registry
        from .scale import serve_on_ray

        serve_options.module = serve_options.module.resolve()
        load_registry(serve_options.preload)           # bad specs: exit 2 before Ray starts
        return serve_on_ray(serve_options, options.replicas)
    return serve(serve_options)


def run_map(options: argparse.Namespace) -> int:
    from .batch import MapOptions, run_map as run
    from .blas_threads import use_one_blas_thread

    use_one_blas_thread()     # this process and its workers only run guests

    return run(MapOptions(
        module=Path(options.module), inputs=options.inputs, out=Path(options.out),
        args=_guest_args(options.args), preload=options.nn_preload, dirs=options.dir,
        env=options.env, stdin=options.stdin, timeout=options.timeout,
        max_memory=options.max_memory, max_graphs=options.max_graphs,
        max_contexts=options.max_contexts, jobs=options.jobs, ray=options.ray,
        actors=options.actors, ray_address=options.ray_address, cache=not options.no_cache,
        verbose=options.verbose, progress=not options.no_progress))


HANDLERS = {"serve": run_serve, "map": run_map}

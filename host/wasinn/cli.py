"""The `wasinn` command: `run`, `compile`, `build`, and `serve`/`map` (`serving_cli`).

Errors wasinn itself detects are one line on stderr (`wasinn run: error: ...`) with exit 2;
see `wasinn.runner` for the full list of exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

# Only what every command needs: `run` imports the engine, ABI and backends when it runs,
# `build` the toolchain, the other commands their modules (docs/host.md, "Start-up").
from .errors import EXIT_USAGE, HostError
from .worker.options import add_worker_options, worker_run_options

_SIZE_PATTERN = r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$"
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MAX_SIZE = 1 << 60
MAX_TIMEOUT = 1e9   # ~31 years: well inside what threading.Timer and time_t accept


def parse_size(text: str) -> int:
    """`65536`, `64K`, `512M`, `1G`, `2GiB` -> bytes (binary units)."""
    import re

    match = re.match(_SIZE_PATTERN, text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 512M, 1G, 65536)")
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if size > MAX_SIZE:     # wasmtime takes an int64: a bigger value would silently wrap
        raise argparse.ArgumentTypeError(f"bad size {text!r}: at most {MAX_SIZE >> 40}T")
    return size


def parse_dir(text: str) -> tuple[str, str]:
    """`GUEST:HOST` (WasmEdge's order, e.g. `.:.` or `/models:./models`) or `PATH` for both."""
    guest, sep, host = text.partition(":")
    if not sep:
        return text, text
    if not guest or not host:
        raise argparse.ArgumentTypeError(f"bad --dir {text!r}: expected GUEST:HOST or PATH")
    return guest, host


def parse_env(text: str) -> tuple[str, str] | None:
    """`KEY=VALUE`, or `KEY` alone for this environment's value (as wasmtime does; None when
    KEY is not set here, so the guest sees no KEY)."""
    key, sep, value = text.partition("=")
    if not key or "\0" in text:
        raise argparse.ArgumentTypeError(f"bad --env {text!r}: expected KEY=VALUE or KEY")
    if not sep:
        return (key, os.environ[key]) if key in os.environ else None
    return key, value


def positive_float(text: str) -> float:
    """Seconds > 0 that a timer can wait for: not nan, inf or past threading.TIMEOUT_MAX."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"bad timeout {text!r}: expected seconds > 0 and at most {MAX_TIMEOUT:g}")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def build_parser(only_run: bool = False) -> argparse.ArgumentParser:
    """The whole command line; with `only_run`, the `run` command alone (what `wasinn run …`
    needs: the other commands' parsers and modules are never built or imported for a run)."""
    parser = argparse.ArgumentParser(
        prog="wasinn",
        description="Build and run Python WASI-NN guests (core wasm32-wasi modules importing "
                    "wasi_snapshot_preview1 + wasi_ephemeral_nn).")
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="print wasinn's version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser(
        "run", help="run a guest module (.wasm, .wat or .cwasm)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run a WASI command module with wasinn's wasi-nn host.",
        epilog="exit codes: the guest's own; 124 timeout; 134 guest trap; 130 Ctrl-C; 2 wasinn could not "
               "start the guest\nexamples:\n"
               "  wasinn run --dir .:. mobilenet.wasm mobilenet.xml mobilenet.bin input.jpg\n"
               "  wasinn run --dir .:. --nn-preload demo:PyTorch:CPU:model.pt named.wasm demo x.jpg\n"
               "  wasinn run --native examples/mobilenet_pytorch model.pt input.jpg")
    run.add_argument("--dir", action="append", default=[], type=parse_dir, metavar="GUEST:HOST",
                     help="preopen a host folder at a guest path (or PATH for the same on both)")
    run.add_argument("--env", action="append", default=[], type=parse_env, metavar="KEY[=VALUE]",
                     help="set an environment variable in the guest (KEY alone: this one's value)")
    run.add_argument("--nn-preload", action="append", default=[], metavar="SPEC",
                     help="named model NAME:ENCODING:TARGET:PATH[,PATH...] for load_by_name, "
                          "e.g. demo:PyTorch:CPU:model.pt, m:OpenVINO:CPU:m.xml,m.bin or "
                          "default:GGML:AUTO:llama.gguf")
    run.add_argument("--max-memory", type=parse_size, metavar="SIZE",
                     help="cap on the guest's linear memory (e.g. 512M)")
    run.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                     help="stop the guest after this wall-clock time (exit code 124)")
    run.add_argument("--max-graphs", type=positive_int, default=64, metavar="N",
                     help="cap on live graphs (default 64)")
    run.add_argument("--max-contexts", type=positive_int, default=256, metavar="N",
                     help="cap on live execution contexts (default 256)")
    run.add_argument("--verbose", "-v", action="store_true",
                     help="log every wasi-nn call with timings, and compile/instantiate times")
    run.add_argument("--no-cache", action="store_true", help="disable the compile caches (wasinn's precompiled-module cache and wasmtime's)")
    add_worker_options(run)
    run.add_argument("--native", action="store_true",
                     help="MODULE is a guest package folder: run its main.py under this CPython "
                          "(--dir, --max-memory, --timeout and --no-cache do not apply)")
    run.add_argument("module", metavar="MODULE", help="the guest (.wasm/.wat/.cwasm, or a folder "
                                                      "with --native)")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                     help="arguments passed to the guest")
    if only_run:
        return parser

    compile_ = commands.add_parser("compile", help="ahead-of-time compile a module to .cwasm",
                                   description="Compile IN.wasm to OUT.cwasm (wasmtime serialize) "
                                               "for fast start-up with `wasinn run OUT.cwasm`.")
    compile_.add_argument("input", metavar="IN.wasm")
    compile_.add_argument("output", metavar="OUT.cwasm")

    build = commands.add_parser("build", help="build a guest package into one .wasm",
                                description="Bundle a guest package (a folder with main.py), the "
                                            "wasi_nn SDK and the stdlib into one .wasm module.")
    build.add_argument("source", metavar="DIR")
    build.add_argument("-o", "--output", metavar="OUT",
                       help="the .wasm to write (default: DIR's name + .wasm, here)")
    build.add_argument("--portable", action="store_true",
                       help="build for any wasi_ephemeral_nn runtime (see docs)")
    build.add_argument("--component", action="store_true",
                       help="build a WebAssembly component for WIT wasi:nn (wasmtime run -S nn) "
                            "with componentize-py instead of a core module (docs/guests.md)")
    build.add_argument("--verbose", "-v", action="store_true",
                       help="explain each build step and list every bundled module's origin")
    build.add_argument("--no-precompile", action="store_true",
                       help="do not compile the runtime's shared code now (the first run will)")
    build.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                       help="skip pre-initialisation (Wizer): a smaller module that starts "
                            "slower (see docs/guests.md)")
    build.add_argument("--include", action="append", default=[], metavar="MODULE",
                       help="also bundle MODULE (a package with its submodules), for imports "
                            "the build cannot see, e.g. importlib.import_module(name); "
                            "repeatable, like [tool.wasinn] include")
    from . import inspect_module, scaffold, serving_cli

    scaffold.add_parser(commands)
    inspect_module.add_parser(commands)
    serving_cli.add_parsers(commands)
    return parser


class _VersionAction(argparse.Action):
    """`--version`, reading the installed metadata only when asked (it costs ~10 ms)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib import metadata

        try:
            version = metadata.version("wasinn")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        print(f"wasinn {version}")
        parser.exit()


def _registry(specs: Sequence[str]):
    from .nn import ModelRegistry, PreloadError

    try:
        return ModelRegistry.from_specs(specs)
    except PreloadError as error:
        raise HostError(str(error)) from None


def _run(options: argparse.Namespace) -> int:
    options.env = [pair for pair in options.env if pair is not None]
    if options.verbose:
        import logging

        # The host core reports what it ignores (e.g. load_by_name_with_config options) here.
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="wasinn: %(message)s")
    registry = _registry(options.nn_preload)
    if options.native:
        from .native import run_native

        # Without --nn-preload, native mode keeps WASINN_NN_PRELOAD (like the SDK run directly).
        if not options.nn_preload:
            registry = _registry(s for s in os.environ.get("WASINN_NN_PRELOAD", "").split(";")
                                 if s.strip())
        return run_native(Path(options.module), options.args, registry=registry, env=options.env,
                          verbose=options.verbose, max_graphs=options.max_graphs,
                          max_contexts=options.max_contexts)
    from .blas_threads import use_one_blas_thread
    from .cli_input import check_wasm_run_input
    from .runner import RunOptions, run

    use_one_blas_thread()

    check_wasm_run_input(Path(options.module), options.args, options.env, options.dir)
    return run(RunOptions(
        module=Path(options.module), args=options.args, dirs=options.dir, env=options.env,
        registry=registry, max_memory=options.max_memory, timeout=options.timeout,
        max_graphs=options.max_graphs, max_contexts=options.max_contexts,
        verbose=options.verbose, cache=not options.no_cache, hard_deadline=True,
        start_worker_early=True, **worker_run_options(options)))


def _import_the_engine() -> None:
    """Import wasmtime and the runner with the garbage collector paused, then freeze what the
    process holds so far: the imports create tens of thousands of objects that live until the
    process ends (ctypes bindings, functions, classes), so collecting during them, or in the
    first collection after them, would only traverse them again (~3-5 ms of a `wasinn run`).
    The collector is on again, for everything made from here on, before the guest runs.
    Only for the program itself (`main()` without argv): a library caller's objects are its own."""
    import gc

    gc.disable()
    try:
        import wasmtime  # noqa: F401

        from . import runner  # noqa: F401
    finally:
        gc.freeze()
        gc.enable()


def _compile(options: argparse.Namespace) -> int:
    from .runner import compile_module

    compile_module(Path(options.input), Path(options.output))
    return 0


def _build(options: argparse.Namespace) -> int:
    try:
        from wasinn_toolchain.bundler import BuildError, build_guest
    except ImportError as error:
        raise HostError(f"the bundler is not available ({error})") from None
    try:
        source = Path(options.source)
        output = Path(options.output or f"{source.resolve().name}.wasm")
        if options.component:
            from wasinn_toolchain.component import build_component

            if options.portable:
                raise BuildError("--portable and --component exclude each other: a component "
                                 "speaks WIT wasi:nn, not wasi_ephemeral_nn")
            report = build_component(source, output, verbose=options.verbose)
        else:
            report = build_guest(source, output, portable=options.portable,
                                 verbose=options.verbose, snapshot=options.snapshot,
                                 include=options.include,
                                 notice=lambda text: print(f"wasinn build: {text}",
                                                           file=sys.stderr, flush=True))
    except BuildError as error:
        raise HostError(str(error)) from None
    for warning in getattr(report, "warnings", ()):
        print(f"wasinn build: warning: {warning}", file=sys.stderr)
    summary = getattr(report, "summary", None)
    if callable(summary):
        print(summary())
    if not (options.no_precompile or options.component):   # a component runs elsewhere
        from .shared_code import precompile

        precompile(output)
    return 0


def _keep_double_dash(argv: list[str], module: str, args: list[str]) -> list[str]:
    """Everything after MODULE belongs to the guest, a `--` right after it too (argparse drops
    it): `wasinn run m.wasm -- --flag` gives the guest `-- --flag`, as wasmtime does."""
    for index, token in enumerate(argv):
        if token == module and argv[index + 1:index + 2] == ["--"] and argv[index + 2:] == args:
            return ["--", *args]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    program = argv is None                    # the process's own entry point, not a caller's
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only_run=argv[:1] == ["run"])
    options = parser.parse_args(argv)
    if options.command == "run":
        options.args = _keep_double_dash(argv, options.module, options.args)
        handler = _run
        if program and not options.native:
            _import_the_engine()             # the process is ours: its collector too
    else:
        from . import serving_cli

        handler = {"compile": _compile, "build": _build, **serving_cli.HANDLERS}.get(
            options.command, getattr(options, "handler", None))
    try:
        code = handler(options)
        if program and options.command == "run":
            from .process_exit import exit_now

            exit_now(code)                    # a run is over: skip the interpreter's teardown
        return code
    except HostError as error:
        print(f"wasinn {options.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

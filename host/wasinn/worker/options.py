"""`wasinn run` options for the backend worker (kept out of cli.py, which many people edit)."""

from __future__ import annotations

import argparse
from typing import Any

from .limits import DEFAULT_MAX_HOST_MEMORY


#: below this the worker's own Python and numpy cannot start, so no model could ever load
MIN_HOST_MEMORY = 128 << 20


def host_memory(text: str) -> int:
    """`--max-host-memory`: a size (see cli.parse_size) of at least 128M."""
    from ..cli import parse_size

    value = parse_size(text)
    if value < MIN_HOST_MEMORY:
        raise argparse.ArgumentTypeError(
            f"--max-host-memory {text!r} is too small: the backend worker needs at least 128M "
            "to start (a few hundred MB to load a backend)")
    return value


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    from ..cli import positive_int

    parser.add_argument(
        "--in-process", action="store_true",
        help="run the backends inside the host process, as before the worker existed: faster "
             "to start, but a model file then runs with your rights — only for trusted models "
             "and debugging")
    parser.add_argument(
        "--max-host-memory", type=host_memory, default=DEFAULT_MAX_HOST_MEMORY, metavar="SIZE",
        help="cap on the backend worker's address space, e.g. 4G (default: 3/4 of the "
             f"machine's memory, here {DEFAULT_MAX_HOST_MEMORY / (1 << 30):.1f}G); a model "
             "that needs more gets runtime_error")
    parser.add_argument(
        "--max-host-cpu", type=positive_int, default=None, metavar="SECONDS",
        help="cap on the backend worker's CPU time, all threads together (default: none; "
             "--timeout bounds wall-clock time anyway)")


def worker_run_options(options: argparse.Namespace) -> dict[str, Any]:
    """The RunOptions fields these options set."""
    return {"in_process": options.in_process, "max_host_memory": options.max_host_memory,
            "max_host_cpu": options.max_host_cpu}

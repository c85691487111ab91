"""The worker's default limits, in a module of their own: the CLI's option parsing needs them
without importing the worker's client (and with it the host core)."""

from __future__ import annotations

import os


def _default_max_host_memory() -> int:
    """Three quarters of physical memory (at least 2 GiB): room for the backends (torch and
    OpenVINO together map ~1.2 GB of address space) and big models, while a hostile model
    can never take the whole machine and push the host into the OOM killer."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        physical = 8 << 30
    return max(2 << 30, physical // 4 * 3)


#: default cap on the worker's address space (`--max-host-memory`)
DEFAULT_MAX_HOST_MEMORY = _default_max_host_memory()

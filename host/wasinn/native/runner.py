"""`wasinn run --native DIR [ARGS…]`: run a guest package's main.py as `__main__` in-process.

The guest sees what it would see in wasm: sys.argv[0] is the program name and sys.argv[1:]
the user's arguments, its package folder is importable, and `wasi_nn` talks to the host
core directly (through `wasinn.native.raw`). The exit code is the guest's own.
"""

from __future__ import annotations

import os
import builtins
import sys
import traceback
import types
from pathlib import Path
from typing import Sequence

from ..nn import ModelRegistry
from . import raw

ENTRY = "main.py"


def run_native(package: Path, args: Sequence[str], *, registry: ModelRegistry | None = None,
               env: Sequence[tuple[str, str]] = (), verbose: bool = False,
               max_graphs: int = 64, max_contexts: int = 256) -> int:
    """Run `package/main.py` as __main__; returns the exit code (SystemExit honoured)."""
    entry = package / ENTRY
    if not entry.is_file():
        from ..runner import HostError

        raise HostError(f"--native {str(package)!r}: no {ENTRY} in that folder")
    raw.configure(registry, verbose=verbose, max_graphs=max_graphs, max_contexts=max_contexts)
    for key, value in env:
        os.environ[key] = value
    saved_argv, saved_path, saved_main = sys.argv[:], sys.path[:], sys.modules["__main__"]
    sys.argv = [package.resolve().name, *args]
    sys.path.insert(0, str(package.resolve()))
    # Executed by hand rather than with runpy.run_path, which would overwrite sys.argv[0].
    main = types.ModuleType("__main__")
    main.__file__ = str(entry)
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    try:
        code = compile(entry.read_bytes(), str(entry), "exec")
        exec(code, main.__dict__)  # noqa: S102 - running the user's own program is the point
        return 0
    except SystemExit as exit_:
        code = exit_.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF
        print(code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BaseException:  # noqa: BLE001 - the guest's own uncaught exception, shown like python
        kind, value, trace = sys.exc_info()
        # Drop wasinn's own frame: the user should see their program's traceback only.
        traceback.print_exception(kind, value, trace.tb_next if trace else None)
        return 1
    finally:
        sys.stdout.flush()
        sys.argv, sys.path[:] = saved_argv, saved_path
        sys.modules["__main__"] = saved_main

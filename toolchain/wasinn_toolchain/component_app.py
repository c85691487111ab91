"""The entry module of a component built by ``wasinn build --component``.

componentize-py imports this module at build time ("pre-initialisation") and snapshots the
interpreter, so whatever is imported here is in the component and nothing else is: a module
first imported at run time is not found. Hence the preload list (every module the guest, the
SDK and bundled packages import anywhere, even inside functions), made by the build and read
from ``wasinn_component_config``. The guest's entry file is compiled here but only *run* when
the host calls ``wasi:cli/run``, like ``python main.py``: as ``__main__``, with ``sys.argv``
from the host, ``SystemExit`` honoured, and an uncaught exception printed as a traceback and
turned into exit status 1 (the only failure status ``wasi:cli/run`` can report).
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import sys
import traceback
import types

import wasinn_component_config as config
from componentize_py_types import Err
from wit_world import exports


def _preload(names: list[str]) -> dict[str, str]:
    """Import `names`; returns {name: why} for those that failed (optional ones may)."""
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - optional imports may fail; see run_entry
            failed[name] = f"{type(error).__name__}: {error}"
            if config.VERBOSE:
                print(f"wasinn build: pre-import of {name} failed: {failed[name]}",
                      file=sys.stderr)
    return failed


def _entry_code(name: str) -> tuple[types.CodeType, str]:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"the guest's entry module {name!r} was not found at build time")
    code = spec.loader.get_code(name)
    if code is None:
        raise ImportError(f"the guest's entry module {name!r} has no code")
    return code, spec.origin or name


_FAILED = _preload(config.PRELOAD)
_CODE, _ORIGIN = _entry_code(config.ENTRY)


def exit_status(code: object) -> int:
    """What `sys.exit(code)` means as a process status (as CPython's own exit handling)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_entry() -> int:
    """Run the guest's entry as ``__main__``; returns its exit status."""
    module = types.ModuleType("__main__")
    module.__file__ = _ORIGIN
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    try:
        exec(_CODE, module.__dict__)
    except SystemExit as stop:
        return exit_status(stop.code)
    except BaseException as error:  # noqa: BLE001 - the guest's failure: report it as python does
        traceback.print_exc()
        missing = getattr(error, "name", None) if isinstance(error, ImportError) else None
        if missing in _FAILED:  # the real reason is the build-time one, not "not found"
            print(f"(importing {missing} failed when the component was built: "
                  f"{_FAILED[missing]})", file=sys.stderr)
        return 1
    return 0


class Run(exports.Run):
    """`wasi:cli/run`: what `wasmtime run` calls."""

    def run(self) -> None:
        status = run_entry()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed stream must not hide the status
                pass
        if status != 0:
            raise Err(None)

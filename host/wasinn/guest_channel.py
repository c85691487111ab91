"""The host's reasons for failed wasi-nn calls, for the user and for the guest's SDK.

The `wasi_ephemeral_nn` ABI returns only an errno, so by default a guest's user saw
`compute failed: runtime_error (5)` while the host knew ONNX Runtime's exact complaint. Two
routes carry that reason now, neither changing the ABI or adding an import (a module importing
anything Wasmtime or WasmEdge lack would not instantiate there):

* stderr: one line per failed call, `wasinn: wasi-nn compute: runtime_error: <reason>`, except
  for the expected `too_large` size probe of `get_output` (and with `--verbose`, whose trace
  line already says it);
* a read-only folder preopened at `/.wasinn` holding `last-error` (`function`, errno, reason on
  three lines) and `preopens` (the guest paths given with --dir, one a line). The SDK reads
  them when it raises `WasiNnError` (its `detail`) and for the `--dir` hint on an uncaught
  FileNotFoundError. On other hosts the folder does not exist, and `detail` stays None.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Sequence

from .nn.errors import Errno, errno_name

GUEST_PATH = "/.wasinn"
MAX_REASON = 4000
MEMORY_FOLDER = "/dev/shm"


def _private_folder() -> Path:
    """A new folder only this user can enter, like tempfile.mkdtemp: a random name, created
    exclusively (never an existing path or symlink), mode 0700.

    In memory when there is a /dev/shm: on a disk-backed /tmp, creating the folder and its file
    and removing them again costs ~4 ms of every run (journal writes), on tmpfs ~30 us. There
    the folders live in this user's `wasinn-<uid>` folder, named after the process, so a run
    that could not clean up (a hard deadline or Ctrl-C ends the process with `os._exit` while
    the guest is stuck) leaves nothing in memory for long: the next run removes the folders of
    processes that are gone. Not tempfile itself: its import alone costs ~3 ms of a start-up.
    """
    parent = _memory_parent()
    if parent is not None:
        _remove_orphans(parent)
        for _ in range(100):
            path = os.path.join(parent, f"run-{os.getpid()}-{os.urandom(6).hex()}")
            try:
                os.mkdir(path, 0o700)
                return Path(path)
            except FileExistsError:
                continue
            except OSError:
                break                    # full: the usual temporary folder
    import tempfile

    return Path(tempfile.mkdtemp(prefix="wasinn-run-"))


def _memory_parent() -> str | None:
    """`MEMORY_FOLDER/wasinn-<uid>`, created 0700 when missing; None when there is no memory
    folder or the parent is not a folder that is ours alone (then it is not used)."""
    parent = os.path.join(MEMORY_FOLDER, f"wasinn-{os.getuid()}")
    try:
        os.mkdir(parent, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        info = os.lstat(parent)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None                      # a symlink, someone else's, or open to others
    return parent


def _remove_orphans(parent: str) -> None:
    """Remove the run folders in `parent` whose process no longer exists."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        kind, _, rest = name.partition("-")
        pid_text = rest.partition("-")[0]
        if kind != "run" or not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        try:
            os.kill(int(pid_text), 0)
            continue                     # still running (or another user's pid: leave it)
        except ProcessLookupError:
            pass
        except OSError:
            continue
        shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


class GuestChannel:
    """A per-run temporary folder the guest sees (read-only) at GUEST_PATH."""

    def __init__(self, preopens: Sequence[str], *, echo: bool = True) -> None:
        self.preopens = list(preopens)
        self.echo = echo
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        """The folder, made on first use: only guests from `wasinn build` get it preopened, so
        other modules' runs never pay for a temporary folder (or for importing tempfile)."""
        if self._folder is None:
            self._folder = _private_folder()
            (self._folder / "preopens").write_text("".join(f"{p}\n" for p in self.preopens))
        return self._folder

    def failed(self, function: str, errno: int, reason: str) -> None:
        """A wasi-nn call failed: tell the user (stderr) and leave the reason for the SDK."""
        if errno == Errno.TOO_LARGE:
            return              # the SDK's output-size discovery: expected, not an error
        reason = " ".join(reason.split())[:MAX_REASON]
        if self.echo:
            print(f"wasinn: wasi-nn {function}: {errno_name(errno)}: {reason}", file=sys.stderr,
                  flush=True)
        if self._folder is None:
            return              # no guest can see the folder: nothing to leave there
        try:
            target = self.folder / "last-error"
            temporary = self.folder / ".last-error.tmp"
            temporary.write_text(f"{function}\n{int(errno)}\n{reason}\n", encoding="utf-8")
            temporary.replace(target)
        except OSError:
            pass                # the stderr line is the one that matters

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

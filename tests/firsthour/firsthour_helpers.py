"""Running the `wasinn` command as a user does, for issue 9's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def wasinn(*args: str, cwd: Path | None = None, timeout: float = 300,
           env_extra: dict[str, str] | None = None,
           input: bytes | None = None) -> subprocess.CompletedProcess:
    """`python -m wasinn ARGS` as a user runs it (text output)."""
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "wasinn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, input=input)

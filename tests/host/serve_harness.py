"""A real `wasinn serve` subprocess on a free loopback port, and a tiny HTTP client."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

BANNER = re.compile(r"on http://([\d.]+):(\d+)/")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Server:
    """`python -m wasinn serve --port 0 ARGS…`, waited for until it prints where it listens."""

    def __init__(self, args: Sequence[str | Path], start_timeout: float = 180) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wasinn", "serve", "--port", "0", *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + start_timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            match = BANNER.search(line)
            if match:
                self.host, self.port = match.group(1), int(match.group(2))
                return
            if not line and self.process.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"wasinn serve did not start: {line!r}\n{self.process.stderr.read()}")

    def request(self, method: str, path: str = "/", body: bytes | None = None,
                headers: dict | None = None, timeout: float = 60) -> Reply:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         response.read())
        finally:
            connection.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stderr(self) -> str:
        return self.process.stderr.read() if self.process.poll() is not None else ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False

"""`wasinn serve`: a real server subprocess answering real HTTP over loopback.

The probe guest's mode comes from `?arg=`; the body is the file /files/body.bin (`{}`).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from pool_guest import build_guest
from serve_harness import Server

pytest.importorskip("uvicorn", reason="wasinn serve needs the serve extra (pip install -e '.[serve]')")
pytest.importorskip("starlette")


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return build_guest("pool_probe", tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(probe: Path, torch_linear_path: Path):
    server = Server(["--workers", "2", "--max-queue", "1", "--max-body", "64K", "--timeout", "2",
                     "--body-file", "body.bin", "--nn-preload", f"lin:PyTorch:CPU:{torch_linear_path}",
                     probe])
    yield server
    code = server.stop()
    assert code == 0, server.stderr()


def test_a_request_runs_the_guest_on_the_body(server: Server):
    reply = server.request("POST", "/?arg=cat&arg={}", b"\x00payload\xff")
    assert reply.status == 200 and reply.body == b"\x00payload\xff"
    assert reply.headers["x-wasinn-exit-code"] == "0"
    reply = server.request("POST", "/?arg=infer&arg=2", b"")
    assert reply.status == 200 and len(json.loads(reply.body)) == 2


def test_oversized_bodies_are_413_and_the_server_keeps_serving(server: Server):
    # Refused on the declared length, before the body is read (none is sent here).
    with socket.create_connection((server.host, server.port), timeout=30) as raw:
        raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 66560\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 413")
    # Chunked, with no declared length: refused once 64 KiB have arrived.
    with socket.create_connection((server.host, server.port), timeout=30) as raw:
        raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(200):
                raw.sendall(b"400\r\n" + b"y" * 1024 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass                                   # the server answered and closed: expected
        answer = b""
        while b"--max-body" not in answer:
            chunk = raw.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b"--max-body" in answer
    assert server.request("POST", "/?arg=cat&arg={}", b"ok").body == b"ok"


def test_malformed_requests_are_4xx(server: Server):
    assert server.request("POST", "/?mode=x", b"").status == 400
    assert server.request("POST", "/?arg=a%00b", b"").status == 400
    assert server.request("GET", "/").status == 405
    assert server.request("POST", "/health", b"").status == 405
    assert server.request("POST", "/nowhere", b"").status == 404
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        raw.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    assert server.request("POST", "/?arg=cat&arg={}", b"still up").body == b"still up"


def test_guest_failures_are_5xx_or_422_with_the_reason(server: Server):
    crash = server.request("POST", "/?arg=crash", b"")
    assert crash.status == 500 and "trapped" in crash.json()["error"]
    failed = server.request("POST", "/?arg=exit&arg=3", b"")
    assert failed.status == 422 and failed.json()["exit_code"] == 3
    assert "exiting as asked" in failed.json()["stderr"]
    slow = server.request("POST", "/?arg=spin", b"")
    assert slow.status == 504 and "timed out after 2 s" in slow.json()["error"]
    assert server.request("POST", "/?arg=cat&arg={}", b"alive").body == b"alive"


def test_busy_server_answers_503(server: Server):
    replies = []

    def spin() -> None:
        replies.append(server.request("POST", "/?arg=spin", b"").status)

    threads = [threading.Thread(target=spin) for _ in range(3)]   # 2 workers + 1 queued
    for thread in threads:
        thread.start()
    time.sleep(0.8)
    busy = server.request("POST", "/?arg=cat&arg={}", b"x")
    for thread in threads:
        thread.join()
    assert busy.status == 503 and busy.headers.get("retry-after") == "1"
    assert sorted(replies) == [504, 504, 504]


def test_health_and_metrics(server: Server):
    health = server.request("GET", "/health").json()
    assert health["status"] == "ok" and health["models"] == ["lin"] and health["workers"] == 2
    before = server.request("GET", "/metrics").json()
    for _ in range(3):
        server.request("POST", "/?arg=cat&arg={}", b"m")
    server.request("POST", "/?arg=exit&arg=1", b"")
    after = server.request("GET", "/metrics").json()
    assert after["calls"] - before["calls"] == 4
    assert after["errors"] - before["errors"] == 1
    assert after["by_status"]["422"] >= 1
    latency = after["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"]


def test_graceful_shutdown_finishes_the_request_in_flight(probe: Path):
    server = Server(["--workers", "1", "--body-file", "b", probe])
    replies = []
    thread = threading.Thread(
        target=lambda: replies.append(server.request("POST", "/?arg=sleep&arg=1.5", b"")))
    thread.start()
    time.sleep(0.5)
    assert server.stop() == 0
    thread.join()
    assert replies[0].status == 200 and replies[0].body == b"slept\n"


def test_bad_server_arguments_exit_2(probe: Path, tmp_path: Path):
    import subprocess
    import sys

    for args in (["--nn-preload", "x:OpenVINO:CPU:/missing.xml", probe],
                 [tmp_path / "missing.wasm"],
                 ["--body-file", "../up", probe],
                 ["--port", "70000", probe]):
        result = subprocess.run([sys.executable, "-m", "wasinn", "serve", *map(str, args)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().splitlines()[-1].startswith("wasinn serve: error:") or \
            "error:" in result.stderr

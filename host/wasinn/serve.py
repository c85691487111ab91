"""`wasinn serve`: one HTTP request = one fresh guest call on a `GuestPool`.

The request body becomes the guest's stdin (or, with `body_file`, a file in the call's private
folder); the response is the guest's stdout. Status codes (docs/serving.md):

    200  the guest exited 0                    422  the guest exited non-zero (it refused the input)
    500  the guest trapped (crashed)           504  the guest ran past its timeout
    413  body larger than the limit            503  every worker busy and the queue full
    400  malformed request (bad query)         404 / 405  unknown path / method

`GET /health` and `GET /metrics` answer JSON. `GuestHandler` holds the pool, the limits and the
metrics and answers a Starlette `Request`; the plain server (Starlette on uvicorn) and each Ray
Serve replica (`wasinn.scale`) use the same handler.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .pool import GuestPool

DEFAULT_MAX_BODY = 16 << 20
DEFAULT_PORT = 8000
LATENCY_WINDOW = 10_000     # the percentiles cover the last this-many calls
STDERR_TAIL = 4096          # bytes of a failed guest's stderr put in the error response


@dataclass
class ServeOptions:
    """Everything `wasinn serve` needs; also what a Ray Serve replica is built from."""

    module: Path
    args: Sequence[str] = ()
    preload: Sequence[str] = ()
    dirs: Sequence[tuple[str, str]] = ()
    env: Sequence[tuple[str, str]] = ()
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 2
    max_queue: int = 64
    max_body: int = DEFAULT_MAX_BODY
    timeout: float | None = 30.0
    max_memory: int | None = None
    max_graphs: int = 64
    max_contexts: int = 256
    body_file: str | None = None
    content_type: str = "text/plain; charset=utf-8"
    cache: bool = True
    verbose: bool = False
    ray_address: str | None = None

    def open_pool(self) -> GuestPool:
        return GuestPool(self.module, preload=self.preload, dirs=self.dirs, env=self.env,
                         timeout=self.timeout, max_memory=self.max_memory,
                         max_graphs=self.max_graphs, max_contexts=self.max_contexts,
                         cache=self.cache, verbose=self.verbose)


class Metrics:
    """Counters and a window of latencies; safe to update from the event loop and threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.calls = 0
        self.errors = 0
        self.rejected = 0
        self.by_status: dict[int, int] = {}
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def record(self, status: int, seconds: float | None) -> None:
        with self._lock:
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if status in (413, 503, 400):
                self.rejected += 1
                return
            self.calls += 1
            if status != 200:
                self.errors += 1
            if seconds is not None:
                self._latencies.append(seconds * 1000)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            window = sorted(self._latencies)
            by_status = {str(k): v for k, v in sorted(self.by_status.items())}
            calls, errors, rejected = self.calls, self.errors, self.rejected

        def percentile(p: float) -> float | None:
            if not window:
                return None
            return round(window[min(len(window) - 1, int(p / 100 * len(window)))], 3)

        return {"calls": calls, "errors": errors, "rejected": rejected, "by_status": by_status,
                "latency_ms": {"p50": percentile(50), "p90": percentile(90),
                               "p99": percentile(99), "window": len(window)},
                "uptime_s": round(time.time() - self.started, 1)}


class _TooLarge(Exception):
    pass


class GuestHandler:
    """Answers HTTP requests with guest calls on one pool, within the server's limits."""

    def __init__(self, pool: GuestPool, options: ServeOptions) -> None:
        import anyio

        self.pool = pool
        self.options = options
        self.metrics = Metrics()
        self._limiter = anyio.CapacityLimiter(options.workers)
        self._admitted = 0
        self.draining = False

    # -- dispatch -------------------------------------------------------------------------
    async def __call__(self, request: Any) -> Any:
        path, method = request.url.path.rstrip("/") or "/", request.method
        if path == "/health":
            return self._only_get(method) or self._health()
        if path == "/metrics":
            return self._only_get(method) or self._json(200, self.metrics.snapshot()
                                                        | self._load())
        if path == "/":
            if method != "POST":
                return self._json(405, {"error": "POST the input to /"}, {"Allow": "POST"})
            return await self._run(request)
        return self._json(404, {"error": f"no such path {request.url.path!r}; "
                                          "POST / runs the guest, GET /health, GET /metrics"})

    def _only_get(self, method: str) -> Any:
        if method not in ("GET", "HEAD"):
            return self._json(405, {"error": "use GET"}, {"Allow": "GET"})
        return None

    def _load(self) -> dict[str, int]:
        running = int(self._limiter.borrowed_tokens)
        return {"in_flight": running, "queued": max(self._admitted - running, 0),
                "workers": self.options.workers}

    def _health(self) -> Any:
        return self._json(200, {"status": "draining" if self.draining else "ok",
                                "module": self.pool.name, "models": self.pool.registry.names(),
                                "pid": os.getpid()}
                          | self._load())

    # -- a guest call ---------------------------------------------------------------------
    async def _run(self, request: Any) -> Any:
        import anyio

        options = self.options
        try:
            args = self._args(request)
        except ValueError as error:
            self.metrics.record(400, None)
            return self._json(400, {"error": str(error)})
        if self._admitted >= options.workers + options.max_queue:
            self.metrics.record(503, None)
            return self._json(503, {"error": f"busy: {options.workers} guests running and "
                                             f"{options.max_queue} waiting"},
                              {"Retry-After": "1"})
        self._admitted += 1
        try:
            try:
                body = await self._body(request)
            except _TooLarge:
                self.metrics.record(413, None)
                return self._json(413, {"error": f"request body larger than {options.max_body} "
                                                 "bytes (--max-body)"})
            call = self._call_kwargs(args, body)
            started = time.perf_counter()
            try:
                result = await anyio.to_thread.run_sync(lambda: self.pool.call(**call),
                                                        limiter=self._limiter)
            except Exception as error:  # noqa: BLE001 - the host failed, not the guest: 500
                self.metrics.record(500, time.perf_counter() - started)
                return self._json(500, {"error": f"wasinn could not run the guest: "
                                                 f"{type(error).__name__}: {error}"})
            elapsed = time.perf_counter() - started
        finally:
            self._admitted -= 1
        headers = {"X-Wasinn-Exit-Code": str(result.exit_code),
                   "X-Wasinn-Run-Ms": f"{result.timings.run_ms:.1f}"}
        if result.ok:
            self.metrics.record(200, elapsed)
            return self._response(200, result.stdout, options.content_type, headers)
        if result.timed_out:
            status, reason = 504, result.error
        elif result.trapped:
            status, reason = 500, result.error
        else:
            status, reason = 422, f"the guest exited with code {result.exit_code}"
        self.metrics.record(status, elapsed)
        return self._json(status, {"error": (reason or "").removeprefix("wasinn: "),
                                   "exit_code": result.exit_code,
                                   "stderr": result.stderr[-STDERR_TAIL:].decode("utf-8", "replace"),
                                   "stdout": result.stdout[-STDERR_TAIL:].decode("utf-8", "replace")},
                          headers)

    def _args(self, request: Any) -> list[str]:
        """The server's ARGS plus `?arg=` values; `{}` is the body file's guest path."""
        extra = request.query_params.getlist("arg")
        unknown = set(request.query_params.keys()) - {"arg"}
        if unknown:
            raise ValueError(f"unknown query parameter(s) {', '.join(sorted(unknown))}; "
                             "only arg=VALUE (repeatable)")
        args = [*self.options.args, *extra]
        if any("\0" in a for a in args):
            raise ValueError("an arg contains a NUL character")
        if self.options.body_file is not None:
            where = f"{self.pool.files_dir.rstrip('/')}/{self.options.body_file}"
            args = [a.replace("{}", where) for a in args]
        return args

    def _call_kwargs(self, args: list[str], body: bytes) -> dict[str, Any]:
        if self.options.body_file is not None:
            return {"args": args, "files": {self.options.body_file: body}}
        return {"args": args, "stdin": body}

    async def _body(self, request: Any) -> bytes:
        limit = self.options.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    # -- responses ------------------------------------------------------------------------
    @staticmethod
    def _response(status: int, body: bytes, media_type: str, headers: dict | None = None) -> Any:
        from starlette.responses import Response

        return Response(body, status_code=status, media_type=media_type, headers=headers)

    @staticmethod
    def _json(status: int, payload: dict, headers: dict | None = None) -> Any:
        from starlette.responses import Response

        return Response(json.dumps(payload) + "\n", status_code=status,
                        media_type="application/json", headers=headers)


def make_app(handler: GuestHandler) -> Any:
    """The Starlette app: every path goes to the handler; the pool closes at shutdown."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.routing import Route

    @contextlib.asynccontextmanager
    async def lifespan(app: Any):
        yield
        handler.draining = True
        handler.pool.close()

    async def endpoint(request: Any) -> Any:
        return await handler(request)

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)], lifespan=lifespan)


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that SIGTERM/SIGINT mean "drain, then exit 0".

        (uvicorn re-raises the signal after its graceful shutdown, so the process would die of
        it; for `wasinn serve` a requested stop that completed cleanly is a success.)
        """

        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            getattr(self, "_captured_signals", []).clear()

    return Server


def serve(options: ServeOptions) -> int:
    """Open the pool (models compiled first), then serve until SIGINT/SIGTERM; returns 0."""
    import uvicorn

    print(f"wasinn serve: loading {options.module} and compiling "
          f"{len(options.preload)} model(s)...", file=sys.stderr, flush=True)
    pool = options.open_pool()
    try:
        listener = socket.create_server((options.host, options.port), reuse_port=False)
    except OSError as error:
        pool.close()
        from .runner import HostError

        raise HostError(f"cannot listen on {options.host}:{options.port}: "
                        f"{error.strerror or error}") from None
    host, port = listener.getsockname()[:2]
    handler = GuestHandler(pool, options)
    config = uvicorn.Config(make_app(handler), log_level="info" if options.verbose else "warning",
                            timeout_graceful_shutdown=(options.timeout or 30) + 5,
                            limit_concurrency=None, access_log=options.verbose)
    server = _server_class()(config)
    print(f"wasinn serve: {pool.name} on http://{host}:{port}/ ({options.workers} workers; "
          "POST / runs the guest, GET /health, GET /metrics; Ctrl-C stops)", flush=True)
    server.run(sockets=[listener])
    print("wasinn serve: stopped", file=sys.stderr, flush=True)
    return 0

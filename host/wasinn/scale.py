"""Scale-out on Ray (`pip install wasinn[ray]`): `wasinn serve --ray` and `wasinn map --ray`.

Both put a `GuestPool` in each Ray actor, so every actor opens the module and compiles the
models once and then runs a fresh guest per request or input:

* `serve --ray`: a Ray Serve deployment of N replicas; each replica answers requests with the
  same `GuestHandler` as the plain server (so /health and /metrics describe the replica that
  answered).
* `map --ray`: N actors; the driver reads each input and sends its bytes (so inputs need not be
  on the workers' disks), and writes each result as it comes back. An actor that dies (a
  backend crash, a lost node) fails the input it held and is replaced.

`ray_address` (or the RAY_ADDRESS environment variable) joins an existing cluster, e.g.
`ray://head:10001` or `auto`; without one a local cluster is started. The module and model
paths must exist on every node (same container image, or a shared volume): docs/serving.md.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any, Callable, Sequence

from .runner import HostError


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HostError("Ray is not installed; install it with: pip install 'wasinn[ray]'") from None
    return ray


def start_ray(address: str | None, cpus_wanted: int) -> Any:
    """Join the cluster at `address` (or RAY_ADDRESS), else start a local one."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                              "configure_logging": True, "logging_level": "warning"}
    if address is None:
        # A local cluster: let every actor start even on a machine with fewer cores.
        kwargs["num_cpus"] = max(cpus_wanted, os.cpu_count() or 1)
    print(f"wasinn: {'joining Ray at ' + address if address else 'starting a local Ray cluster'}...",
          file=sys.stderr, flush=True)
    try:
        ray.init(address=address, **kwargs)
    except Exception as error:  # noqa: BLE001 - connection errors etc., one line
        raise HostError(f"cannot start or join Ray ({address or 'local'}): {error}") from None
    return ray


# -- map ------------------------------------------------------------------------------------

class _MapWorker:
    """A Ray actor holding one pool; `run` is `batch.run_item` on bytes sent by the driver."""

    def __init__(self, options: Any) -> None:
        self.options = options
        self.pool = options.open_pool()

    def run(self, key: str, path: str, data: bytes) -> Any:
        from .batch import run_item

        return run_item(self.pool, self.options, key, path, data)


def map_on_ray(options: Any, items: Sequence[Any], done: Callable[[Any], None]) -> None:
    """Each input to an idle actor; results to `done` as they finish (any order)."""
    from .batch import ItemResult

    ray = start_ray(options.ray_address, options.actors)
    worker_class = ray.remote(num_cpus=1)(_MapWorker)
    try:
        actors = [worker_class.remote(options) for _ in range(options.actors)]
        idle = list(actors)
        in_flight: dict[Any, tuple[Any, Any]] = {}

        def collect_one() -> None:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            item, actor = in_flight.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayActorError as error:
                result = ItemResult(item.key, item.path, 2, False, 0.0,
                                    error=f"the Ray actor died: {str(error).splitlines()[0]}")
                actor = worker_class.remote(options)
            except ray.exceptions.RayError as error:
                first = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
                if "HostError" in str(error):
                    raise HostError(f"an actor could not open the pool: {first}") from None
                result = ItemResult(item.key, item.path, 2, False, 0.0, error=first)
            idle.append(actor)
            done(result)

        for item in items:
            while not idle:
                collect_one()
            try:
                with open(item.path, "rb") as handle:
                    data = handle.read()
            except OSError as error:
                done(ItemResult(item.key, item.path, 2, False, 0.0,
                                error=f"cannot read: {error.strerror or error}"))
                continue
            actor = idle.pop()
            in_flight[actor.run.remote(item.key, item.path, data)] = (item, actor)
        while in_flight:
            collect_one()
    finally:
        ray.shutdown()


# -- serve ----------------------------------------------------------------------------------

class _ServeReplica:
    """A Ray Serve replica: one pool and the plain server's handler."""

    def __init__(self, options: Any) -> None:
        from .serve import GuestHandler

        self.handler = GuestHandler(options.open_pool(), options)

    async def __call__(self, request: Any) -> Any:
        return await self.handler(request)


def serve_on_ray(options: Any, replicas: int) -> int:
    """Deploy `replicas` replicas behind Ray Serve's HTTP proxy; runs until SIGINT/SIGTERM."""
    ray = start_ray(options.ray_address, replicas)
    from ray import serve

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": options.host, "port": options.port})
        deployment = serve.deployment(
            name="wasinn", num_replicas=replicas,
            ray_actor_options={"num_cpus": 1},
            max_ongoing_requests=options.workers + options.max_queue)(_ServeReplica)
        print(f"wasinn serve --ray: deploying {replicas} replica(s) of {options.module.name} "
              "(each compiles the models)...", file=sys.stderr, flush=True)
        serve.run(deployment.bind(options), name="wasinn", route_prefix="/", blocking=False)
        print(f"wasinn serve: {options.module.name} on http://{options.host}:{options.port}/ "
              f"({replicas} Ray Serve replicas; POST / runs the guest, GET /health, "
              "GET /metrics; Ctrl-C stops)", flush=True)
        stop.wait()
    except HostError:
        raise
    except Exception as error:  # noqa: BLE001 - a failed deployment, one line
        raise HostError(f"Ray Serve deployment failed: {str(error).strip().splitlines()[-1]}") from None
    finally:
        print("wasinn serve: shutting down Ray Serve", file=sys.stderr, flush=True)
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    return 0

"""What one request and its reply between two processes cost on this machine, by where the
two processes run: the floor under every call the backend worker serves.

    python benchmarks/wakeups.py [--work-us 3000] [--calls 400]

A parent sends a byte over a SOCK_SEQPACKET socket pair, a forked child busy-waits
`--work-us` (a compute) and replies; the figure is the round trip minus that work (median),
for three placements:

* free: where the scheduler puts them (on an idle machine: two CPUs, each side asleep while
  the other works, so every message wakes a CPU that has gone idle);
* one CPU: both pinned to the first CPU this process may use (every wake-up is local);
* two CPUs: pinned apart, on the first two.

On this 2-vCPU KVM machine (session 5) a 3 ms compute's round trip cost 70-100 us free or
apart and 17-21 us on one CPU: waking a halted vCPU is most of it. That is why the worker's
waiting side polls while messages come quickly (transport.Cadence, transport.Forecast);
pinning both sides to one CPU was measured too and does not pay in the real guests
(docs/host.md, "The backend worker").
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time

PLACEMENTS = ("free", "one CPU", "two CPUs")


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def round_trip_overhead(placement: str, work_us: float, calls: int) -> float:
    """Median microseconds a request + reply adds to `work_us` of work in the other process."""
    mask = os.sched_getaffinity(0)
    first, *others = sorted(mask)                  # CPU 0 may not be ours (taskset, cpusets)
    child_cpu = first if placement == "one CPU" else (others or [first])[0]
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:                                   # the child: the "worker"
        parent_end.close()
        try:
            if placement != "free":
                os.sched_setaffinity(0, {child_cpu})
            while child_end.recv(16):
                started = time.perf_counter()
                _busy(work_us * 1e-6)
                child_end.send(int((time.perf_counter() - started) * 1e9).to_bytes(8, "little"))
        finally:
            os._exit(0)
    child_end.close()
    try:
        if placement != "free":
            os.sched_setaffinity(0, {first})
        overheads = []
        for _ in range(calls):
            started = time.perf_counter_ns()
            parent_end.send(b"x")
            worked = int.from_bytes(parent_end.recv(16), "little")
            overheads.append((time.perf_counter_ns() - started - worked) / 1e3)
            _busy(200e-6)                          # the guest's own work between two calls
    finally:
        os.sched_setaffinity(0, mask)
        parent_end.close()
        os.waitpid(pid, 0)
    return statistics.median(overheads[len(overheads) // 10:])   # the first tenth warms up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-us", type=float, default=3000.0,
                        help="the child's busy compute per call, µs (3000: a MobileNetV2)")
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args(argv)
    if not 0 <= args.work_us <= 1e6 or args.calls < 10:     # nan and inf fail too
        parser.error("--work-us must be 0..1000000 and --calls >= 10")
    placements = PLACEMENTS if len(os.sched_getaffinity(0)) >= 2 else ("free",)
    print(f"request + reply around a {args.work_us:.0f} µs compute in another process, "
          f"median of {args.calls}:")
    print("| placement | round trip minus the compute |")
    print("| --- | --- |")
    for placement in placements:
        overhead = round_trip_overhead(placement, args.work_us, args.calls)
        print(f"| {placement} | {overhead:.1f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

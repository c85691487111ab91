"""Run the guest's thread and the worker's serving thread on one CPU while the worker's computes
are single-threaded (GGML with `threads` 1).

A request and its reply between two CPUs each wake a CPU that went idle; on a virtual machine
that is the hypervisor waking a halted vCPU: 50-500 us per message on the KVM and Firecracker
machines measured (benchmarks/wakeups.py), against ~20 us between two threads of one CPU.
Polling for the reply instead keeps the other vCPU busy, and on these machines a busy vCPU
slows its sibling's compute (a spinning thread slowed OpenVINO by 16-19 %; see docs/host.md).
A single-threaded compute needs one CPU, and the guest's thread sleeps while it runs: so both
threads go on the CPU the guest's thread is on, every hand-off is local, and the other CPU
stays idle. Measured with `benchmarks/llm.py --paired` (the tiny GGUF's 186-token prompt):
0.92 -> 0.97 of llama.cpp called directly; 0.95 -> 0.99 for a 750-token one.

Pinning has one risk: a pinned thread cannot be moved when something else wants its CPU.
So the guest's thread checks, every CHECK_SECONDS, how much of its CPU's time went to
threads other than the two colocated ones; more than CONTENDED and the colocation ends for
good (`given_up`). It also ends, restoring both threads' CPUs, whenever a compute is not
single-threaded, the worker restarts, or another thread uses the worker (a pool).
"""

from __future__ import annotations

import os
import threading
import time


def current_cpu() -> int | None:
    """The CPU the calling thread runs on (field 39 of /proc/thread-self/stat)."""
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[36])
    except (OSError, IndexError, ValueError):
        return None


def run_time(path: str = "/proc/thread-self/schedstat") -> float | None:
    """Seconds a thread has run so far (its schedstat's first field: ns)."""
    try:
        with open(path, "rb") as stat:
            return int(stat.read().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def cpu_busy(cpu: int) -> float | None:
    """Seconds CPU `cpu` has spent running anything so far (/proc/stat, in clock ticks)."""
    label = f"cpu{cpu} ".encode()
    try:
        with open("/proc/stat", "rb") as stat:
            for line in stat:
                if line.startswith(label):
                    ticks = [int(value) for value in line.split()[1:]]
                    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
                    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        pass
    return None


class Colocation:
    """The host side: which thread is pinned to which CPU, and whether it still pays."""

    #: how often the pinned thread looks at who else used its CPU, and the share of the
    #: CPU's time others may take before the colocation ends (a busy process pinned to it
    #: takes ~half; a quiet machine's kernel threads ~1 %)
    CHECK_SECONDS = 0.5
    CONTENDED = 0.2

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and hasattr(os, "sched_setaffinity")
        self.given_up = False
        self.cpu: int | None = None
        self._thread: int | None = None
        self._native_id = 0
        self._mask: set[int] | None = None
        #: the worker's serving thread (its schedstat), whose time on the CPU is ours too
        self.worker_stat: str | None = None
        self._checked_at: tuple[float, float, float] | None = None   # wall, ours, busy

    @property
    def active(self) -> bool:
        """Whether the calling thread is the one pinned (its replies need no polling)."""
        return self.cpu is not None and self._thread == threading.get_ident()

    def pin(self) -> int | None:
        """Pin the calling thread to its CPU; the CPU, for the worker to follow (None: keep
        things as they are). Called after each single-threaded compute."""
        if not self.enabled or self.given_up:
            return None
        if self.cpu is not None:
            if self._thread != threading.get_ident():    # a second thread: not ours to pin
                return None
            if self._contended():
                self.given_up = True
            return None
        cpu = current_cpu()
        try:
            mask = os.sched_getaffinity(0)
            if cpu is None or cpu not in mask or len(mask) < 2:
                return None
            os.sched_setaffinity(0, {cpu})
        except OSError:
            return None
        self.cpu, self._thread, self._mask = cpu, threading.get_ident(), mask
        self._native_id = threading.get_native_id()
        self._checked_at = self._sample()
        return cpu

    def _sample(self) -> tuple[float, float, float] | None:
        """(now, seconds our two threads have run, seconds the CPU has been busy)."""
        ours = run_time()
        theirs = run_time(self.worker_stat) if self.worker_stat else 0.0
        busy = cpu_busy(self.cpu) if self.cpu is not None else None
        if ours is None or theirs is None or busy is None:
            return None
        return time.perf_counter(), ours + theirs, busy

    def _contended(self) -> bool:
        """Whether, since the last look (CHECK_SECONDS ago at least), other threads took
        more than CONTENDED of the pinned CPU's time."""
        before = self._checked_at
        if before is None or time.perf_counter() - before[0] < self.CHECK_SECONDS:
            return False
        now = self._sample()
        self._checked_at = now
        if now is None:
            return False
        others = (now[2] - before[2]) - (now[1] - before[1])
        return others > self.CONTENDED * (now[0] - before[0])

    def unpin(self) -> bool:
        """Give the pinned thread its CPUs back (from any thread); whether it was pinned."""
        if self.cpu is None:
            return False
        if self._mask is not None:
            try:
                os.sched_setaffinity(self._native_id, self._mask)
            except OSError:
                pass                       # the thread is gone: nothing to give back
        self.cpu = self._thread = self._mask = None
        return True

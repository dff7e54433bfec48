"""CPU threads and worker processes: defaults that use every core and degrade gracefully when other
processes share them.

Why: torch's defaults (one intra-op OpenMP thread per core, threads that spin while they wait at a barrier)
make a search on a 2-core machine ~18x slower as soon as one other process keeps one core busy: each
parallel region waits for the thread that shares its core with the other process, and the waiting threads
spin on the CPU that thread needs. And intra-op threads hardly pay on the small ops of SNN training (on 2
cores two threads were slower than one), while independent trials do. So:

- ``OMP_WAIT_POLICY=PASSIVE``: waiting OpenMP threads sleep instead of spinning. libgomp reads it once,
  when torch loads it, so it is set (unless the user set it) in ``sltsearch/__init__.py``, before any
  sltsearch module imports torch; a process that imported torch before sltsearch keeps torch's policy.
- trials run in parallel, ``workers`` at once with ``threads`` torch threads each, workers x threads = the
  usable cores (`plan`): by default one thread per worker and a worker per core (fewer when fewer trials are
  left). A worker never waits at a barrier for a thread on a busy core, so one busy core costs its share of
  the machine (on 2 cores: 1.5x in theory; see benchmarks/threads.py).

``--workers`` / ``--threads`` (or ``OMP_NUM_THREADS`` for the threads) override either; the other is then
chosen to fill the cores.
"""

from __future__ import annotations

import os

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
DEFAULT_WAIT_POLICY = "PASSIVE"


def set_default_wait_policy() -> None:
    """Waiting OpenMP threads sleep unless the user chose otherwise; only effective before torch loads."""
    os.environ.setdefault(WAIT_POLICY_ENV, DEFAULT_WAIT_POLICY)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and job schedulers restrict)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not every platform has affinity
        return os.cpu_count() or 1


def env_threads() -> int | None:
    """``OMP_NUM_THREADS`` when the user set it to a count."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) >= 1 else None


def plan(workers: int | None = None, threads: int | None = None, trials_left: int | None = None) -> tuple[int, int]:
    """(workers, torch threads per worker) for a search: what the caller chose, the other filling the usable
    cores; by default one thread per worker and a worker per core, never more workers than trials left.

    The default thread count stays 1 however few trials are left: torch's results differ in the last digits
    with the thread count, and a resumed search must give the tickets an uninterrupted one gives."""
    cores = usable_cores()
    threads = threads or env_threads()
    if workers is not None:
        return workers, threads or max(1, cores // workers)
    threads = threads or 1
    workers = max(1, cores // threads)
    if trials_left is not None:
        workers = max(1, min(workers, trials_left))
    return workers, threads


def wait_policy() -> str:
    """The OpenMP wait policy in force for this process (as libgomp read it from the environment)."""
    return os.environ.get(WAIT_POLICY_ENV, "default") or "default"


def configure_threads(threads: int) -> int:
    """Set torch's intra-op threads for this process and return the count."""
    import torch

    torch.set_num_threads(threads)
    return threads

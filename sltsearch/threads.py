"""CPU threads for torch: defaults that degrade gracefully when other processes share the cores.

Why: torch's defaults (one intra-op OpenMP thread per core, threads that spin while they wait at a barrier)
make a search on a 2-core machine ~18x slower as soon as one other process keeps one core busy: each
parallel region waits for the thread that shares its core with the other process, and the waiting threads
spin on the CPU that thread needs. Two choices bound the cost of a busy core to about its share:

- ``OMP_WAIT_POLICY=PASSIVE``: waiting OpenMP threads sleep instead of spinning. libgomp reads it once,
  when torch loads it, so it is set (unless the user set it) in ``sltsearch/__init__.py``, before any
  sltsearch module imports torch; a process that imported torch before sltsearch keeps torch's policy.
- half the usable cores as the default thread count (at least 1): the scheduler then finds an idle core
  for every thread while up to half the cores are busy elsewhere; the small ops of SNN training gain little
  from more threads (on 2 cores one thread is as fast as two, see results/benchmarks/threads.md).

``--threads`` / ``threads=`` (or ``OMP_NUM_THREADS``) overrides the count.
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


def default_threads() -> int:
    """``OMP_NUM_THREADS`` when the user set it, else half the usable cores (at least one)."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) >= 1:
        return int(env)
    return max(1, usable_cores() // 2)


def wait_policy() -> str:
    """The OpenMP wait policy in force for this process (as libgomp read it from the environment)."""
    return os.environ.get(WAIT_POLICY_ENV, "default") or "default"


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads (``threads``, else the default above) and return the count."""
    import torch

    count = default_threads() if threads is None else threads
    torch.set_num_threads(count)
    return count

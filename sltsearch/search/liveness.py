"""Which RUNNING trials are really running: an owner record and a heartbeat, for every storage.

Optuna's own heartbeat exists only for RDB storages, and a trial killed with SIGKILL stays RUNNING in a
journal file forever. Every trial sltsearch runs records its owner (host, pid, the process's start time)
and refreshes a heartbeat timestamp in its system attributes from a background thread. A RUNNING trial is
stale when its owner process on this host is gone, or (an owner on another host, or none recorded) when its
heartbeat has not changed for the grace period. Stale trials are failed, and the driver runs their
parameters again.

Silence is timed on the observer's own monotonic clock (`StalenessWatch`), never by comparing the heartbeat's
timestamp, written by the owner's clock, with the observer's: two hosts whose clocks disagree by more than the
grace period made every trial of the slower one look dead to the faster one. The price: an observer that
starts while a trial's owner is already dead waits one grace period before it fails the trial.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sltsearch.compat import optuna as optuna_compat
from sltsearch.errors import warn

OWNER = "sltsearch:owner"
BEAT = "sltsearch:heartbeat"
END = "sltsearch:end"  # why a trial ended without finishing: interrupted | stale | error | surplus
HEARTBEAT_S = 20.0
GRACE_S = 120.0


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), None where /proc is absent."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (tells a reused pid apart), None where /proc is absent."""
    fields = _stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def owner_record() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid)}


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """True / False for an owner on this host; None when it runs elsewhere (only the heartbeat can tell)."""
    if owner.get("host") != socket.gethostname():
        return None
    pid = int(owner.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    fields = _stat(pid)
    if fields is not None and fields[0] in ("Z", "X"):  # dead, its exit not yet collected by its parent
        return False
    start = owner.get("start")
    return start is None or _process_start(pid) in (None, start)


class StalenessWatch:
    """One observer's record of the RUNNING trials it has seen: each one's last heartbeat value and when, on this
    process's monotonic clock, that value was first seen. A heartbeat's value is only compared for change."""

    def __init__(self, grace_s: float = GRACE_S) -> None:
        self.grace_s = grace_s
        self._seen: dict[int, tuple[Any, float]] = {}  # trial number -> (heartbeat value, first seen at)

    def is_stale(self, trial: FrozenTrial) -> bool:
        """Whether ``trial``'s owner is gone: dead on this host, or silent for ``grace_s`` of this clock."""
        if trial.state != TrialState.RUNNING:
            self._seen.pop(trial.number, None)
            return False
        owner = trial.system_attrs.get(OWNER)
        alive = owner_alive(owner) if owner is not None else None
        if alive is not None:
            return not alive
        beat = trial.system_attrs.get(BEAT)  # None: started by plain Optuna or an old version (no heartbeat)
        now = time.monotonic()
        seen = self._seen.get(trial.number)
        if seen is None or seen[0] != beat:
            self._seen[trial.number] = (beat, now)
            return False
        return now - seen[1] > self.grace_s

    def forget(self, running: set[int]) -> None:
        """Drop the trials that ended (keeps the record as small as the trials running)."""
        for number in set(self._seen) - running:
            del self._seen[number]


def fail_stale_trials(study: optuna.Study, watch: StalenessWatch) -> list[FrozenTrial]:
    """Fail every stale RUNNING trial of ``study``; returns them (their parameters are worth a rerun)."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    watch.forget({t.number for t in running})
    stale = [t for t in running if watch.is_stale(t)]
    storage = optuna_compat.storage_of(study)  # the public Study API cannot end another process's trial
    failed = []
    for trial in stale:
        try:
            optuna_compat.set_system_attr(storage, trial, END, "stale")
        except (RuntimeError, ValueError):  # another worker ended it first
            continue
        if optuna_compat.fail_trial(storage, trial):
            failed.append(trial)
    return failed


def claim(trial: optuna.Trial) -> None:
    """Record this process as the owner of ``trial``, with a first heartbeat: from now on the trial is
    taken (other workers never draw its parameters) and stale as soon as this process dies."""
    storage = optuna_compat.trial_storage(trial)
    optuna_compat.set_system_attr(storage, trial, OWNER, owner_record())
    optuna_compat.set_system_attr(storage, trial, BEAT, time.time())


class Heartbeat:
    """Refreshes the heartbeat of a claimed trial until stopped (a context manager)."""

    def __init__(self, trial: optuna.Trial, interval_s: float = HEARTBEAT_S) -> None:
        self.trial = trial
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="sltsearch-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        try:
            self._thread.start()
        except RuntimeError as err:  # no thread left to this process: the trial runs on, and ends, unbeaten
            warn(f"trial {self.trial.number}: no heartbeat ({err}); workers on other hosts may take it as stale")
        return self

    def _beat(self) -> None:
        storage = optuna_compat.trial_storage(self.trial)
        while not self._stop.wait(self.interval_s):
            try:
                optuna_compat.set_system_attr(storage, self.trial, BEAT, time.time())
            except Exception:  # noqa: BLE001 - the trial ended meanwhile, or the storage hiccuped: try later
                continue

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

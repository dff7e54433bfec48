"""Optuna internals sltsearch relies on (pinned by tests/test_compat.py).

Optuna's public API ends a trial only through the `Study` that asked it, and gives no trial id: ending a
trial another process owns (a stale one) and writing a trial's system attributes (its owner, heartbeat and
why it ended) need the storage and the trial id, both private.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes (the object `optuna.create_study` was given)."""
    return study._storage  # noqa: SLF001


def trial_storage(trial: optuna.Trial) -> BaseStorage:
    """The storage of an asked trial's study."""
    return trial.storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """The storage's id of a trial (not its number)."""
    return trial._trial_id  # noqa: SLF001


def set_system_attr(storage: BaseStorage, trial: optuna.Trial | FrozenTrial, key: str, value: Any) -> None:
    """Write a system attribute of ``trial`` (Optuna 3 removed `Trial.set_system_attr`)."""
    storage.set_trial_system_attr(trial_id(trial), key, value)


def fail_trial(storage: BaseStorage, trial: FrozenTrial) -> bool:
    """End a RUNNING trial of another process as FAIL; False when it had ended meanwhile."""
    try:
        return storage.set_trial_state_values(trial_id(trial), TrialState.FAIL)
    except (RuntimeError, ValueError):  # finished by its owner, or by another worker, first
        return False

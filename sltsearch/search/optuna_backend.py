"""The Optuna backend: a multi-objective study in this process.

Storage is a journal file in the run folder by default (embedded, resumable). An RDB URL (e.g.
PostgreSQL) lets many `sltsearch run` processes on many machines share one study: each asks the study
for the next parameters and writes its tickets to its own run folder.
The value Optuna sees for a trial is its final IMP round's ticket; every round's ticket goes to the
ticket table, and fronts are computed over all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from sltsearch.errors import UserError
from sltsearch.search.space import suggest_params
from sltsearch.spec import Spec
from sltsearch.ticket import Ticket

JOURNAL_FILE = "study.journal"


def make_storage(spec: Spec, run_dir: Path, storage_url: str | None) -> BaseStorage:
    url = storage_url or spec.search.storage
    if url is None:
        return JournalStorage(JournalFileBackend(str(run_dir / JOURNAL_FILE)))
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=180)
    except Exception as err:  # noqa: BLE001 - any driver/connection error is a user-fixable URL problem
        raise UserError(f"search.storage: cannot open '{url}': {str(err).splitlines()[0]}") from None


def make_sampler(spec: Spec) -> BaseSampler:
    seed = spec.seed
    if spec.search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=spec.search.population_size, seed=seed)
    if spec.search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(spec: Spec, run_dir: Path, storage_url: str | None = None) -> optuna.Study:
    optuna.logging.set_verbosity(logging.WARNING)
    return optuna.create_study(
        study_name=spec.search.study_name or spec.name,
        storage=make_storage(spec, run_dir, storage_url),
        sampler=make_sampler(spec),
        directions=list(spec.objective.metrics.values()),
        load_if_exists=True,
    )


def finished_trials(study: optuna.Study) -> int:
    return len(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED))
    )


def optimize(
    spec: Spec,
    study: optuna.Study,
    run_one: Callable[[int, dict[str, Any]], list[Ticket]],
    on_trial_done: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> None:
    """Run trials until the study holds ``search.n_trials`` finished ones (or the timeout passes)."""
    metrics = list(spec.objective.metrics)

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        params = suggest_params(trial, spec.space)
        tickets = run_one(trial.number, params)
        final = tickets[-1]
        trial.set_user_attr("tickets", len(tickets))
        trial.set_user_attr("final_ticket", final.ticket_id)
        trial.set_user_attr("test_accuracy", final.test_accuracy)  # reported, never optimised
        return tuple(float(getattr(final, m)) for m in metrics)

    remaining = spec.search.n_trials - finished_trials(study)
    if remaining <= 0:
        return
    callbacks = [
        optuna.study.MaxTrialsCallback(spec.search.n_trials, states=(TrialState.COMPLETE, TrialState.FAIL))
    ]
    if on_trial_done:
        callbacks.append(on_trial_done)
    study.optimize(
        objective,
        n_trials=remaining,
        timeout=spec.search.timeout_s,
        callbacks=callbacks,
        catch=(ValueError, RuntimeError, UserError),
    )

"""The Optuna backend: a multi-objective study driven by an ask-and-tell loop in this process.

Storage is a journal file in the run folder by default (embedded, resumable). An RDB URL (e.g.
PostgreSQL) lets many `sltsearch run` processes on many machines share one study.
The value Optuna sees for a trial is its final IMP round's ticket; every round's ticket goes to the
ticket table, and fronts are computed over all of them.

The budget (``search.n_trials``) counts trials that finished (COMPLETE or PRUNED): a trial that failed or
was interrupted never uses it up. Interrupted, stale (killed) and failed trials have their parameters run
again once, first thing on the next run, so a rerun after Ctrl-C, SIGKILL or a fixed ``--device`` resumes
where the search stood. A search in which every trial fails stops after a bounded number of failures in a
row instead of looping.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState

from sltsearch.cache import warn
from sltsearch.errors import UserError
from sltsearch.results.record import Ticket
from sltsearch.search import liveness
from sltsearch.search.constraints import set_trial_constraints
from sltsearch.search.space import to_distributions
from sltsearch.secrets import check_url, mask_url
from sltsearch.spec import Spec
from sltsearch.trial_context import TrialAborted

JOURNAL_FILE = "study.journal"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
RETRY_OF = "retry_of"  # user attr of a trial that re-runs the parameters of trial N
ERROR = "error"  # user attr: the one-line error of a failed trial
DUPLICATE_OF = "duplicate_of"  # user attr of an asked trial never run: its parameters equal a finished trial's
MAX_REPEATS_IN_ROW = 100  # the sampler proposing only repeats this often means the space is exhausted


class SearchFailed(UserError):
    """Every recent trial failed: the search stops instead of burning through its budget."""


def _trim_torn_tail(path: Path, lock: JournalFileSymlinkLock) -> None:
    """Drop a half-written last journal line (a process killed inside a write): Optuna skips such a line
    while it is last, but the next append would glue onto it and make the whole journal unreadable."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    lock.acquire()
    try:
        data = path.read_bytes()
        if data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
        warn(f"{path}: dropped a half-written last line ({len(data) - keep} bytes) left by a killed process")
    finally:
        lock.release()


def driver_url(url: str) -> str:
    """``postgresql://`` means psycopg2 to SQLAlchemy; use psycopg 3 (the ``postgres`` extra) when only it is
    installed, so the URL users copy from their database works as it is."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in {"postgresql", "postgres"}:
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            return f"postgresql+psycopg://{rest}"
    return url


def make_storage(spec: Spec, run_dir: Path, storage_url: str | None) -> BaseStorage:
    url = storage_url or spec.search.storage
    if url is None:
        path = run_dir / JOURNAL_FILE
        lock = JournalFileSymlinkLock(str(path))
        _trim_torn_tail(path, lock)
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    check_url(url)  # a password with a raw '@' or space: refused before a driver prints a fragment of it
    try:
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(driver_url(url), engine_kwargs={"pool_pre_ping": True})
            except (IntegrityError, ProgrammingError):  # another worker made the schema at the same moment
                if attempt == 4:
                    raise
                time.sleep(1.0 + attempt)
        raise AssertionError("unreachable")
    except Exception as err:  # noqa: BLE001 - any driver/connection error is a user-fixable URL problem
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"search.storage: cannot open '{mask_url(url)}': {mask_url(message)}") from None


def make_sampler(spec: Spec, offset: int = 0) -> BaseSampler:
    """The spec's sampler; ``offset`` (the trials the study already holds) moves a resumed search's seed on,
    so it continues with new draws instead of repeating the first ones, while a fresh run stays reproducible."""
    seed = spec.seed + offset
    if spec.search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=spec.search.population_size, seed=seed)
    if spec.search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(spec: Spec, run_dir: Path, storage_url: str | None = None) -> optuna.Study:
    optuna.logging.set_verbosity(logging.WARNING)
    name = spec.search.study_name or spec.name
    storage = make_storage(spec, run_dir, storage_url)
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
        offset = len(existing.get_trials(deepcopy=False))
    except KeyError:
        offset = 0
    return optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(spec, offset),
        directions=list(spec.objective.metrics.values()),
        load_if_exists=True,
    )


def finished_trials(study: optuna.Study) -> int:
    """Trials that used up budget: COMPLETE or PRUNED."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _retried(study: optuna.Study) -> set[int]:
    """Numbers of the trials whose parameters were queued again already (by this or another worker)."""
    return {int(t.user_attrs[RETRY_OF]) for t in study.get_trials(deepcopy=False) if RETRY_OF in t.user_attrs}


def enqueue_retries(study: optuna.Study, limit: int) -> list[int]:
    """Queue the parameters of up to ``limit`` failed, interrupted or stale trials not re-run yet (oldest first)."""
    retried = _retried(study)
    queued: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if len(queued) >= limit:
            break
        if trial.number in retried or trial.system_attrs.get(liveness.END) in ("surplus", "duplicate"):
            continue
        if not trial.params:
            continue
        if RETRY_OF in trial.user_attrs:  # a retry that failed again is not retried a third time
            continue
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
        queued.append(trial.number)
    return queued


def fail_stale_and_requeue(
    study: optuna.Study,
    budget: int,
    on_stale: Callable[[int], None] | None = None,
    requeue_always: bool = False,
) -> int:
    """Fail the stale RUNNING trials (their process died; ``on_stale`` hears each number), then queue the
    parameters of failed trials again within the budget left (when any went stale, or ``requeue_always``, as
    at the start of a run). Both backends call this; returns how many trials were stale."""
    stale = liveness.fail_stale_trials(study)
    for trial in stale:
        if on_stale:
            on_stale(trial.number)
    if stale or requeue_always:
        pending = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))
        enqueue_retries(study, budget - finished_trials(study) - pending)
    return len(stale)


class StorageUnavailable(UserError):
    """The study's database stayed unreachable: the worker stops with one line (finished trials are saved)."""


def _db_errors() -> tuple[type[BaseException], ...]:
    """What an unreachable database raises: the driver's errors, or Optuna's wrapper of a failed commit."""
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import DBAPIError

    return (DBAPIError, StorageInternalError)


def _retrying(call: Callable[[], Any], what: str, wait_s: float = 60.0) -> Any:
    """``call()``, retried every 2 s while the study's database is unreachable (a restart), at most ``wait_s``."""
    errors = _db_errors()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return call()
        except errors as err:
            if time.monotonic() >= deadline:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise StorageUnavailable(
                    f"the study's database did not answer for {wait_s:.0f} s while {what} ({mask_url(first)}); "
                    "finished trials are saved: rerun the same command when the database is back"
                ) from None
            time.sleep(2.0)


def _params_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def finished_params(study: optuna.Study) -> dict[tuple, int]:
    """Parameters of every finished (COMPLETE or PRUNED) trial -> its number."""
    return {_params_key(t.params): t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}


def skip_if_repeat(study: optuna.Study, trial: optuna.Trial, finished: dict[tuple, int]) -> int | None:
    """When ``trial``'s parameters equal a finished trial's, end it unrun (FAIL, marked ``duplicate``: it uses
    no budget and is never retried) and return that trial's number; else None. The same parameters give the
    same tickets, so running them again would spend a trial on nothing new."""
    original = finished.get(_params_key(trial.params))
    if original is None:
        return None
    trial.set_user_attr(DUPLICATE_OF, original)
    trial.storage.set_trial_system_attr(trial._trial_id, liveness.END, "duplicate")  # noqa: SLF001
    study.tell(trial, state=TrialState.FAIL)
    return original


@dataclass
class TrialEnd:
    """What the driver tells its caller when a trial ends."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    done: int  # trials finished in the study (the budget used)
    reason: str = ""  # the one-line error of a failed trial


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def optimize(
    spec: Spec,
    study: optuna.Study,
    run_one: Callable[[int, dict[str, Any]], list[Ticket]],
    on_trial_end: Callable[[TrialEnd], None] | None = None,
    on_error: Callable[[int, str], None] | None = None,
    max_failures_in_row: int | None = None,
    on_stale: Callable[[int], None] | None = None,
) -> None:
    """Run trials until the study holds ``search.n_trials`` finished ones (or the timeout passes).

    ``run_one(number, params)`` runs a trial and returns its tickets (the last is the trial's value); raising
    `TrialAborted` ends it PRUNED, any other exception FAIL (``on_error`` gets the traceback text). Ctrl-C
    fails the running trial as interrupted and propagates, so the next run repeats its parameters.
    ``on_stale(number)`` hears of every trial found stale (its process died) and failed here.
    """

    metrics = list(spec.objective.metrics)
    distributions = to_distributions(spec.space)
    budget = spec.search.n_trials
    limit = max_failures_in_row or max(3, budget)
    deadline = None if spec.search.timeout_s is None else time.monotonic() + spec.search.timeout_s
    fail_stale_and_requeue(study, budget, on_stale, requeue_always=True)
    failures: list[str] = []
    repeats = 0

    def standing() -> tuple[int, int]:
        fail_stale_and_requeue(study, budget, on_stale)  # another worker died mid-trial: run its parameters again
        done = finished_trials(study)
        return done, len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def ask() -> optuna.Trial | None:
        trial = study.ask(distributions)
        if _ahead_of(study, trial.number) >= budget:  # another worker asked at the same moment: give it back
            trial.storage.set_trial_system_attr(trial._trial_id, liveness.END, "surplus")  # noqa: SLF001
            study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    while True:
        done, running = _retrying(standing, "checking the budget")
        if done >= budget or (deadline is not None and time.monotonic() >= deadline):
            return
        if done + running >= budget:  # other workers hold the rest of the budget: wait for them
            time.sleep(2.0)
            continue
        trial = _retrying(ask, "asking for a trial")
        if trial is None:
            continue
        if skip_if_repeat(study, trial, finished_params(study)) is not None:
            repeats += 1
            if repeats >= MAX_REPEATS_IN_ROW:
                warn(
                    f"the sampler proposed {repeats} repeats of finished trials in a row: the search space looks "
                    f"exhausted, stopping at {finished_trials(study)} of {budget} trials"
                )
                return
            continue
        repeats = 0
        state, reason = _run(trial, study, run_one, metrics, on_error, spec)
        if on_trial_end:
            on_trial_end(TrialEnd(trial.number, state.name, finished_trials(study), reason))
        if state == TrialState.FAIL:
            failures.append(reason)
            if len(failures) >= limit:
                raise SearchFailed(
                    f"stopped after {len(failures)} trials in a row failed; last error: {reason} "
                    "(fix the cause and rerun the same command: failed trials do not use up the budget)"
                )
        else:
            failures.clear()


def _ahead_of(study: optuna.Study, number: int) -> int:
    """Trials numbered below ``number`` that hold budget (finished or running)."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
        if t.number < number
    )


def _run(
    trial: optuna.Trial,
    study: optuna.Study,
    run_one: Callable[[int, dict[str, Any]], list[Ticket]],
    metrics: list[str],
    on_error: Callable[[int, str], None] | None,
    spec: Spec | None = None,
) -> tuple[TrialState, str]:
    with liveness.Heartbeat(trial):
        try:
            tickets = run_one(trial.number, dict(trial.params))
        except TrialAborted as stopped:
            trial.set_user_attr("tickets", getattr(stopped, "tickets", None))
            last = getattr(stopped, "ticket", None)  # MO-ASHA: the trial's value is its last kept ticket
            if last is not None:
                record_final(trial, spec, last)
            study.tell(trial, state=TrialState.PRUNED)
            return TrialState.PRUNED, ""
        except KeyboardInterrupt:
            trial.storage.set_trial_system_attr(trial._trial_id, liveness.END, "interrupted")  # noqa: SLF001
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as err:  # noqa: BLE001 - a trial's failure is recorded; the search goes on
            reason = _one_line(err)
            if on_error:
                on_error(trial.number, "".join(traceback.format_exception(err)))
            trial.set_user_attr(ERROR, reason)
            trial.storage.set_trial_system_attr(trial._trial_id, liveness.END, "error")  # noqa: SLF001
            study.tell(trial, state=TrialState.FAIL)
            return TrialState.FAIL, reason
    final = tickets[-1]

    def tell() -> None:
        trial.set_user_attr("tickets", len(tickets))
        record_final(trial, spec, final)
        study.tell(trial, [float(getattr(final, m)) for m in metrics])

    _retrying(tell, f"saving trial {trial.number}")
    return TrialState.COMPLETE, ""


NODE = "node"  # user attr: the node that ran a finished trial (its tickets' ``node``)


def record_final(trial: optuna.Trial, spec: Spec | None, final: Ticket) -> None:
    """The trial's ticket in its user attrs, and its constraint values where the samplers read them."""
    trial.set_user_attr("final_ticket", final.ticket_id)
    trial.set_user_attr("test_accuracy", final.test_accuracy)  # reported, never optimised
    trial.set_user_attr(NODE, final.node)  # where it ran: `sltsearch repair` restores it in re-measured rows
    if spec is not None and spec.objective.constraints:
        set_trial_constraints(trial, spec, final)

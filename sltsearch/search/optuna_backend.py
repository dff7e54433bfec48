"""The Optuna backend: ``--workers`` processes on this machine, each running one ask-run-tell loop against
the run's study (its journal file, or an RDB URL that processes on other machines share too).

Every worker runs `optimize` with a `TrialRunner` over the run folder's stage cache and ticket table; the
study (`sltsearch.search.study`) holds the budget, the retries and the rules that keep two workers from
running one configuration. The process that starts the search is worker 1; `sltsearch.search.workers`
starts the others. The value Optuna sees for a trial is its final IMP round's ticket; every round's ticket
goes to the ticket table, and fronts are computed over all of them. A search in which every trial fails
stops after a bounded number of failures in a row instead of looping.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from sltsearch.errors import one_line, warn
from sltsearch.results.record import Ticket
from sltsearch.search import liveness
from sltsearch.search.backend import SearchJob
from sltsearch.search.events import TrialEnd
from sltsearch.search.execute import TrialRunner
from sltsearch.search.study import (  # noqa: F401 - names other modules reach through this one
    DUPLICATE_OF,
    ERROR,
    FINISHED,
    JOURNAL_FILE,
    MAX_REPEATS_IN_ROW,
    NODE,
    RETRY_OF,
    FailureStreak,
    SearchFailed,
    SearchStudy,
    SpaceExhausted,
    StorageUnavailable,
    enqueue_retries,
    finished_trials,
    make_sampler,
    make_storage,
    open_study,
)
from sltsearch.search.workers import WorkerProcesses, label
from sltsearch.spec import Spec
from sltsearch.trial.context import TrialAborted

TAKEN = "ended by another worker, which found it stale"


def deadline_of(spec: Spec) -> float | None:
    """When ``search.timeout_s`` runs out, as a wall-clock time every worker process shares."""
    return None if spec.search.timeout_s is None else time.time() + spec.search.timeout_s


def run_search(job: SearchJob) -> None:
    """The backend: ``job.workers`` workers (this process and the others) until the study holds the budget."""
    shared = SearchStudy.open(job.spec, job.run_dir, job.storage)
    job.started(shared.finished())
    deadline = deadline_of(job.spec)
    with WorkerProcesses(job, deadline) as others:
        work(job, 1, deadline, shared)
    unfinished = job.spec.search.n_trials - shared.finished()
    if others.notes and unfinished > 0 and (deadline is None or time.time() < deadline):
        note = others.notes[0]
        raise SearchFailed(f"{note.worker} stopped: {note.message}")


def work(job: SearchJob, index: int, deadline: float | None, shared: SearchStudy | None = None) -> None:
    """One worker: trials of ``job`` in this process until the study holds the budget (or time runs out)."""
    shared = shared or SearchStudy.open(job.spec, job.run_dir, job.storage)
    runner = TrialRunner(
        job.spec, job.run_dir, device=job.device, emit=job.emit, data_memo=job.data_memo, worker=label(index)
    )
    stopper = job.stopper()

    def run_one(number: int, params: dict[str, Any]) -> list[Ticket]:
        return runner(number, params, on_ticket=stopper.on_ticket(number, params) if stopper else None)

    optimize(
        job.spec,
        shared.study,
        run_one,
        run_dir=job.run_dir,
        on_trial_end=job.emit,
        on_error=runner.log_error,
        deadline=deadline,
    )


def optimize(
    spec: Spec,
    study: optuna.Study,
    run_one: Callable[[int, dict[str, Any]], list[Ticket]],
    *,
    run_dir: Path | None = None,
    on_trial_end: Callable[[TrialEnd], None] | None = None,
    on_error: Callable[[int, str], Path | None] | None = None,
    max_failures_in_row: int | None = None,
    deadline: float | None = None,
) -> None:
    """The loop every worker runs: ask a trial, run it, finish it, until the study holds ``search.n_trials``
    finished trials (or the wall-clock ``deadline``, default ``search.timeout_s`` from now, passes).

    ``run_one(number, params)`` runs a trial and returns its tickets (the last is the trial's value); raising
    `TrialAborted` ends it PRUNED, any other exception FAIL (``on_error`` gets the traceback text and may
    return where it kept it). Ctrl-C or SIGTERM fails the running trial as interrupted and propagates, so the
    next run repeats its parameters. ``run_dir``: the run folder whose workers share the study (their asks
    take turns; stale trials' rows are marked interrupted).
    """
    shared = SearchStudy(spec, study, run_dir)
    budget = shared.budget
    failures = FailureStreak(budget, max_failures_in_row)
    deadline = deadline_of(spec) if deadline is None else deadline
    shared.retrying(lambda: shared.recover(requeue_always=True), "recovering interrupted trials")

    def standing() -> tuple[int, int]:
        shared.recover()  # another worker died mid-trial: run its parameters again
        return shared.finished(), shared.running()

    while True:
        done, running = shared.retrying(standing, "checking the budget")
        if done >= budget or (deadline is not None and time.time() >= deadline):
            return
        if done + running >= budget:  # other workers hold the rest of the budget: wait for them
            time.sleep(2.0)
            continue
        try:
            trial = shared.retrying(shared.ask, "asking for a trial")
        except SpaceExhausted:
            running = shared.running()
            warn(
                f"the sampler proposed {MAX_REPEATS_IN_ROW} repeats of trials run or running in a row: the search "
                f"space looks exhausted; a worker stops with {shared.finished()} of {budget} trials finished"
                + (f" ({running} still running)" if running else "")
            )
            return
        if trial is None:  # asked beyond the budget at the same moment as another worker
            continue
        end = _run(shared, trial, run_one, on_error)
        if on_trial_end:
            on_trial_end(end)
        failures.add(end.state, end.reason)


def _run(
    shared: SearchStudy,
    trial: optuna.Trial,
    run_one: Callable[[int, dict[str, Any]], list[Ticket]],
    on_error: Callable[[int, str], Path | None] | None,
) -> TrialEnd:
    """Run one claimed trial and finish it in the study."""
    with liveness.Heartbeat(trial):
        try:
            tickets = run_one(trial.number, dict(trial.params))
        except TrialAborted as stopped:  # MO-ASHA: the trial's value is its last kept ticket
            if not shared.prune(trial, getattr(stopped, "ticket", None), stopped.tickets):
                return TrialEnd(trial.number, "FAIL", shared.finished(), TAKEN)
            return TrialEnd(trial.number, "PRUNED", shared.finished())
        except KeyboardInterrupt:
            shared.fail(trial, "", end="interrupted")
            raise
        except Exception as err:  # noqa: BLE001 - a trial's failure is recorded; the search goes on
            reason = one_line(err, first_line=True)  # the summary's line; the traceback goes to its log
            log = on_error(trial.number, "".join(traceback.format_exception(err))) if on_error else None
            shared.fail(trial, reason)
            return TrialEnd(trial.number, "FAIL", shared.finished(), reason, log)
    if not shared.complete(trial, tickets[-1], len(tickets)):
        return TrialEnd(trial.number, "FAIL", shared.finished(), TAKEN)
    return TrialEnd(trial.number, "COMPLETE", shared.finished())

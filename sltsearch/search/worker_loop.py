"""The loop every worker of the Optuna backend runs: ask a trial, run it, finish it in the study.

Kept apart from the backend that starts the workers (`sltsearch.search.optuna_backend`) and from the processes
themselves (`sltsearch.search.workers`), so a worker imports only this loop and neither imports the other.
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
from sltsearch.search.backend import SearchJob, label
from sltsearch.search.events import TrialEnd
from sltsearch.search.execute import TrialRunner
from sltsearch.search.study import MAX_REPEATS_IN_ROW, FailureStreak, SearchStudy, SpaceExhausted
from sltsearch.spec import Spec
from sltsearch.trial.context import TrialAborted

TAKEN = "ended by another worker, which found it stale"


def deadline_of(spec: Spec) -> float | None:
    """When ``search.timeout_s`` runs out, as a wall-clock time every worker process shares."""
    return None if spec.search.timeout_s is None else time.time() + spec.search.timeout_s


def work(job: SearchJob, index: int, deadline: float | None, shared: SearchStudy | None = None) -> None:
    """One worker: trials of ``job`` in this process until the study holds the budget (or time runs out)."""
    shared = shared or SearchStudy.open(job.spec, job.run_dir, job.storage)
    runner = TrialRunner(
        job.spec,
        job.run_dir,
        device=job.device,
        emit=job.emit,
        data_memo=job.data_memo,
        worker=label(index),
        budget_left=shared.budget_left,
        on_compute=shared.add_compute,
    )
    stopper = job.stopper()

    def run_one(number: int, params: dict[str, Any]) -> list[Ticket]:
        return runner(number, params, on_ticket=stopper.on_ticket(number, params) if stopper else None)

    optimize(
        job.spec,
        shared,
        run_one,
        run_dir=job.run_dir,
        on_trial_end=job.emit,
        on_error=runner.log_error,
        deadline=deadline,
    )


def optimize(
    spec: Spec,
    study: optuna.Study | SearchStudy,
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
    shared = study if isinstance(study, SearchStudy) else SearchStudy(spec, study, run_dir)
    budget = shared.budget
    failures = FailureStreak(budget, max_failures_in_row)
    deadline = deadline_of(spec) if deadline is None else deadline
    shared.retrying(lambda: shared.recover(requeue_always=True), "recovering interrupted trials")

    def standing() -> tuple[int, int, bool]:
        shared.recover()  # another worker died mid-trial: run its parameters again
        return shared.finished(), shared.running(), shared.compute_spent()

    while True:
        done, running, spent = shared.retrying(standing, "checking the budget")
        if done >= budget or spent or (deadline is not None and time.time() >= deadline):
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

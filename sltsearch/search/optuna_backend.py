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

from sltsearch.search.backend import SearchJob
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
from sltsearch.search.worker_loop import deadline_of, optimize, work  # noqa: F401 - the loop, re-exported
from sltsearch.search.workers import WorkerProcesses


def run_search(job: SearchJob) -> None:
    """The backend: ``job.workers`` workers (this process and the others) until the study holds the budget."""
    shared = SearchStudy.open(job.spec, job.run_dir, job.storage)
    job.started(shared.finished(), shared.spent())
    deadline = deadline_of(job.spec)
    with WorkerProcesses(job, deadline) as others:
        work(job, 1, deadline, shared)
    if others.notes and not shared.out_of_budget() and (deadline is None or time.time() < deadline):
        note = others.notes[0]
        raise SearchFailed(f"{note.worker} stopped: {note.message}")



"""The one seam between a search and whatever runs its trials.

A backend is a function ``run_search(job)`` that runs the trials of ``job`` until the study holds
``search.n_trials`` finished ones: `sltsearch.search.optuna_backend` (worker processes on this machine,
or several `sltsearch run` processes on one RDB study) and `sltsearch.search.ray_backend` (Ray Tune, local
or on a cluster). Both take the same `SearchJob`, ask and finish every trial through the same
`sltsearch.search.study.SearchStudy`, run every trial through `sltsearch.search.execute.TrialRunner`, and
tell the caller what happens through the same typed events (`sltsearch.search.events`): the backend changes
*where* a trial runs, never *what* it computes or records.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sltsearch.search.events import Event, SearchStart
from sltsearch.spec import Spec
from sltsearch.system.threads import wait_policy

BACKENDS = {"optuna": "sltsearch.search.optuna_backend", "ray": "sltsearch.search.ray_backend"}


def _ignore(event: Event) -> None:
    """The default event sink."""


@dataclass
class SearchJob:
    """Everything a backend needs to run a search (plain values, so worker processes get a copy)."""

    spec: Spec
    run_dir: Path
    storage: str | None = None  # an RDB URL, password included: never printed or written
    device: str | None = None
    workers: int | None = 1  # trials run at once (None: as many as a Ray cluster has CPUs for)
    threads: int = 1  # torch CPU threads per trial
    cpus_per_trial: float | None = None  # ray: CPUs a trial reserves (default: its threads)
    gpus_per_trial: float = 0.0  # ray
    address: str | None = None  # ray: a cluster to join (default: a private local Ray)
    data_memo: dict[str, Any] = field(default_factory=dict)  # the data the checks built, shared with the trials
    emit: Callable[[Event], None] = _ignore

    def started(self, done: int, spent: float = 0.0) -> None:
        """Tell the caller the search starts (``done`` trials finished already, ``spent`` epochs x T trained)."""
        self.emit(
            SearchStart(
                run_dir=self.run_dir,
                n_trials=self.spec.search.n_trials,
                done=done,
                backend=self.spec.search.backend,
                workers=self.workers or 1,
                threads=self.threads,
                wait_policy=wait_policy(),
                budget_epochs=self.spec.search.budget_epochs,
                spent=spent,
            )
        )

    def stopper(self) -> Any:
        """MO-ASHA over the run folder's ticket table, when the spec asks for early stopping (else None)."""
        if self.spec.search.early_stopping is None:
            return None
        from sltsearch.search.early_stop import RungStopper

        return RungStopper(self.spec, self.run_dir)


def label(index: int) -> str:
    """How the progress display names worker ``index``: its number and this process's pid."""
    return f"worker {index} (pid {os.getpid()})"


class Backend(Protocol):
    def __call__(self, job: SearchJob) -> None:
        """Run ``job``'s trials until its study holds ``search.n_trials`` finished ones."""


def backend(name: str) -> Backend:
    """The backend called ``name`` (its module is imported only now: the Optuna backend never loads Ray)."""
    return importlib.import_module(BACKENDS[name]).run_search

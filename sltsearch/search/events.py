"""What a search tells its caller while it runs (the CLI's progress display, `sltsearch.run(on_event=...)`).

Typed events, one class per kind, made in one place each: the backend that starts the search
(`SearchStart`), the trial runner (`TrialStart`, `TrialProgress`) and the study's end of a trial
(`TrialEnd`). Events from worker processes travel to the display pickled, so they hold plain values only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SearchStart:
    """The search is about to run its first trial."""

    run_dir: Path
    n_trials: int  # the budget: trials the study should hold finished
    done: int  # trials finished already (a resumed search)
    backend: str  # optuna | ray
    workers: int  # trials run at once
    threads: int  # torch CPU threads per trial
    wait_policy: str  # OpenMP's, as libgomp read it
    budget_epochs: float | None = None  # the compute budget (epochs x T), when the spec sets one
    spent: float = 0.0  # epochs x T trained already (a resumed search)


@dataclass(frozen=True)
class TrialStart:
    number: int
    params: dict[str, Any]
    worker: str  # who runs it: "worker 2 (pid 123)", "ray"
    rounds: int | None = None  # its IMP rounds (a path's: the most it may run)
    path: bool = False  # a path (`search.paths`): it may stop before ``rounds``


@dataclass(frozen=True)
class TrialProgress:
    """Where a running trial is: training the dense network or an IMP round (``epoch``), or a ticket measured
    (``val`` = its validation accuracy)."""

    number: int
    stage: str  # dense | imp | ticket | control stages
    round: int = 0
    epoch: int | None = None
    val: float | None = None
    compute: float = 0.0  # a ticket's stage cost in epochs x T (0 when cached)
    rounds: int = 0  # stage "branch": the path starts after ``round`` of its parent's rounds and runs at most these

    @classmethod
    def of(cls, event: dict[str, Any]) -> TrialProgress:
        """From a trial's progress report (`sltsearch.trial.context.TrialContext.progress`)."""
        return cls(event["trial"], str(event.get("stage", "")), int(event.get("round") or 0),
                   event.get("epoch"), event.get("val"), float(event.get("compute") or 0.0),
                   int(event.get("rounds") or 0))


@dataclass(frozen=True)
class TrialEnd:
    """A trial ended: COMPLETE or PRUNED (it used budget) or FAIL (``reason``, traceback in ``log``)."""

    number: int
    state: str  # COMPLETE | PRUNED | FAIL
    done: int  # trials finished in the study (the budget used)
    reason: str = ""
    log: Path | None = None


@dataclass(frozen=True)
class WorkerNote:
    """A worker process stopped on its own (e.g. its database stayed unreachable): one line to show."""

    worker: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


Event = SearchStart | TrialStart | TrialProgress | TrialEnd | WorkerNote

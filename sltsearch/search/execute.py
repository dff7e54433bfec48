"""Run one trial of a search and record its tickets: the single function every backend calls.

The backend decides *where* a trial runs (this process, a Ray worker); `TrialRunner` decides *what* it
computes and writes: `run_trial` over the shared stage cache, every ticket appended to the run folder's
table as it is measured (status ``running``), and the trial's rows marked ``ok`` when it ends (or
``interrupted`` / ``failed``, so they stay off the front and the parameters are run again).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sltsearch.results.record import Ticket
from sltsearch.results.store import FAILED, INTERRUPTED, OK, RUNNING, TicketStore, stage_compute, ticket_points
from sltsearch.search.constraints import is_feasible
from sltsearch.search.early_stop import imp_rounds
from sltsearch.search.events import Event, TrialProgress, TrialStart
from sltsearch.spec import Spec
from sltsearch.system.files import atomic_write
from sltsearch.trial import TrialContext, run_trial
from sltsearch.trial.cache import StageCache
from sltsearch.trial.context import TrialAborted
from sltsearch.trial.paths import branch_columns, rates_of

LOG_DIR = "logs"
BRANCH_DIR = "branches"  # where each path started (`TrialRunner.record_branch`)


@dataclass
class TrialRunner:
    """Everything a trial of one search shares: spec, run folder, cache, device, event sink, loaded data."""

    spec: Spec
    run_dir: Path
    device: str | None = None
    emit: Callable[[Event], None] = lambda event: None
    data_memo: dict[str, Any] = field(default_factory=dict)
    node: str = field(default_factory=socket.gethostname)  # recorded in every ticket row
    worker: str = "worker 1"  # who runs the trials, for the progress display
    # the compute budget: what the search may still train (epochs x T; None: no budget), and where each
    # ticket's stage cost goes (trial number, epochs x T) so the study can count it
    budget_left: Callable[[], float | None] | None = None
    on_compute: Callable[[int, float], None] | None = None
    # paths stop where the run's front says (False: a replay, which stops where the recorded trial stopped)
    follow_front: bool = True

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.cache = StageCache(self.run_dir / "cache")
        self.store = TicketStore(self.run_dir)

    def __call__(
        self, number: int, params: dict[str, Any], on_ticket: Callable[[Ticket], None] | None = None
    ) -> list[Ticket]:
        """Run trial ``number`` with ``params``; ``on_ticket`` sees every ticket as it is measured (a driver
        may raise `TrialAborted` there to stop the trial early: its tickets so far stand)."""
        paths = self.spec.search.paths is not None
        self.emit(TrialStart(number, dict(params), self.worker, imp_rounds(self.spec, params), paths))

        reported: list[Ticket] = []

        def report(ticket: Ticket) -> None:
            ticket.node = self.node
            ticket.measured_at = time.time()
            ticket.feasible = is_feasible(self.spec, ticket)
            self.store.append([ticket], status=RUNNING)
            reported.append(ticket)
            if self.on_compute:
                self.on_compute(number, stage_compute(ticket))
            if on_ticket:
                on_ticket(ticket)

        ctx = TrialContext(
            trial_number=number,
            cache=self.cache,
            report=report,
            on_progress=lambda event: self.emit(TrialProgress.of(event)),
            device=self.device,
            data_memo=self.data_memo,
            front=self.front if self.spec.search.paths is not None and self.follow_front else None,
            budget_left=self.budget_left,
            # a path's branch point is recorded, so a replay starts where the path started
            branch=None if self.follow_front else self.recorded_branch(number),
            on_branch=lambda rates: self.record_branch(number, rates),
        )
        try:
            tickets = run_trial(self.spec, params, ctx)
        except TrialAborted as stop:
            self.store.set_status(number, OK)  # stopped early by the driver: what it measured stands
            stop.tickets = len(reported)  # so the study records where it stopped (`sltsearch repair`)
            raise
        except KeyboardInterrupt:
            self.store.set_status(number, INTERRUPTED)
            raise
        except BaseException:
            self.store.set_status(number, FAILED)
            raise
        self.store.set_status(number, OK)
        return tickets

    def front(self) -> list[dict[str, Any]]:
        """The objective values of the run folder's tickets so far (with where each came from): what paths stop
        against and branch from."""
        return ticket_points(self.run_dir, self.spec.objective.metrics, branch_columns(self.spec))

    def branch_file(self, number: int) -> Path:
        return self.run_dir / BRANCH_DIR / f"trial-{number:06d}.json"

    def record_branch(self, number: int, rates: list[float]) -> None:
        """Keep where trial ``number``'s path started (`sltsearch.trial.paths.branch_point`) for its replay."""
        atomic_write(self.branch_file(number), lambda tmp: tmp.write_text(json.dumps({"rates": rates})))

    def recorded_branch(self, number: int) -> list[float]:
        """The rates trial ``number``'s path started from (empty: the dense network, or none was recorded)."""
        try:
            recorded = json.loads(self.branch_file(number).read_text())
        except (OSError, ValueError):
            return []
        return (rates_of(recorded) or []) if isinstance(recorded, dict) else []

    def log_error(self, number: int, text: str) -> Path:
        """Keep a failed trial's traceback in ``logs/trial-<n>.log`` (the summary shows one line)."""
        path = self.run_dir / LOG_DIR / f"trial-{number:06d}.log"
        atomic_write(path, lambda tmp: tmp.write_text(text))
        return path

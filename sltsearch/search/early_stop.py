"""MO-ASHA applied to a running search: rung tables read from the run folder's ticket table.

The rule itself is pure (`sltsearch.search.mo_asha`); this module feeds it. Rung tables come from the ticket
table, not from driver memory, so a resumed search and every worker (any backend, any host sharing the run
folder) see the same rungs. A trial's ticket is appended to the table before the decision is taken. The table
is read through a `RungView`: per decision, only the files that changed since the last one, and only the
columns the rule uses (trial, round, kind, status, objectives, constrained metrics).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sltsearch.results.record import Ticket
from sltsearch.search.constraints import constraint_values, metric_value
from sltsearch.search.mo_asha import MOASHA, RUNG_KINDS, total_violation
from sltsearch.search.rung_view import RungView
from sltsearch.spec import Spec
from sltsearch.trial.context import TrialAborted


class StoppedEarly(TrialAborted):
    """Raised from a trial's ticket callback when MO-ASHA stops it; carries the last kept ticket."""

    def __init__(self, ticket: Ticket) -> None:
        super().__init__(f"stopped by MO-ASHA after round {ticket.round} ({ticket.ticket_id})")
        self.ticket = ticket


def imp_rounds(spec: Spec, params: dict[str, Any]) -> int:
    """How many IMP rounds a trial with ``params`` runs (its last round's ticket is its value)."""
    return len(spec.with_params(params).round_rates())


def last_rung(spec: Spec, params: dict[str, Any]) -> int:
    """The last IMP round of a trial with ``params`` (0 when it has no rungs, e.g. early-time tickets)."""
    tspec = spec.with_params(params)
    if tspec.tickets.time_steps_search is not None and tspec.model.network == "snn":
        return 0  # its rounds are early-time search rounds at another T: not comparable rungs (the ANN twin
        # ignores time_steps_search: its rounds are plain IMP rounds)
    return imp_rounds(spec, params)


class RungStopper:
    """Decides, from the ticket table of ``run_dir``, whether a trial stops after the round it just measured."""

    def __init__(self, spec: Spec, run_dir: str | Path) -> None:
        if spec.search.early_stopping is None:
            raise ValueError("search.early_stopping is not set")
        cfg = spec.search.early_stopping
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.rule = MOASHA(dict(spec.objective.metrics), eta=cfg.eta, min_rungs=cfg.min_rungs, spacing=cfg.rungs)
        # the rung rows of the run folder's table, read incrementally (only the columns the rule uses)
        self.view = RungView(self.run_dir, [*spec.objective.metrics, *spec.objective.constraints])

    def violation(self, ticket: Ticket | Mapping[str, Any]) -> float:
        """A ticket's (or a table row's) total violation of ``objective.constraints`` (0 = feasible)."""
        return total_violation(constraint_values(self.spec, ticket))

    def should_stop(self, number: int, params: dict[str, Any], ticket: Ticket | Mapping[str, Any], rung: int) -> bool:
        """True when trial ``number`` should run no further round after ``rung`` (never after its last).
        ``ticket``: its ticket at ``rung`` (a `Ticket`, or a row / Tune result with the metric columns)."""
        if not self.rule.is_rung(rung) or rung >= last_rung(self.spec, params):
            return False  # not a rung (no table read), or its last round: nothing left to save
        metrics = {k: metric_value(ticket, k) for k in self.rule.objectives}
        rows = self.view.rows(rung, exclude_trial=number)
        others = [{k: float(row[k]) for k in self.rule.objectives} for row in rows]
        violations = None
        if self.spec.objective.constraints:  # constrained domination, from the same metrics in both backends
            violations = [self.violation(ticket), *(self.violation(row) for row in rows)]
        return self.rule.should_stop(rung, metrics, others, violations)

    def is_rung(self, ticket: Ticket) -> bool:
        return ticket.kind in RUNG_KINDS and ticket.round >= 1

    def on_ticket(self, number: int, params: dict[str, Any]) -> Callable[[Ticket], None]:
        """A `TrialRunner` ``on_ticket`` callback that raises `StoppedEarly` when the rule says stop."""

        def check(ticket: Ticket) -> None:
            if not self.is_rung(ticket):
                return
            if self.should_stop(number, params, ticket, ticket.round):
                raise StoppedEarly(ticket)

        return check

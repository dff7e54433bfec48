"""Choosing one ticket from a table by a rule, on validation metrics only (test accuracy is never read).

Rules, applied to finished tickets (one row per ticket) that meet the budget (``min_accuracy`` on
``val_accuracy``, ``max_energy`` on ``energy_uj``):

* ``max-accuracy``: the highest validation accuracy; ties go to the lower energy, then the lower ticket_id.
* ``min-energy``: the lowest energy; ties go to the higher validation accuracy, then the lower ticket_id.
* ``knee``: on the (val_accuracy, energy_uj) Pareto front, both scaled to [0, 1] over the front, the point
  farthest from the straight line joining the front's two ends (the most-accuracy and least-energy
  tickets): the point where giving up a little accuracy stops buying much energy. With fewer than three
  front points, or all of them on that line, there is no knee: the most accurate front point.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sltsearch.errors import UserError
from sltsearch.results.pareto import pareto_front
from sltsearch.results.tickets import check_max_energy, check_min_accuracy, ok_rows, unique_tickets

RULES = ("knee", "max-accuracy", "min-energy")
ACCURACY, ENERGY = "val_accuracy", "energy_uj"


def candidates(
    frame: pd.DataFrame, min_accuracy: float | None = None, max_energy: float | None = None
) -> pd.DataFrame:
    """Finished tickets (one row each) with finite validation accuracy and energy inside the budget."""
    check_min_accuracy(min_accuracy)
    check_max_energy(max_energy)
    missing = [c for c in (ACCURACY, ENERGY) if c not in frame.columns]
    if missing:
        raise UserError(f"select: the table has no {', '.join(missing)} column; pass a ticket table")
    rows = unique_tickets(ok_rows(frame))
    acc = pd.to_numeric(rows[ACCURACY], errors="coerce")
    energy = pd.to_numeric(rows[ENERGY], errors="coerce")
    keep = np.isfinite(acc) & np.isfinite(energy)
    if min_accuracy is not None:
        keep &= acc >= min_accuracy
    if max_energy is not None:
        keep &= energy <= max_energy
    return rows[keep]


def _sorted(rows: pd.DataFrame, by: list[str], ascending: list[bool]) -> pd.DataFrame:
    if "ticket_id" in rows.columns:
        by, ascending = [*by, "ticket_id"], [*ascending, True]
    return rows.sort_values(by, ascending=ascending, kind="stable")


def knee_index(accuracy: np.ndarray, energy: np.ndarray) -> int:
    """Position of the knee among front points (see the module docstring)."""
    span_a = accuracy.max() - accuracy.min()
    span_e = energy.max() - energy.min()
    a = (accuracy - accuracy.min()) / span_a if span_a > 0 else np.ones_like(accuracy)
    e = (energy - energy.min()) / span_e if span_e > 0 else np.zeros_like(energy)
    if len(a) >= 3:
        top, low = int(np.argmax(a)), int(np.argmin(e))  # the two ends of the front
        direction = np.array([e[low] - e[top], a[low] - a[top]])
        length = math.hypot(*direction)
        if length > 0:
            distance = np.abs(direction[0] * (a - a[top]) - direction[1] * (e - e[top])) / length
            if distance.max() > 1e-12:
                return int(np.argmax(distance))
    return int(np.argmax(accuracy))


def select(
    frame: pd.DataFrame,
    rule: str = "knee",
    *,
    min_accuracy: float | None = None,
    max_energy: float | None = None,
) -> pd.Series:
    """The row of the ticket ``rule`` picks among finished tickets inside the budget (validation only)."""
    if rule not in RULES:
        raise UserError(f"select: unknown rule '{rule}'; use one of {', '.join(RULES)}")
    rows = candidates(frame, min_accuracy, max_energy)
    if rows.empty:
        budget = [f"val_accuracy >= {min_accuracy}"] * (min_accuracy is not None) + [
            f"energy_uj <= {max_energy}"
        ] * (max_energy is not None)
        why = f" meets {' and '.join(budget)}" if budget else " is finished"
        raise UserError(f"select: no ticket{why}; relax --min-accuracy / --max-energy or pick one with --ticket")
    if rule == "max-accuracy":
        return _sorted(rows, [ACCURACY, ENERGY], [False, True]).iloc[0]
    if rule == "min-energy":
        return _sorted(rows, [ENERGY, ACCURACY], [True, False]).iloc[0]
    front = pareto_front(rows, {ACCURACY: "maximize", ENERGY: "minimize"})
    # duplicates of one point: keep the first by ticket_id so the choice does not depend on row order
    front = _sorted(front, [ACCURACY, ENERGY], [False, True]).drop_duplicates([ACCURACY, ENERGY])
    at = knee_index(front[ACCURACY].to_numpy(float), front[ENERGY].to_numpy(float))
    return front.iloc[at]

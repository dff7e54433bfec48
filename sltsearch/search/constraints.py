"""Constraints on ticket metrics (``objective.constraints``) as Optuna constraint values and a feasibility flag.

Optuna's convention: a trial is feasible when every constraint value is <= 0. ``{min: a}`` gives ``a - x``,
``{max: b}`` gives ``x - b``. NSGA-II (constrained domination) and TPE read the values a trial stores with
`optuna.trial.Trial.set_constraint` (Optuna >= 5; the samplers' ``constraints_func`` is deprecated there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sltsearch.spec import Spec


def metric_value(ticket: Any, metric: str) -> float:
    """A metric of a `Ticket`, or of a table row / Tune result (a mapping with the metric columns)."""
    value = ticket[metric] if isinstance(ticket, Mapping) else getattr(ticket, metric)
    return float(value)


def constraint_values(spec: Spec, ticket: Any) -> dict[str, float]:
    """``"<metric>:min"`` / ``"<metric>:max"`` -> Optuna constraint value (<= 0 is feasible) of a ticket
    (a `Ticket` or a table row). A NaN metric violates its constraint by +inf."""
    values: dict[str, float] = {}
    for metric, bound in spec.objective.constraints.items():
        x = metric_value(ticket, metric)
        if bound.min is not None:
            values[f"{metric}:min"] = math.inf if math.isnan(x) else bound.min - x
        if bound.max is not None:
            values[f"{metric}:max"] = math.inf if math.isnan(x) else x - bound.max
    return values


def is_feasible(spec: Spec, ticket: Any) -> bool:
    """True when the ticket meets every constraint (always True without constraints)."""
    return all(v <= 0.0 for v in constraint_values(spec, ticket).values())


def set_trial_constraints(trial: Any, spec: Spec, ticket: Any) -> None:
    """Store the ticket's constraint values on an Optuna trial (public `Trial.set_constraint`), where the
    NSGA-II and TPE samplers read them. Infinite violations are stored as a large finite number."""
    for key, value in constraint_values(spec, ticket).items():
        trial.set_constraint(key, value if math.isfinite(value) else 1e30)

"""Where an IMP path stops: the search's knowledge of tickets, free of any driver like `run_trial`.

IMP rounds are nested: the ticket at 90 % sparsity is the 80 % ticket pruned once more. So with
``search.paths`` a trial is a *path*: it prunes at its rate round after round (every round's ticket is kept)
and stops as soon as a further round cannot pay, instead of running a drawn number of rounds that is
usually too few (the cheap, early part of the path again) or too many (tickets nobody wants). A path stops
after the round whose ticket

1. reached ``search.paths.max_sparsity`` (the plan `Spec.round_rates` ends there);
2. fell more than ``accuracy_drop`` below the best value of the first maximised metric among the run's
   tickets: the region of interest is left, and pruning more only loses more;
3. cannot reach the front any more (``stop: front``): its next round, projected optimistically, is dominated
   by a ticket of the run. Optimistic: every maximised metric no better than the path's current value plus
   ``slack`` (accuracy rarely rises as a path prunes on), every minimised metric shrunk by the ratio the
   path's last round showed (after the dense network, by the density the next round keeps);
4. or the search's compute budget is spent.

A stopped path reports why in its last ticket's progress event. The front is whatever the driver hands in
(the run folder's tickets, finished or still running); with none, a path only stops on rules 1, 2 and 4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sltsearch.spec import Spec
from sltsearch.spec.space import resolve_param_path

Point = Mapping[str, float]


def _value(ticket: Any, name: str) -> float:
    return float(ticket[name] if isinstance(ticket, Mapping) else getattr(ticket, name))


def dominates(a: Point, b: Point, objectives: Mapping[str, str]) -> bool:
    """``a`` is at least as good as ``b`` in every objective and better in one."""
    better = False
    for name, direction in objectives.items():
        x, y = _value(a, name), _value(b, name)
        if direction == "maximize":
            x, y = -x, -y
        if x > y:
            return False
        better = better or x < y
    return better


def projected_next(path: Sequence[Any], spec: Spec, next_rate: float) -> dict[str, float]:
    """The best the path's next round can plausibly do (rule 3): maximised metrics at most ``slack`` above the
    current ticket's, minimised ones shrunk by the last round's ratio (after the dense ticket, by 1 - rate)."""
    assert spec.search.paths is not None
    slack = spec.search.paths.slack
    last = path[-1]
    point: dict[str, float] = {}
    for name, direction in spec.objective.metrics.items():
        now = _value(last, name)
        if direction == "maximize":
            point[name] = now + slack
            continue
        before = _value(path[-2], name) if len(path) > 1 else 0.0
        ratio = now / before if len(path) > 1 and before > 0 and 0 <= now <= before else 1.0 - next_rate
        point[name] = now * ratio
    return point


def _best(metric: str, path: Sequence[Any], front: Sequence[Point]) -> float:
    """The best value of ``metric`` among the run's tickets and the path's own: where rule 2's region starts."""
    return max(_value(p, metric) for p in [*front, *path])


def accuracy_metric(spec: Spec) -> str | None:
    """The metric the region of interest is measured on: the first maximised one (validation accuracy)."""
    return next((m for m, d in spec.objective.metrics.items() if d == "maximize"), None)


def stop_reason(
    spec: Spec,
    path: Sequence[Any],
    front: Sequence[Point],
    next_rate: float | None,
    budget_left: float | None = None,
) -> str | None:
    """Why the path whose tickets so far are ``path`` (dense first) stops here, or None to prune once more.

    ``front``: objective values of the run's tickets (any trial's, this one's included); ``next_rate``: the
    next round's rate (None: the plan ends, rule 1); ``budget_left``: epochs x T the search may still train."""
    paths = spec.search.paths
    if next_rate is None:
        return f"reached max_sparsity {paths.max_sparsity:.0%}" if paths else "ran its rounds"
    if paths is None:
        return None
    if budget_left is not None and budget_left <= 0:
        return "the compute budget is spent"
    if paths.stop == "never":
        return None
    last = path[-1]
    acc = accuracy_metric(spec)
    if acc is not None:
        best = _best(acc, path, front)
        if _value(last, acc) < best - paths.accuracy_drop:
            return f"{acc} {_value(last, acc):.4f} fell more than {paths.accuracy_drop} below the run's best {best:.4f}"
    if paths.stop == "front" and front:
        hope = projected_next(path, spec, next_rate)
        objectives = spec.objective.metrics
        if any(dominates(p, hope, objectives) for p in front):
            return "its next round cannot reach the front"
    return None


def final_ticket(spec: Spec, path: Sequence[Any], front: Sequence[Point]) -> Any:
    """The path's ticket a sampler sees as the trial's value: its sparsest ticket still inside the region of
    interest (rule 2), so a path that ended below it is judged by where it was still useful."""
    paths = spec.search.paths
    acc = accuracy_metric(spec)
    if paths is None or acc is None or not path:
        return path[-1] if path else None
    floor = _best(acc, path, front) - paths.accuracy_drop
    inside = [t for t in path if _value(t, acc) >= floor]
    return inside[-1] if inside else path[-1]


def cheapest_start(spec: Spec) -> dict[str, Any]:
    """Where a search of paths starts: at the smallest T of the space (the rest drawn by the sampler).

    A path stops once it cannot reach the front (`sltsearch.trial.paths`), so what the first path leaves decides
    how much every later one may spend: the cheapest T gives that first front for the least compute, and a costlier
    T then pays only where its tickets reach the front (on a task that needs more time steps, they do)."""
    for key, param in spec.space.items():
        if resolve_param_path(key) == "model.time_steps" and param.type in ("categorical", "int"):
            values = param.choices if param.type == "categorical" else [int(param.low or 0)]
            numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            if numbers:
                return {key: min(numbers)}
    return {}


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

**Branching** (``search.paths.branch``): late in a search, a new path from the dense network is mostly
dominated before its first round (the front already holds better tickets than its early rounds can be), so
it would end there and teach the sampler nothing. Instead a path starts from the sparsest ticket of the run
that a path with the same settings but a larger rate reached, and whose next round at this path's finer
rate can still reach the front (`branch_point`): it refines the gap to the parent's next ticket, near the
knee, for a round or two, and the cached rounds before the branch point are free. The rounds' rates are the
round keys, so a branch's first rounds are its parent's cached rounds, and every ticket records its ``rates``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sltsearch.results.record import MAIN_KINDS
from sltsearch.spec import Spec
from sltsearch.spec.schema import rates_to_target
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
    current ticket's, minimised ones shrunk as the last round shrank them per weight it removed: by
    (1 - next_rate) ** a where (density ratio) ** a was the last round's ratio (the last ratio itself at an
    unchanged rate; 1 - rate after the dense ticket)."""
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
        ratio = 1.0 - next_rate
        if len(path) > 1 and before > 0 and 0 <= now <= before:
            kept = _kept(path[-2], last)
            ratio = now / before
            if kept is not None and now > 0:
                ratio = (1.0 - next_rate) ** (math.log(ratio) / math.log(kept))
        point[name] = now * ratio
    return point


def _kept(before: Any, after: Any) -> float | None:
    """The fraction of ``before``'s weights ``after`` kept (from their sparsity), None when unknown or none pruned."""
    try:
        kept = (1.0 - _value(after, "sparsity")) / (1.0 - _value(before, "sparsity"))
    except (KeyError, AttributeError, TypeError, ValueError, ZeroDivisionError):
        return None
    return kept if 0.0 < kept < 1.0 - 1e-9 else None


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


def rate_key(params: Mapping[str, Any]) -> str | None:
    """The searched parameters' name for ``tickets.prune_rate`` (None when the rate is not searched)."""
    return next((k for k in params if resolve_param_path(k) == "tickets.prune_rate"), None)


def branch_columns(spec: Spec) -> list[str]:
    """The ticket-table columns `branch_point` reads besides the objectives."""
    return ["trial", "round", "kind", "sparsity", "rates", *(f"param_{k}" for k in spec.space)]


def can_branch(spec: Spec, params: Mapping[str, Any]) -> bool:
    """Branching applies: paths with ``branch`` on, a searched rate, and rounds whose keys are their rates alone
    (an encoding-layer or MultiSp schedule spreads over the whole plan, which a branch changes)."""
    paths = spec.search.paths
    return (
        paths is not None
        and paths.branch
        and rate_key(params) is not None
        and spec.tickets.encoding_sparsity is None
        and not spec.multisp.active
    )


def rates_of(ticket: Mapping[str, Any]) -> list[float] | None:
    """The ``rates`` of a ticket row or a recorded branch point (a list, or its JSON text), None when it is not a
    list of rates in (0, 1): a table or file from elsewhere is not trusted to hold one."""
    value = ticket.get("rates")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if not isinstance(value, list) or not all(isinstance(r, int | float) and 0 < r < 1 for r in value):
        return None
    return [float(r) for r in value]


def branch_point(spec: Spec, params: Mapping[str, Any], tickets: Sequence[Mapping[str, Any]]) -> list[float]:
    """The rates of the ticket a path with ``params`` starts from (empty: the dense network).

    ``spec``: the trial's spec (its rate applied); ``tickets``: the run's tickets with `branch_columns`. Of the
    pruned tickets of paths with the same values of every searched parameter but the rate, and a larger rate
    there (a branch refines the gap between a ticket and its parent's next one: it never extrapolates past
    where a path ended, where the accuracy falls off), the sparsest one whose next round at this path's rate
    is not a ticket the run holds and the stop rules let through (rules 1-3, against ``tickets``), the earliest
    of equals; the dense network when none (the path then stops or goes on as it would have)."""
    if not can_branch(spec, params) or not tickets:
        return []
    paths = spec.search.paths
    assert paths is not None
    key = rate_key(params)
    same = {f"param_{k}": v for k, v in params.items() if k != key}
    family = [t for t in tickets if t.get("kind") in MAIN_KINDS and all(t.get(c) == v for c, v in same.items())]
    known = {tuple(round(r, 9) for r in rates) for t in family if (rates := rates_of(t)) is not None}
    by_round = {(t.get("trial"), t.get("round")): t for t in family}
    best: tuple[float, tuple[int, int], list[float]] | None = None
    for ticket in family:
        rates = rates_of(ticket)
        after = by_round.get((ticket.get("trial"), int(ticket.get("round") or 0) + 1))
        parent_next = rates_of(after) if after is not None else None
        if not rates or not parent_next or len(parent_next) != len(rates) + 1:
            continue  # the dense network (where a path starts anyway), or where its path ended
        density = math.prod(1.0 - r for r in rates)
        plan = rates_to_target(spec.tickets.prune_rate, paths.max_sparsity, density)
        if not plan or plan[0] >= parent_next[-1] - 1e-9 or tuple(round(r, 9) for r in [*rates, plan[0]]) in known:
            continue  # a branch refines between two tickets of its parent, and never runs a round the run holds
        before = by_round.get((ticket.get("trial"), int(ticket.get("round") or 0) - 1))
        path = [before, ticket] if before is not None else [ticket]
        if stop_reason(spec, path, tickets, plan[0]) is not None:
            continue
        rank = (1.0 - density, (-int(ticket["trial"]), -int(ticket["round"])))
        if best is None or rank > best[:2]:
            best = (*rank, rates)
    return list(best[2]) if best else []


def plan(spec: Spec, start: Sequence[float] = ()) -> list[float]:
    """Every round's rate of a path that starts at the ticket pruned by ``start`` (`branch_point`): those rates,
    then the path's own rate to ``max_sparsity`` (`Spec.round_rates` from the dense network)."""
    if not start:
        return spec.round_rates()
    assert spec.search.paths is not None
    density = math.prod(1.0 - r for r in start)
    return [*start, *rates_to_target(spec.tickets.prune_rate, spec.search.paths.max_sparsity, density)]


def final_ticket(spec: Spec, path: Sequence[Any], front: Sequence[Point]) -> Any:
    """The path's ticket a sampler sees as the trial's value: of its tickets still inside the region of interest
    (rule 2), the one that adds the most hypervolume to what the rest of the run holds (``front`` less this
    trial's own tickets), the sparsest of equals (and when none adds any). A path is judged by what it brought
    to the front, at whichever end, not always by its sparsest useful ticket: a path that found the most
    accurate ticket is as good to the sampler as one that found the cheapest."""
    paths = spec.search.paths
    acc = accuracy_metric(spec)
    if paths is None or acc is None or not path:
        return path[-1] if path else None
    floor = _best(acc, path, front) - paths.accuracy_drop
    inside = [t for t in path if _value(t, acc) >= floor]
    if not inside:
        return path[-1]
    number = _trial(path[-1])
    others = [p for p in front if number is None or _trial(p) != number]
    gains = front_gains(spec, inside, others, floor)
    return inside[max(range(len(inside)), key=lambda i: (gains[i] > 1e-15, gains[i], i))]


def _trial(ticket: Any) -> int | None:
    try:
        return int(_value(ticket, "trial"))
    except (KeyError, AttributeError, TypeError, ValueError):
        return None


def front_gains(spec: Spec, candidates: Sequence[Any], front: Sequence[Point], floor: float) -> list[float]:
    """The hypervolume each of ``candidates`` alone adds to ``front`` (objectives of the spec; reference: the
    region's ``floor`` for the accuracy metric, 1.1 x the worst value for the others)."""
    import pandas as pd

    from sltsearch.results.pareto import hypervolume

    objectives = spec.objective.metrics
    acc = accuracy_metric(spec)

    def frame(points: Sequence[Any]) -> pd.DataFrame:
        return pd.DataFrame([{n: _value(p, n) for n in objectives} for p in points], columns=list(objectives))

    everything = frame([*front, *candidates])
    reference = {
        name: (floor if name == acc else float(everything[name].min()) - 1e-12)
        if direction == "maximize" else float(everything[name].max()) * 1.1 + 1e-12
        for name, direction in objectives.items()
    }
    base_points = frame(front)
    base = hypervolume(base_points, objectives, reference, only_ok=False)
    return [
        max(0.0, hypervolume(pd.concat([base_points, frame([c])]), objectives, reference, only_ok=False) - base)
        for c in candidates
    ]


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


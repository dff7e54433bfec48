"""Multi-objective asynchronous successive halving (MO-ASHA) over IMP rounds: one pure rule for every backend.

IMP rounds are natural rungs: a trial's round-r ticket exists long before its last round. The rungs are ASHA's
geometric ones, rounds ``min_rungs * eta**k`` (`rung_rounds`; every round with ``spacing="every_round"``).
When a trial reports its ticket at a rung r, the rule ranks that ticket among every ticket measured at
rung r so far (its own included) by non-dominated sorting, breaking ties inside a front by crowding distance
(NSGA-II's selection, as in Schmucker et al. 2021, "Multi-objective asynchronous successive halving"). The
trial continues when fewer than ``ceil(n / eta)`` of the n tickets rank strictly better than its own, i.e. it
lies in the top 1/eta (rounded up, so the first ticket at a rung always continues); otherwise it stops.

With ``objective.constraints`` the ranking is constrained domination (Deb's rule, as Optuna's NSGA-II ranks):
every feasible ticket ranks before every infeasible one; feasible tickets by front then crowding distance;
infeasible ones by their total constraint violation (the sum of the positive constraint values), an equal
violation sharing a front, inside which crowding distance breaks the tie. Violations come in as data.

Ranking is a pure function of the objective vectors (no I/O, no driver): the Optuna backend applies it from a
trial's ticket callback, the Ray backend from a Tune scheduler, both over rung tables read from the run
folder's ticket table so decisions survive resumes and see every worker's tickets.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# ticket kinds that are rungs: the main IMP-like rounds (controls, early-time search rounds and the dense
# round 0 are never rungs)
RUNG_KINDS = ("imp", "one_shot", "early_bird")
# rows usable as rung entries: finished trials and trials still running; failed/interrupted ones are rerun
RUNG_STATUSES = ("ok", "running")


def as_losses(vectors: Sequence[Mapping[str, float]], objectives: Mapping[str, str]) -> np.ndarray:
    """Objective vectors -> an (n, m) array in which every column is minimised (maximised ones negated)."""
    rows = [[-float(v[k]) if d == "maximize" else float(v[k]) for k, d in objectives.items()] for v in vectors]
    return np.asarray(rows, dtype=float).reshape(len(vectors), len(objectives))


def nondominated_ranks(losses: np.ndarray) -> np.ndarray:
    """Front index of every row (0 = non-dominated); equal rows share a front.

    A rung holds one ticket per trial, so this must stay cheap for tens of thousands of rows: one objective
    ranks by distinct value, two by a sweep in O(n log n), more by a longest-chain pass in O(n^2 m) time and
    bounded memory (`_ranks_nd`).
    """
    losses = np.asarray(losses, dtype=float)
    n = len(losses)
    if n == 0:
        return np.zeros(0, dtype=int)
    if losses.shape[1] == 1:
        return np.asarray(np.unique(losses[:, 0], return_inverse=True)[1], dtype=int).reshape(-1)
    if losses.shape[1] == 2:
        return _ranks_2d(losses)
    return _ranks_nd(losses)


def pairwise_ranks(losses: np.ndarray) -> np.ndarray:
    """Front index of every row by the plain definition: peel the fronts with an n x n x m pairwise test.

    Quadratic in memory and time: the reference the fast ranks are tested against (and the former rule the
    rung-decision benchmark compares with), never used for a decision.
    """
    ranks, remaining, front = np.full(len(losses), -1), np.arange(len(losses)), 0
    while remaining.size:
        sub = losses[remaining]
        dominated = ((sub[None] <= sub[:, None]).all(2) & (sub[None] < sub[:, None]).any(2)).any(1)
        ranks[remaining[~dominated]] = front
        remaining, front = remaining[dominated], front + 1
    return ranks


def _ranks_nd(losses: np.ndarray, block_elems: int = 1 << 22) -> np.ndarray:
    """Any number of objectives: in lexicographic order every dominator of a row comes before it, so a row's
    front is one more than the highest front among its dominators (0 without any): the longest dominance
    chain ending there, which is the front that peeling would give. Dominance is tested in row blocks."""
    n, m = losses.shape
    order = np.lexsort(losses.T[::-1])
    ordered = losses[order]
    ranks = np.zeros(n, dtype=int)  # in lexicographic order
    step = max(1, block_elems // max(1, n))
    for start in range(0, n, step):
        block = ordered[start : start + step]
        earlier = ordered[: start + len(block)]
        # one objective at a time (no block x n x m array): <= everywhere and not equal everywhere
        no_worse = np.ones((len(block), len(earlier)), dtype=bool)
        equal = np.ones_like(no_worse)
        for j in range(m):
            no_worse &= earlier[None, :, j] <= block[:, None, j]
            equal &= earlier[None, :, j] == block[:, None, j]
        dominated_by = no_worse & ~equal
        for k in range(len(block)):
            i = start + k
            by = dominated_by[k, :i]
            if by.any():
                ranks[i] = ranks[:i][by].max() + 1
    out = np.empty(n, dtype=int)
    out[order] = ranks
    return out


def _ranks_2d(losses: np.ndarray) -> np.ndarray:
    """Two objectives: sweep the rows by the first objective (then the second); a row's front is the number
    of fronts already holding a row with a second objective <= its own (all such rows dominate it). The
    fronts' smallest second objectives stay sorted, so a binary search finds it."""
    order = np.lexsort((losses[:, 1], losses[:, 0]))
    ranks = np.empty(len(losses), dtype=int)
    lowest: list[float] = []  # per front, the smallest second objective seen so far (non-decreasing)
    prev = -1
    for idx in order.tolist():
        f1, f2 = losses[idx, 0], losses[idx, 1]
        if prev >= 0 and losses[prev, 0] == f1 and losses[prev, 1] == f2:
            ranks[idx] = ranks[prev]  # an equal row (equal rows sort together) shares its front
            prev = idx
            continue
        front = bisect.bisect_right(lowest, f2)
        if front == len(lowest):
            lowest.append(f2)
        else:
            lowest[front] = f2
        ranks[idx] = front
        prev = idx
    return ranks


def crowding_distances(losses: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of every row within its own set (call it per front).

    Computed over the distinct vectors, so equal rows get equal distances whatever their order; the extreme
    points of every objective get ``inf``; an objective on which all rows agree adds nothing.
    """
    n = len(losses)
    if n == 0:
        return np.zeros(0)
    unique, inverse = np.unique(losses, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    dist = np.zeros(len(unique))
    if len(unique) <= 2:
        dist[:] = math.inf
        return dist[inverse]
    for m in range(unique.shape[1]):
        order = np.argsort(unique[:, m], kind="stable")
        values = unique[order, m]
        span = values[-1] - values[0]
        dist[order[0]] = dist[order[-1]] = math.inf
        if span <= 0:
            continue
        dist[order[1:-1]] += (values[2:] - values[:-2]) / span
    return dist[inverse]


def constrained_ranks(losses: np.ndarray, violations: np.ndarray | None = None) -> np.ndarray:
    """Front index of every row under constrained domination: feasible rows (violation <= 0) by
    non-dominated sorting, then one front per distinct violation of the infeasible rows, smallest first
    (Optuna's NSGA-II ranking). Without violations: `nondominated_ranks`."""
    if violations is None:
        return nondominated_ranks(losses)
    violations = np.asarray(violations, dtype=float).reshape(-1)
    if len(violations) != len(losses):
        raise ValueError(f"{len(violations)} violations for {len(losses)} objective vectors")
    feasible = violations <= 0
    ranks = np.empty(len(losses), dtype=int)
    ranks[feasible] = nondominated_ranks(losses[feasible])
    first_infeasible = int(ranks[feasible].max(initial=-1)) + 1
    _, order = np.unique(violations[~feasible], return_inverse=True)
    ranks[~feasible] = first_infeasible + np.asarray(order, dtype=int).reshape(-1)
    return ranks


def surely_better(losses: np.ndarray, violations: np.ndarray | None = None) -> int:
    """How many rows rank better than row 0 for certain, in O(n): those that (constrained-)dominate it,
    which all lie in a lower front. A lower bound of `better_than` (row 0), cheap enough to try first."""
    rest = losses[1:]
    dominates = (rest <= losses[0]).all(axis=1) & (rest < losses[0]).any(axis=1)
    if violations is None:
        return int(dominates.sum())
    own, others = violations[0], violations[1:]
    if own <= 0:
        return int((dominates & (others <= 0)).sum())
    return int((others < own).sum())  # every feasible row, and every smaller violation


def better_than(losses: np.ndarray, index: int, violations: np.ndarray | None = None) -> int:
    """How many rows rank strictly better than row ``index`` (lower front, or same front and more crowding);
    ``violations``: every row's total constraint violation (0 = feasible), None without constraints."""
    ranks = constrained_ranks(losses, violations)
    same = np.flatnonzero(ranks == ranks[index])
    crowd = crowding_distances(losses[same])
    own = crowd[np.flatnonzero(same == index)[0]]
    return int((ranks < ranks[index]).sum() + (crowd > own).sum())


def rung_rounds(min_rungs: int, eta: float, up_to: int, spacing: str = "geometric") -> list[int]:
    """The IMP rounds that are rungs, up to ``up_to``. ``geometric`` (ASHA's spacing, as Ray Tune's
    ASHAScheduler milestones): the first round at or past ``min_rungs * eta**k``, so each rung costs about eta
    times the rounds of the one before and a trial in the top 1/eta at every rung reaches the next.
    ``every_round``: each round from ``min_rungs`` on (far more aggressive: a trial must stay in the top 1/eta
    round after round, so after a few trials hardly any reaches its last rounds)."""
    if spacing == "every_round":
        return list(range(max(1, min_rungs), up_to + 1))
    if spacing != "geometric":
        raise ValueError(f"unknown rung spacing '{spacing}'; allowed: geometric, every_round")
    rounds, k = [], 0
    while (r := math.ceil(min_rungs * eta**k - 1e-9)) <= up_to:
        if not rounds or r > rounds[-1]:
            rounds.append(r)
        k += 1
    return rounds


@dataclass(frozen=True)
class MOASHA:
    """The stopping rule. ``objectives``: metric -> maximize | minimize (one or more); ``spacing``: which
    rounds are rungs (`rung_rounds`)."""

    objectives: Mapping[str, str]
    eta: float = 3.0
    min_rungs: int = 1
    spacing: str = "geometric"

    def is_rung(self, rung: int) -> bool:
        """Whether round ``rung`` is a rung: the only rounds at which a trial may be stopped."""
        return rung >= 1 and rung in rung_rounds(self.min_rungs, self.eta, rung, self.spacing)

    def keep_count(self, n: int) -> int:
        """How many of ``n`` tickets at a rung continue: the top 1/eta, rounded up, at least one."""
        return max(1, math.ceil(n / self.eta - 1e-9))

    def should_stop(
        self,
        rung: int,
        ticket: Mapping[str, float],
        others: Sequence[Mapping[str, float]],
        violations: Sequence[float] | None = None,
    ) -> bool:
        """True when ``ticket`` (measured at ``rung``) is outside the top 1/eta of itself plus ``others``
        (the other trials' tickets at the same rung).
        ``violations``: with constraints, the total constraint violation of ``ticket`` followed by that of
        each of ``others`` (0 = feasible; see `total_violation`); None ranks without constraints.
        A round that is not a rung (`is_rung`) never stops a trial."""
        if not self.is_rung(rung):
            return False
        losses = as_losses([ticket, *others], self.objectives)
        if not np.isfinite(losses[0]).all():
            return True  # a NaN/inf ticket cannot rank; nothing it could lead to is worth the rounds
        finite = np.isfinite(losses).all(axis=1)
        losses = losses[finite]  # row 0 (the ticket) is finite, so it stays row 0
        if violations is not None:
            violations = np.asarray(violations, dtype=float).reshape(-1)
            if len(violations) != len(finite):
                raise ValueError(f"{len(violations)} violations for {len(finite)} tickets (the ticket, then others)")
            violations = violations[finite]
        keep = self.keep_count(len(losses))
        if surely_better(losses, violations) >= keep:
            return True  # enough tickets beat it outright: no need to rank the whole rung
        return better_than(losses, 0, violations) >= keep


def total_violation(constraint_values: Mapping[str, float]) -> float:
    """A ticket's total constraint violation: the sum of its positive constraint values (Optuna's convention:
    a value <= 0 is met), 0 when it is feasible; a NaN value counts as an infinite violation."""
    return float(sum(math.inf if math.isnan(v) else v for v in constraint_values.values() if not v <= 0))


def rung_rows(frame: pd.DataFrame, rung: int, exclude_trial: int | None = None) -> pd.DataFrame:
    """The rows of a ticket table that are rung entries at ``rung``: every trial's main ticket (one per trial)."""
    if frame.empty or "round" not in frame:
        return frame.iloc[0:0]
    rows = frame[(frame["round"] == rung) & frame["kind"].isin(RUNG_KINDS)]
    if "status" in rows:
        rows = rows[rows["status"].isin(RUNG_STATUSES)]
    if exclude_trial is not None:
        rows = rows[rows["trial"] != exclude_trial]
    return rows.drop_duplicates("trial", keep="last")

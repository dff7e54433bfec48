"""Pareto fronts and hypervolume over ticket tables, on top of Optuna's own multi-objective helpers.

Objectives are a mapping ``column -> "maximize" | "minimize"``; internally everything is minimised.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from optuna._hypervolume import compute_hypervolume
from optuna.study._multi_objective import _is_pareto_front


def _losses(frame: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    cols = []
    for name, direction in objectives.items():
        values = frame[name].to_numpy(dtype=float)
        cols.append(-values if direction == "maximize" else values)
    return np.stack(cols, axis=1) if cols else np.empty((len(frame), 0))


def pareto_mask(frame: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """Boolean array: True where the row is not dominated by any other row (ties are all kept)."""
    if frame.empty:
        return np.zeros(0, dtype=bool)
    return _is_pareto_front(_losses(frame, objectives), assume_unique_lexsorted=False)


def pareto_front(frame: pd.DataFrame, objectives: Mapping[str, str], only_ok: bool = True) -> pd.DataFrame:
    """The non-dominated rows (of the finished, feasible ones), sorted by the first objective (best first)."""
    if only_ok and "status" in frame:
        frame = frame[frame["status"] == "ok"]
    if only_ok and "feasible" in frame:  # tickets violating objective.constraints stay off the front
        frame = frame[frame["feasible"].fillna(True).astype(bool)]
    front = frame[pareto_mask(frame, objectives)]
    first, direction = next(iter(objectives.items()))
    return front.sort_values(first, ascending=direction == "minimize").reset_index(drop=True)


def hypervolume(frame: pd.DataFrame, objectives: Mapping[str, str], reference: Mapping[str, float]) -> float:
    """Hypervolume dominated by ``frame`` w.r.t. ``reference`` (one value per objective, in its own units)."""
    if frame.empty:
        return 0.0
    losses = _losses(frame, objectives)
    ref = np.array([-reference[n] if d == "maximize" else reference[n] for n, d in objectives.items()])
    inside = (losses < ref).all(axis=1)
    if not inside.any():
        return 0.0
    front = losses[inside][_is_pareto_front(losses[inside], assume_unique_lexsorted=False)]
    return float(compute_hypervolume(front, ref))

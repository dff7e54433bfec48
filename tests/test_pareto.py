"""The Pareto front contains no dominated row and omits no non-dominated one; hypervolume is right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sltsearch.results import hypervolume, pareto_front

OBJ = {"val_accuracy": "maximize", "energy_uj": "minimize"}


def _dominates(a: pd.Series, b: pd.Series) -> bool:
    better_eq = a["val_accuracy"] >= b["val_accuracy"] and a["energy_uj"] <= b["energy_uj"]
    strictly = a["val_accuracy"] > b["val_accuracy"] or a["energy_uj"] < b["energy_uj"]
    return better_eq and strictly


@pytest.mark.parametrize("seed", range(5))
def test_front_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 60
    frame = pd.DataFrame({
        "ticket_id": [f"t{i}" for i in range(n)],
        # coarse values so ties and duplicates happen
        "val_accuracy": rng.integers(0, 10, n) / 10,
        "energy_uj": rng.integers(0, 10, n) / 10,
        "status": "ok",
    })
    front = pareto_front(frame, OBJ)
    ids = set(front["ticket_id"])
    for _, row in frame.iterrows():
        dominated = any(_dominates(other, row) for _, other in frame.iterrows())
        assert (row["ticket_id"] in ids) == (not dominated), row.to_dict()


def test_front_ignores_failed_rows_and_sorts_best_first() -> None:
    frame = pd.DataFrame({
        "ticket_id": ["a", "b", "c", "d"],
        "val_accuracy": [0.9, 0.8, 0.99, 0.95],
        "energy_uj": [0.5, 0.1, 0.01, 0.3],
        "status": ["ok", "ok", "failed", "ok"],
    })
    front = pareto_front(frame, OBJ)
    assert list(front["ticket_id"]) == ["d", "b"]


def test_hypervolume_of_two_points() -> None:
    frame = pd.DataFrame({"val_accuracy": [0.9, 0.5], "energy_uj": [0.5, 0.1]})
    # reference (acc 0, energy 1): rectangles 0.9x0.5 and 0.5x0.9 overlapping 0.5x0.5
    expected = 0.9 * 0.5 + 0.5 * 0.9 - 0.5 * 0.5
    assert hypervolume(frame, OBJ, {"val_accuracy": 0.0, "energy_uj": 1.0}) == pytest.approx(expected)
    assert hypervolume(frame, OBJ, {"val_accuracy": 0.95, "energy_uj": 1.0}) == 0.0

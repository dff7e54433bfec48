"""Selection rules on hand-made tables: validation metrics only, budgets, ties, failed rows."""

from __future__ import annotations

import pandas as pd
import pytest

import sltsearch
from sltsearch.errors import UserError
from sltsearch.results.select import knee_index


def _table() -> pd.DataFrame:
    # a clear knee at "k": 1 point of accuracy below the best for a third of its energy
    return pd.DataFrame({
        "ticket_id": ["best", "k", "cheap", "dominated", "failed", "test_trap"],
        "val_accuracy": [0.98, 0.97, 0.60, 0.90, 0.99, 0.50],
        "test_accuracy": [0.90, 0.90, 0.55, 0.85, 0.99, 1.00],  # never read: test_trap is best on test
        "energy_uj": [3.0, 1.0, 0.5, 2.0, 0.1, 0.4],
        "status": ["ok", "ok", "ok", "ok", "failed", "ok"],
    })


def test_max_accuracy_and_min_energy_use_validation_only_and_skip_failed_rows() -> None:
    assert sltsearch.select(_table(), "max-accuracy")["ticket_id"] == "best"
    assert sltsearch.select(_table(), "min-energy")["ticket_id"] == "test_trap"
    assert sltsearch.select(_table(), "min-energy", min_accuracy=0.9)["ticket_id"] == "k"
    assert sltsearch.select(_table(), "max-accuracy", max_energy=2.5)["ticket_id"] == "k"


def test_knee_is_where_accuracy_stops_buying_energy() -> None:
    assert sltsearch.select(_table(), "knee")["ticket_id"] == "k"
    # two front points: no knee, the more accurate one
    assert sltsearch.select(_table(), "knee", max_energy=0.9)["ticket_id"] == "cheap"


def test_knee_geometry() -> None:
    import numpy as np

    # normalised front (1, 1), (0.9, 0.2), (0, 0): the middle point is farthest from the chord
    assert knee_index(np.array([1.0, 0.9, 0.0]), np.array([1.0, 0.2, 0.0])) == 1
    # two points, or all on one line: no knee, the most accurate point
    assert knee_index(np.array([0.5, 0.9]), np.array([0.1, 0.2])) == 1
    assert knee_index(np.array([0.0, 0.5, 1.0]), np.array([0.0, 0.5, 1.0])) == 2


def test_ties_are_broken_by_energy_then_ticket_id() -> None:
    frame = pd.DataFrame({
        "ticket_id": ["b", "a", "c"],
        "val_accuracy": [0.9, 0.9, 0.9],
        "energy_uj": [1.0, 1.0, 0.5],
        "status": "ok",
    })
    assert sltsearch.select(frame, "max-accuracy")["ticket_id"] == "c"
    frame.loc[2, "energy_uj"] = 1.0
    assert sltsearch.select(frame, "max-accuracy")["ticket_id"] == "a"
    assert sltsearch.select(frame, "knee")["ticket_id"] == "a"


def test_impossible_budget_and_unknown_rule_are_one_line_errors() -> None:
    with pytest.raises(UserError, match="no ticket meets val_accuracy >= 0.99 and energy_uj <= 0.2"):
        sltsearch.select(_table(), "knee", min_accuracy=0.99, max_energy=0.2)
    with pytest.raises(UserError, match="unknown rule 'pareto'"):
        sltsearch.select(_table(), "pareto")
